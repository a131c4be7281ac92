/**
 * Hands on what each device did in the order its gateway's engine saw it, though each item is ready at its
 * own time: an uplink once parsed, a presence change once the registry recorded it. Without it a stream or a
 * webhook could see a device's first message before its `online`, or its `offline` before its last message.
 *
 * Items of a device wait only behind an earlier item of the same device that is not ready yet; while no device
 * waits, an item costs one size check. What waits is bounded: a ready item finding `maxHeld` items of its device
 * waiting already is handed on at once, out of order; what is pending is bounded where it waits
 * (the parser's queue, the bounded wait for a presence record).
 */
import { RingQueue } from '../broker/index.ts';

export class DeviceOrder {
  /** Per device, its items in the engine's order from the first that is not ready; absent when none waits. */
  readonly #waiting = new Map<string, RingQueue<Held>>();
  readonly #maxHeld: number;

  constructor(maxHeld: number) {
    this.#maxHeld = maxHeld;
  }

  /** Whether an item of the device waits (a ready one would be held): one lookup, none while nothing waits at all. */
  holds(device: string): boolean {
    return this.#waiting.size !== 0 && this.#waiting.has(device);
  }

  /** An item ready now: handed on at once unless an earlier item of its device is not ready yet. */
  ready(device: string, handOn: () => void): void {
    const held = this.#waiting.get(device);
    if (held === undefined) return handOn();
    if (held.length >= this.#maxHeld) return handOn();
    held.push({ handOn });
  }

  /**
   * An item that will be ready later, in its place after what the device did before: returns the function
   * to call once it is (with what hands it on). Call it exactly once; everything of the device waits until then.
   */
  pending(device: string): (handOn: () => void) => void {
    let held = this.#waiting.get(device);
    if (held === undefined) {
      held = new RingQueue<Held>();
      this.#waiting.set(device, held);
    }
    const item: Held = { handOn: null };
    held.push(item);
    const list = held;
    return (handOn) => {
      item.handOn = handOn;
      this.#release(device, list);
    };
  }

  /** Hands on the ready items at the head of a device's list; the list goes once it is empty. */
  #release(device: string, held: RingQueue<Held>): void {
    while (held.length > 0 && held.first!.handOn !== null) held.shift()!.handOn!();
    if (held.length === 0 && this.#waiting.get(device) === held) this.#waiting.delete(device);
  }
}

interface Held {
  /** null until the item is ready. */
  handOn: (() => void) | null;
}
