/**
 * JSON for text columns (gateway settings, device certificate and properties). Plain JSON: device
 * properties come from operator scripts and must round-trip exactly, whatever shape they have.
 */

export function toJson(value: unknown): string {
  return JSON.stringify(value);
}

export function fromJson<T>(text: string): T {
  return JSON.parse(text) as T;
}

export function toNullableJson(value: unknown): string | null {
  return value === null || value === undefined ? null : toJson(value);
}

export function fromNullableJson<T>(text: string | null): T | null {
  return text === null ? null : fromJson<T>(text);
}
