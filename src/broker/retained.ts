/** Retained messages (spec §3.3.1.3): one per topic, replaced by a newer one, cleared by an empty payload. */
import { topicMatches } from '../mqtt/topics.ts';
import { isExpired, type Message } from './message.ts';

export class RetainedStore {
  readonly #byTopic = new Map<string, Message>();
  readonly #limit: number;

  constructor(limit: number) {
    this.#limit = limit;
  }

  get size(): number {
    return this.#byTopic.size;
  }

  /** Would `set` take this message (a clear, a replacement, or room for a new topic)? */
  accepts(message: Message): boolean {
    return message.payload.length === 0 || this.#byTopic.size < this.#limit || this.#byTopic.has(message.topic);
  }

  /**
   * Stores, replaces [MQTT-3.3.1-5] or clears [MQTT-3.3.1-6, MQTT-3.3.1-7] the retained message of a
   * topic. Returns false when a new topic would pass the store's limit.
   */
  set(message: Message): boolean {
    if (message.payload.length === 0) {
      this.#byTopic.delete(message.topic);
      return true;
    }
    if (!this.#byTopic.has(message.topic) && this.#byTopic.size >= this.#limit) return false;
    this.#byTopic.set(message.topic, message);
    return true;
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
    if (isExpired(m, now)) this.#byTopic.delete(m.topic);
    else out.push(m);
  }

  all(): IterableIterator<Message> {
    return this.#byTopic.values();
  }
}
