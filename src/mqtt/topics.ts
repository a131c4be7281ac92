/** Topic names and filters: validation and matching rules of spec §4.7. No I/O. */
import { isUtf8 } from 'node:buffer';

export const MAX_TOPIC_BYTES = 65535;

/**
 * A topic name or filter within the engine's limits: at most `maxLevels` levels and `maxBytes` bytes
 * of UTF-8. The router's trie has a level limit of its own; deeper topics must never reach it.
 */
/**
 * The deepest topic the engine can be configured for: its router is built for this many levels once,
 * so a limit raised on a running engine (a gateway edited live) never passes what the trie accepts.
 */
export const TOPIC_LEVELS_CEILING = 1000;

export function topicWithinLimits(topic: string, maxLevels: number, maxBytes: number): boolean {
  return topicOverLimit(topic, maxLevels, maxBytes) === null;
}

/** Which limit a topic name or filter passes: its UTF-8 bytes, or its levels; null within both. */
export function topicOverLimit(topic: string, maxLevels: number, maxBytes: number): 'length' | 'levels' | null {
  if (topic.length > maxBytes) return 'length';
  if (topic.length * 3 > maxBytes && Buffer.byteLength(topic) > maxBytes) return 'length';
  let levels = 1;
  for (let i = topic.indexOf('/'); i !== -1; i = topic.indexOf('/', i + 1)) {
    if (++levels > maxLevels) return 'levels';
  }
  return null;
}

/** A PUBLISH topic name: non-empty, no wildcards [MQTT-3.3.2-2], no U+0000 [MQTT-1.5.4-2]. */
export function isValidTopicName(topic: string): boolean {
  if (topic.length === 0) return false; // [MQTT-4.7.3-1]
  for (let i = 0; i < topic.length; i++) {
    const c = topic.charCodeAt(i);
    if (c === 0x2b /* + */ || c === 0x23 /* # */ || c === 0) return false;
  }
  return true;
}

/**
 * A SUBSCRIBE/UNSUBSCRIBE topic filter: non-empty [MQTT-4.7.3-1]; `#` only last and alone in its
 * level [MQTT-4.7.1-1]; `+` alone in its level [MQTT-4.7.1-2]; no U+0000 [MQTT-1.5.4-2].
 */
export function isValidTopicFilter(filter: string): boolean {
  if (filter.length === 0) return false;
  const levels = filter.split('/');
  for (let i = 0; i < levels.length; i++) {
    const level = levels[i]!;
    if (level.includes('\u0000')) return false;
    if (level.includes('#') && (level !== '#' || i !== levels.length - 1)) return false;
    if (level.includes('+') && level !== '+') return false;
  }
  return true;
}

export interface SharedFilter {
  group: string;
  filter: string;
}

/**
 * Splits `$share/{ShareName}/{filter}` [MQTT-4.8.2-1, MQTT-4.8.2-2]. Returns null for a normal filter,
 * 'invalid' for a malformed shared one.
 */
export function parseSharedFilter(raw: string): SharedFilter | null | 'invalid' {
  if (!raw.startsWith('$share/')) return null;
  const rest = raw.slice('$share/'.length);
  const slash = rest.indexOf('/');
  if (slash <= 0) return 'invalid';
  const group = rest.slice(0, slash);
  const filter = rest.slice(slash + 1);
  // The ShareName must not contain '/', '+' or '#' [MQTT-4.8.2-2].
  if (group.includes('+') || group.includes('#')) return 'invalid';
  if (!isValidTopicFilter(filter)) return 'invalid';
  return { group, filter };
}

/** Does `filter` match `topic`? Honours the `$`-topic rule [MQTT-4.7.2-1]. */
export function topicMatches(filter: string, topic: string): boolean {
  if (topic.charCodeAt(0) === 0x24 /* $ */ && (filter[0] === '+' || filter[0] === '#')) return false;
  const f = filter.split('/');
  const t = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    const level = f[i];
    if (level === '#') return true; // also matches the parent level [MQTT-4.7.1-2]
    if (i >= t.length) return false;
    if (level !== '+' && level !== t[i]) return false;
  }
  return f.length === t.length;
}

/** True when the string decoded from the wire may have come from ill-formed UTF-8 [MQTT-1.5.4-1]. */
export function isWellFormedUtf8(raw: Buffer): boolean {
  return isUtf8(raw);
}
