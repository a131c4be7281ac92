/**
 * Retained messages (spec §3.3.1.3): one per topic, replaced by a newer one, cleared by an empty payload.
 *
 * With a durable store behind it (`RetainedBodies`), this is an index: every topic with what matching and
 * limits need, and the payloads of only some of them in memory — those not yet written, and a bounded
 * cache of recently read ones. The rest are read back from the store when a subscriber is owed them. A
 * gateway holding 128 MiB of retained payloads on disk then keeps a few MiB of them in memory and loads
 * none at start. Without a store every payload stays in memory (the bare engine, tests).
 */
import { topicMatches } from '../mqtt/topics.ts';
import type { ForwardedProperties, QoS } from '../mqtt/codec.ts';
import { createMessage, isExpired, type Message } from './message.ts';
import type { StoredRetained } from './persistence.ts';

/** Where payloads that left memory are read back from (the engine's durable store). */
export interface RetainedBodies {
  /** The stored payload of a topic's retained message; undefined when the store has none. */
  readRetainedPayload(topic: string): Buffer | undefined;
}

/** A retained message as matching sees it: enough to filter (No Local) and to ask for the whole message. */
export interface RetainedRef {
  readonly topic: string;
  readonly senderId: string;
}

interface Entry extends RetainedRef {
  readonly qos: QoS;
  readonly properties: ForwardedProperties | undefined;
  readonly expiresAt: number;
  readonly payloadBytes: number;
  /** The whole message while its payload is in memory. */
  message: Message | undefined;
  /** Written to the store: its payload may leave memory. */
  durable: boolean;
}

/** What a retained message costs the limits: its payload and its topic. */
function sizeOf(payloadBytes: number, topic: string): number {
  return payloadBytes + topic.length;
}

function entryOf(m: Message, durable: boolean): Entry {
  return {
    topic: m.topic, senderId: m.senderId, qos: m.qos, properties: m.properties, expiresAt: m.expiresAt,
    payloadBytes: m.payload.length, message: m, durable,
  };
}

export class RetainedStore {
  readonly #byTopic = new Map<string, Entry>();
  #limit: number;
  #byteLimit: number;
  #bytes = 0;
  readonly #bodies: RetainedBodies | undefined;
  readonly #cacheBytes: number;
  /** Durable entries whose payload is in memory, least recently used first: what may be evicted. */
  readonly #cached = new Map<string, Entry>();
  #cachedBytes = 0;
  /** Payloads read back from the store (metrics, tests). */
  reads = 0;
  /**
   * Told each topic whose message expired and left the index [MQTT-3.3.2-5], so the store deletes its
   * row too: the index freed its share of the byte limit, and a row left behind was disk that no limit
   * counted (a device could fill the disk with short-lived retained messages).
   */
  onExpired: ((topic: string) => void) | undefined;
  /** Where the sweep of expired messages goes on from (Map iterators see deletions, and insertions at the end). */
  #sweepCursor: Iterator<Entry> | null = null;

  /**
   * At most `limit` topics and `byteLimit` bytes (payloads and topics) in all. With `bodies`, payloads
   * already written stay in memory up to `cacheBytes` and are read back from there beyond.
   */
  constructor(limit: number, byteLimit = Infinity, bodies?: RetainedBodies, cacheBytes = 8 * 1024 * 1024) {
    this.#limit = limit;
    this.#byteLimit = byteLimit;
    this.#bodies = bodies;
    this.#cacheBytes = cacheBytes;
  }

  /** A lowered limit refuses new topics from now on; messages already kept stay until replaced or cleared. */
  setLimits(limit: number, byteLimit = this.#byteLimit): void {
    this.#limit = limit;
    this.#byteLimit = byteLimit;
  }

  get size(): number {
    return this.#byTopic.size;
  }

  /** Bytes held (payloads and topics), in memory or not. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Payload bytes in memory of messages already written (the bounded cache). */
  get cachedBytes(): number {
    return this.#cachedBytes;
  }

  /** Would `set` take this message (a clear, or room in count and bytes for it)? */
  accepts(message: Message): boolean {
    return this.refusal(message) === null;
  }

