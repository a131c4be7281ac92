/**
 * A session's queue of outbound QoS 1/2 messages waiting for room in its inflight window: a FIFO on
 * a ring of power-of-two size, written in place.
 *
 * Why not an array with push/shift: a queue held near its bound (a slow or offline subscriber with
 * `drop-oldest`) shifts and pushes once per message. V8 serves `shift` by moving the array's start
 * and `push` by reallocating the backing store once the end is reached, so a long-lived queue — in
 * the old generation by then — leaves an old-space copy behind every few hundred messages, and each
 * copy keeps the messages it referenced alive until a full collection (the same promotion the
 * inflight table had, see inflight-table.ts). The ring is replaced only when it grows, and dropped
 * back to the small size once a large queue has drained, so an idle session does not keep a big one.
 */
const MIN_CAPACITY = 8;
/** Above this capacity an emptied ring is given back. */
const KEEP_CAPACITY = 64;

export class RingQueue<T> {
  #slots: (T | undefined)[] = new Array<T | undefined>(MIN_CAPACITY).fill(undefined);
  #head = 0;
  #length = 0;

  get length(): number {
    return this.#length;
  }

  /** Slots currently allocated (for tests and memory accounting). */
  get capacity(): number {
    return this.#slots.length;
  }

  push(item: T): void {
    if (this.#length === this.#slots.length) this.#grow();
    this.#slots[(this.#head + this.#length) & (this.#slots.length - 1)] = item;
    this.#length++;
  }

  /** The oldest item, left in place. */
  get first(): T | undefined {
    return this.#length === 0 ? undefined : this.#slots[this.#head];
  }

  /** Removes and returns the oldest item. */
  shift(): T | undefined {
    if (this.#length === 0) return undefined;
    const item = this.#slots[this.#head];
    this.#slots[this.#head] = undefined; // no reference kept to a message that left
    this.#head = (this.#head + 1) & (this.#slots.length - 1);
    this.#length--;
    if (this.#length === 0) {
      this.#head = 0;
      if (this.#slots.length > KEEP_CAPACITY) this.#slots = new Array<T | undefined>(MIN_CAPACITY).fill(undefined);
    }
    return item;
  }

  /** The oldest `limit` items, in order, left in place (a read-only look at a session's queue). */
  peek(limit: number): T[] {
    const out: T[] = [];
    for (let i = 0; i < Math.min(limit, this.#length); i++) out.push(this.#slots[(this.#head + i) & (this.#slots.length - 1)] as T);
    return out;
  }

  /** Removes the items `drop` picks, keeping the others in order; returns the removed ones. */
  removeWhere(drop: (item: T) => boolean): T[] {
    const removed: T[] = [];
    for (let n = this.#length; n > 0; n--) {
      const item = this.shift()!;
      if (drop(item)) removed.push(item);
      else this.push(item);
    }
    return removed;
  }

  #grow(): void {
    const old = this.#slots;
    const slots = new Array<T | undefined>(old.length * 2).fill(undefined);
    for (let i = 0; i < this.#length; i++) slots[i] = old[(this.#head + i) & (old.length - 1)];
    this.#slots = slots;
    this.#head = 0;
  }
}
