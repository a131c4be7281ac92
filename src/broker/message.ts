/** An application message inside the engine: what a PUBLISH carried, minus per-hop details. */
import { encodeForwardedProperties, type ForwardedProperties, type QoS } from '../mqtt/codec.ts';

export interface Message {
  readonly topic: string;
  readonly payload: Buffer;
  readonly qos: QoS;
  readonly retain: boolean;
  /** v5 properties passed through unchanged [MQTT-3.3.2-17, MQTT-3.3.2-18, MQTT-3.3.2-20]. */
  readonly properties: ForwardedProperties | undefined;
  /** Epoch ms after which the message is no longer delivered [MQTT-3.3.2-5]; 0 = never. */
  readonly expiresAt: number;
  /** Client identifier of the publisher (for No Local), '' for messages from the platform. */
  readonly senderId: string;
  /** Lazily cached encodings shared by every delivery of this message. */
  cache?: MessageCache;
}

export interface MessageCache {
  forwarded?: Buffer;
}

export function createMessage(init: Omit<Message, 'cache'>): Message {
  return init;
}

/**
 * UTF-8 bytes of recently delivered topic names. A device fleet publishes to a bounded set of topics,
 * so most deliveries find their topic here instead of encoding it again for every message. The
 * buffers are never written to (encoders copy from them). Emptied when full, like the match cache.
 */
const topicBytesCache = new Map<string, Buffer>();
const TOPIC_BYTES_CACHE_SIZE = 4096;
/** Longer names are encoded per delivery: the cache must stay small whatever clients send. */
const TOPIC_BYTES_CACHE_MAX_LENGTH = 256;

export function topicBytesOf(m: Message): Buffer {
  let bytes = topicBytesCache.get(m.topic);
  if (bytes === undefined) {
    bytes = Buffer.from(m.topic, 'utf8');
    if (m.topic.length <= TOPIC_BYTES_CACHE_MAX_LENGTH) {
      if (topicBytesCache.size >= TOPIC_BYTES_CACHE_SIZE) topicBytesCache.clear();
      topicBytesCache.set(m.topic, bytes);
    }
  }
  return bytes;
}

export function forwardedBytesOf(m: Message): Buffer {
  const c = (m.cache ??= {});
  return (c.forwarded ??= encodeForwardedProperties(m.properties));
}

/** Seconds left before expiry, rounded up, or -1 when the message does not expire [MQTT-3.3.2-6]. */
export function remainingExpiry(m: Message, now: number): number {
  if (m.expiresAt === 0) return -1;
  return Math.max(0, Math.ceil((m.expiresAt - now) / 1000));
}

export function isExpired(m: Message, now: number): boolean {
  return m.expiresAt !== 0 && m.expiresAt <= now;
}