  /** Which limit `set` would refuse this message for: a new topic past the count, or bytes past the total. */
  refusal(message: Message): 'count' | 'bytes' | null {
    if (message.payload.length === 0) return null;
    const old = this.#byTopic.get(message.topic);
    if (old === undefined && this.#byTopic.size >= this.#limit) return 'count';
    const freed = old === undefined ? 0 : sizeOf(old.payloadBytes, old.topic);
    return this.#bytes - freed + sizeOf(message.payload.length, message.topic) <= this.#byteLimit ? null : 'bytes';
  }

  /**
   * Stores, replaces [MQTT-3.3.1-5] or clears [MQTT-3.3.1-6, MQTT-3.3.1-7] the retained message of a
   * topic. Returns false when it would pass the store's limits (count or bytes). The payload stays in
   * memory at least until `written` says the store has it.
   */
  set(message: Message): boolean {
    if (message.payload.length === 0) {
      this.#delete(message.topic);
      return true;
    }
    if (!this.accepts(message)) return false;
    this.#delete(message.topic);
    this.#byTopic.set(message.topic, entryOf(message, false));
    this.#bytes += sizeOf(message.payload.length, message.topic);
    return true;
  }

  /**
   * A retained message as the cluster's store holds it (issue 16: set or cleared on any node, in the order
   * that store decided): taken past this store's limits, which the publishing node judged; nodes racing
   * for the last place may pass them by a few, and every node then holds the same set.
   */
  replicate(message: Message): void {
    this.#delete(message.topic);
    if (message.payload.length === 0) return;
    this.#byTopic.set(message.topic, entryOf(message, false));
    this.#bytes += sizeOf(message.payload.length, message.topic);
  }

  /** The store has written this message: if it is still the topic's, its payload may now leave memory. */
  written(message: Message): void {
    const entry = this.#byTopic.get(message.topic);
    if (entry === undefined || entry.message !== message || entry.durable) return;
    entry.durable = true;
    this.#cache(entry);
  }

  /** A message the store kept (at start): its payload, if given, counts as cached. */
  restore(stored: StoredRetained): void {
    this.#delete(stored.topic);
    const message = stored.payload === undefined ? undefined : createMessage({
      topic: stored.topic, payload: stored.payload, qos: stored.qos, retain: true, properties: stored.properties,
      expiresAt: stored.expiresAt, senderId: stored.senderId,
    });
    const entry: Entry = {
      topic: stored.topic, senderId: stored.senderId, qos: stored.qos, properties: stored.properties, expiresAt: stored.expiresAt,
      payloadBytes: stored.payloadBytes, message, durable: true,
    };
    this.#byTopic.set(stored.topic, entry);
    this.#bytes += sizeOf(stored.payloadBytes, stored.topic);
    if (message !== undefined) this.#cache(entry);
  }

  #delete(topic: string): void {
    const old = this.#byTopic.get(topic);
    if (old === undefined) return;
    this.#byTopic.delete(topic);
    this.#bytes -= sizeOf(old.payloadBytes, old.topic);
    this.#uncache(old);
  }

  /** Every topic with a retained message now (`get` reads each one; a topic may expire or be cleared meanwhile). */
  topics(): IterableIterator<string> {
    return this.#byTopic.keys();
  }

  /** Retained messages matching a filter; expired ones are dropped on the way [MQTT-3.3.2-5]. */
  match(filter: string, now: number): RetainedRef[] {
    const out: RetainedRef[] = [];
    if (!filter.includes('+') && !filter.includes('#')) {
      const e = this.#byTopic.get(filter);
      if (e !== undefined) this.#keepLive(e, now, out);
      return out;
    }
    for (const e of this.#byTopic.values()) {
      if (topicMatches(filter, e.topic)) this.#keepLive(e, now, out);
    }
    return out;
  }

  #keepLive(e: Entry, now: number, out: RetainedRef[]): void {
    if (e.expiresAt !== 0 && e.expiresAt <= now) this.#expire(e.topic);
    else out.push(e);
  }

  #expire(topic: string): void {
    this.#delete(topic);
    this.onExpired?.(topic);
  }

  /**
   * Drops expired messages nobody asked for, looking at up to `budget` topics per call and going on
   * from there at the next: their bytes count against the limits until dropped.
   */
  sweepExpired(now: number, budget: number): void {
    for (let i = 0; i < budget; i++) {
      this.#sweepCursor ??= this.#byTopic.values();
      const next = this.#sweepCursor.next();
      if (next.done === true) {
        this.#sweepCursor = null;
        return;
      }
      const e = next.value;
      if (e.expiresAt !== 0 && e.expiresAt <= now) this.#expire(e.topic);
    }
  }

  /**
   * The topic's retained message now, payload included (read back from the store if it left memory);
   * undefined when the topic has none any more, it expired, or the store lost it.
   */
  get(topic: string, now: number): Message | undefined {
    const entry = this.#byTopic.get(topic);
    if (entry === undefined) return undefined;
    if (entry.message !== undefined) {
      if (isExpired(entry.message, now)) {
        this.#expire(topic);
        return undefined;
      }
      if (entry.durable) { // most recently used: to the end of the eviction order
        this.#cached.delete(topic);
        this.#cached.set(topic, entry);
      }
      return entry.message;
    }
    if (entry.expiresAt !== 0 && entry.expiresAt <= now) {
      this.#expire(topic);
      return undefined;
    }
    const payload = this.#bodies?.readRetainedPayload(topic);
    this.reads++;
    if (payload === undefined) { // the store does not have it (damaged, edited by hand): the index follows
      this.#delete(topic);
      return undefined;
    }
    const message = createMessage({
      topic, payload, qos: entry.qos, retain: true, properties: entry.properties, expiresAt: entry.expiresAt, senderId: entry.senderId,
    });
    entry.message = message;
    this.#cache(entry); // may evict it again at once (a payload larger than the cache): the caller has it
    return message;
  }

  /** Keeps a written entry's payload in memory, evicting the least recently used beyond the cache's bytes. */
  #cache(entry: Entry): void {
    if (this.#bodies === undefined || entry.message === undefined) return; // nowhere to read it back from: kept
    this.#cached.set(entry.topic, entry);
    this.#cachedBytes += entry.payloadBytes;
    for (const [topic, old] of this.#cached) {
      if (this.#cachedBytes <= this.#cacheBytes) break;
      this.#cached.delete(topic);
      this.#cachedBytes -= old.payloadBytes;
      old.message = undefined; // deliveries holding it keep their reference; the index no longer does
    }
  }

  #uncache(entry: Entry): void {
    if (this.#cached.get(entry.topic) !== entry) return;
    this.#cached.delete(entry.topic);
    this.#cachedBytes -= entry.payloadBytes;
  }
}
