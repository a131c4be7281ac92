/**
 * Alink property posts (mission-anchors §B3): `{"method":"thing.event.property.post","params":{…}}`
 * where each param is a bare value or `{value, time}`. We keep, per property, its latest value and
 * the time the device gave (or the arrival time).
 */

export const PROPERTY_POST_METHOD = 'thing.event.property.post';
/** Alink refuses bigger posts with 6106; we ignore them rather than store a partial picture. */
const MAX_PROPERTIES = 200;

export interface PropertyValue {
  value: unknown;
  /** Epoch ms. */
  time: number;
}

/** The property values of a property post, or null when `body` is not one. */
export function propertyPostValues(body: unknown, receivedAt: number): Record<string, PropertyValue> | null {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return null;
  const { method, params } = body as { method?: unknown; params?: unknown };
  if (method !== PROPERTY_POST_METHOD || typeof params !== 'object' || params === null || Array.isArray(params)) return null;
  const entries = Object.entries(params as Record<string, unknown>);
  if (entries.length === 0 || entries.length > MAX_PROPERTIES) return null;
  const values: Record<string, PropertyValue> = {};
  for (const [name, raw] of entries) {
    if (isTimedValue(raw)) {
      values[name] = { value: raw.value, time: typeof raw.time === 'number' && Number.isFinite(raw.time) ? raw.time : receivedAt };
    } else {
      values[name] = { value: raw, time: receivedAt };
    }
  }
  return values;
}

function isTimedValue(raw: unknown): raw is { value: unknown; time?: unknown } {
  return typeof raw === 'object' && raw !== null && !Array.isArray(raw) && 'value' in raw
    && Object.keys(raw).every((k) => k === 'value' || k === 'time');
}

/** Devices that speak Alink directly post JSON on this topic; no script is needed to read it. */
export function isPropertyPostTopic(topic: string): boolean {
  return topic.startsWith('/sys/') && topic.endsWith('/thing/event/property/post');
}
