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
  topicBytes?: Buffer;
  forwarded?: Buffer;
}

export function createMessage(init: Omit<Message, 'cache'>): Message {
  return init;
}

export function topicBytesOf(m: Message): Buffer {
  const c = (m.cache ??= {});
  return (c.topicBytes ??= Buffer.from(m.topic, 'utf8'));
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
