/**
 * JSON for text columns. Buffers (MQTT v5 correlation data, binary user properties) are written as
 * `{"$base64": "…"}` and come back as Buffers, so stored properties round-trip exactly.
 */

export function toJson(value: unknown): string {
  return JSON.stringify(value, function replacer(this: unknown, key: string, v: unknown) {
    // JSON.stringify has already called Buffer#toJSON by the time the replacer sees `v`; look at the raw value.
    const raw = (this as Record<string, unknown>)[key];
    return Buffer.isBuffer(raw) ? { $base64: raw.toString('base64') } : v;
  });
}

export function fromJson<T>(text: string): T {
  return JSON.parse(text, (_key, v: unknown) => {
    if (typeof v === 'object' && v !== null && !Array.isArray(v)) {
      const keys = Object.keys(v);
      const encoded = (v as { $base64?: unknown }).$base64;
      if (keys.length === 1 && typeof encoded === 'string') return Buffer.from(encoded, 'base64');
    }
    return v;
  }) as T;
}

export function toNullableJson(value: unknown): string | null {
  return value === null || value === undefined ? null : toJson(value);
}

export function fromNullableJson<T>(text: string | null): T | null {
  return text === null ? null : fromJson<T>(text);
}
