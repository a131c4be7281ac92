/** Retained messages (spec §3.3.1.3): one per topic, replaced by a newer one, cleared by an empty payload. */
import { topicMatches } from '../mqtt/topics.ts';
import { isExpired, type Message } from './message.ts';

/** What a retained message costs the store: its payload and its topic. */
function sizeOf(m: Message): number {
  return m.payload.length + m.topic.length;
}

export class RetainedStore {
  readonly #byTopic = new Map<string, Message>();
  #limit: number;
  #byteLimit: number;
  #bytes = 0;

  /** At most `limit` topics and `byteLimit` bytes (payloads and topics) in all. */
  constructor(limit: number, byteLimit = Infinity) {
    this.#limit = limit;
    this.#byteLimit = byteLimit;
  }

  /** A lowered limit refuses new topics from now on; messages already kept stay until replaced or cleared. */
  setLimits(limit: number, byteLimit = this.#byteLimit): void {
    this.#limit = limit;
    this.#byteLimit = byteLimit;
  }

  get size(): number {
    return this.#byTopic.size;
  }

  /** Bytes held (payloads and topics). */
  get bytes(): number {
    return this.#bytes;
  }

  /** Would `set` take this message (a clear, or room in count and bytes for it)? */
  accepts(message: Message): boolean {
    if (message.payload.length === 0) return true;
    const old = this.#byTopic.get(message.topic);
    if (old === undefined && this.#byTopic.size >= this.#limit) return false;
    return this.#bytes - (old === undefined ? 0 : sizeOf(old)) + sizeOf(message) <= this.#byteLimit;
  }

  /**
   * Stores, replaces [MQTT-3.3.1-5] or clears [MQTT-3.3.1-6, MQTT-3.3.1-7] the retained message of a
   * topic. Returns false when it would pass the store's limits (count or bytes).
   */
  set(message: Message): boolean {
    if (message.payload.length === 0) {
      this.#delete(message.topic);
      return true;
    }
    if (!this.accepts(message)) return false;
    const old = this.#byTopic.get(message.topic);
    if (old !== undefined) this.#bytes -= sizeOf(old);
    this.#byTopic.set(message.topic, message);
    this.#bytes += sizeOf(message);
    return true;
  }

  #delete(topic: string): void {
    const old = this.#byTopic.get(topic);
    if (old === undefined) return;
    this.#byTopic.delete(topic);
    this.#bytes -= sizeOf(old);
  }

  /** Retained messages matching a filter; expired ones are dropped on the way [MQTT-3.3.2-5]. */
  match(filter: string, now: number): Message[] {
    const out: Message[] = [];
    if (!filter.includes('+') && !filter.includes('#')) {
      const m = this.#byTopic.get(filter);
      if (m !== undefined) this.#keepLive(m, now, out);
      return out;
    }
    for (const m of this.#byTopic.values()) {
      if (topicMatches(filter, m.topic)) this.#keepLive(m, now, out);
    }
    return out;
  }

  #keepLive(m: Message, now: number, out: Message[]): void {
    if (isExpired(m, now)) this.#delete(m.topic);
    else out.push(m);
  }

  all(): IterableIterator<Message> {
    return this.#byTopic.values();
  }
}
