/**
 * Outbound QoS 1/2 messages in flight, by packet identifier: a slot array indexed by the id's low
 * bits. Packet ids are ours to choose, so `isFree` lets the session skip an id whose slot is taken;
 * every live id then has a slot of its own, and a lookup is one array read.
 *
 * Why not a Map: a QoS 1 stream adds and deletes one entry per message. V8 rebuilds a Map's hash
 * table every few hundred such operations, and a discarded table that already sits in the old
 * generation still points at the entries it held, so the young-generation collector keeps them (and
 * their messages and payloads) alive: every message got promoted and had to be reclaimed by full
 * mark-compact collections, about a third of the CPU of a QoS 1 stream over TLS. This array is
 * written in place and only replaced when it grows.
 */
interface Keyed {
  readonly packetId: number;
  /** Order of the flows within the session. */
  readonly seq: number;
}

const MIN_CAPACITY = 16;
/** Packet ids are 1…65535: at this size every id has its own slot. */
const MAX_CAPACITY = 65536;

export class InflightTable<T extends Keyed> {
  #slots: (T | undefined)[] = new Array<T | undefined>(MIN_CAPACITY).fill(undefined);
  #mask = MIN_CAPACITY - 1;
  #size = 0;

  get size(): number {
    return this.#size;
  }

  get(packetId: number): T | undefined {
    const entry = this.#slots[packetId & this.#mask];
    return entry !== undefined && entry.packetId === packetId ? entry : undefined;
  }

  /**
   * True when `packetId` is not in use and can be added now. Grows the table first when it is half
   * full, so that a free id is always near the next one to try.
   */
  isFree(packetId: number): boolean {
    if (2 * (this.#size + 1) > this.#slots.length && this.#slots.length < MAX_CAPACITY) this.#grow(this.#slots.length * 2);
    return this.#slots[packetId & this.#mask] === undefined;
  }

  /** Adds or replaces the entry for its packet id. */
  set(entry: T): void {
    const id = entry.packetId;
    // Ids chosen through isFree() always fit; ids restored from storage may need a larger table.
    for (;;) {
      const occupant = this.#slots[id & this.#mask];
      if (occupant === undefined) {
        this.#size++;
        break;
      }
      if (occupant.packetId === id) break;
      this.#grow(this.#slots.length * 2);
    }
    this.#slots[id & this.#mask] = entry;
  }

  delete(packetId: number): boolean {
    const at = packetId & this.#mask;
    const entry = this.#slots[at];
    if (entry === undefined || entry.packetId !== packetId) return false;
    this.#slots[at] = undefined;
    this.#size--;
    return true;
  }

  /** Entries in the order their flows began. */
  ordered(): T[] {
    const out: T[] = [];
    if (this.#size === 0) return out;
    for (const e of this.#slots) if (e !== undefined) out.push(e);
    return out.sort((a, b) => a.seq - b.seq);
  }

  #grow(capacity: number): void {
    // Growing keeps distinct slots distinct: two ids that differ in their low bits still do.
    const next = new Array<T | undefined>(Math.min(capacity, MAX_CAPACITY)).fill(undefined);
    const mask = next.length - 1;
    for (const e of this.#slots) if (e !== undefined) next[e.packetId & mask] = e;
    this.#slots = next;
    this.#mask = mask;
  }
}
