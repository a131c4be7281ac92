/**
 * Fans platform events out to live listeners (SSE streams, webhooks) and keeps the last few in a
 * ring so a stream that reconnects with Last-Event-ID gets what it missed. Listeners are called
 * synchronously and must not block: each one queues on its own side.
 */
import { approximateEventBytes, matches, type EventFilter, type PlatformEvent } from './events.ts';

/**
 * `remote`: the event is of a device connected to another node of the cluster (its own node stored it and
 * calls the webhooks for it); a stream shows it, nothing else acts on it.
 */
export type EventListener = (event: PlatformEvent, remote: boolean) => void;

export class EventHub {
  readonly #ring: (PlatformEvent | undefined)[];
  readonly #sizes: number[];
  #next = 0;
  #size = 0;
  #bytes = 0;
  readonly #replayBytes: number;
  readonly #listeners = new Set<EventListener>();

  /**
   * Keeps the last `replayCapacity` events, and fewer when they hold more than `replayBytes` (1,000
   * events of 1 MB messages would otherwise keep 1.3 GB of base64 for a stream's resume). The newest
   * event is always kept.
   */
  constructor(replayCapacity: number, replayBytes = Number.POSITIVE_INFINITY) {
    this.#ring = new Array<PlatformEvent | undefined>(Math.max(1, replayCapacity));
    this.#sizes = new Array<number>(this.#ring.length).fill(0);
    this.#replayBytes = replayBytes;
  }

  /** Approximate bytes of the events kept for replay. */
  get replayBytes(): number {
    return this.#bytes;
  }

  publish(event: PlatformEvent, remote = false): void {
    const size = approximateEventBytes(event);
    this.#bytes += size - this.#sizes[this.#next]!; // an overwritten slot gives its bytes back
    this.#ring[this.#next] = event;
    this.#sizes[this.#next] = size;
    this.#next = (this.#next + 1) % this.#ring.length;
    if (this.#size < this.#ring.length) this.#size++;
    while (this.#bytes > this.#replayBytes && this.#size > 1) {
      const oldest = (this.#next - this.#size + this.#ring.length) % this.#ring.length;
      this.#bytes -= this.#sizes[oldest]!;
      this.#sizes[oldest] = 0;
      this.#ring[oldest] = undefined;
      this.#size--;
    }
    for (const listener of this.#listeners) listener(event, remote);
  }

  subscribe(listener: EventListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Buffered events published after the one with id `lastId` that match, oldest first: by place, not by id,
   * since ids sort by when a message arrived and a parsed message is published later than events of other
   * devices that came after it. An id no longer buffered (or from elsewhere) falls back to the ids' time
   * order: one older than the whole buffer replays all of it (what was lost before that is gone).
   */
  replayAfter(lastId: string, filter: EventFilter): PlatformEvent[] {
    const start = (this.#next - this.#size + this.#ring.length) % this.#ring.length;
    const at = (i: number): PlatformEvent => this.#ring[(start + i) % this.#ring.length]!;
    let after = -1;
    for (let i = this.#size - 1; i >= 0 && after < 0; i--) if (at(i).id === lastId) after = i;
    const out: PlatformEvent[] = [];
    for (let i = after + 1; i < this.#size; i++) {
      const event = at(i);
      if ((after >= 0 || event.id > lastId) && matches(filter, event)) out.push(event);
    }
    return out;
  }
}
