/**
 * Fans platform events out to live listeners (SSE streams, webhooks) and keeps the last few in a
 * ring so a stream that reconnects with Last-Event-ID gets what it missed. Listeners are called
 * synchronously and must not block: each one queues on its own side.
 */
import { matches, type EventFilter, type PlatformEvent } from './events.ts';

export type EventListener = (event: PlatformEvent) => void;

export class EventHub {
  readonly #ring: (PlatformEvent | undefined)[];
  #next = 0;
  #size = 0;
  readonly #listeners = new Set<EventListener>();

  constructor(replayCapacity: number) {
    this.#ring = new Array<PlatformEvent | undefined>(Math.max(1, replayCapacity));
  }

  publish(event: PlatformEvent): void {
    this.#ring[this.#next] = event;
    this.#next = (this.#next + 1) % this.#ring.length;
    if (this.#size < this.#ring.length) this.#size++;
    for (const listener of this.#listeners) listener(event);
  }

  subscribe(listener: EventListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Buffered events after `lastId` that match, oldest first. Ids sort by time, so an id older than
   * the whole buffer replays all of it (what was lost before that is gone).
   */
  replayAfter(lastId: string, filter: EventFilter): PlatformEvent[] {
    const out: PlatformEvent[] = [];
    const start = (this.#next - this.#size + this.#ring.length) % this.#ring.length;
    for (let i = 0; i < this.#size; i++) {
      const event = this.#ring[(start + i) % this.#ring.length]!;
      if (event.id > lastId && matches(filter, event)) out.push(event);
    }
    return out;
  }
}
