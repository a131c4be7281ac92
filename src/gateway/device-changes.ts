/**
 * Which devices of a gateway the operator changed (edited, disabled, deleted) since a given moment. A
 * CONNECT read its device (a credential row, a state) before a slow step — a password hash, a call to the
 * customer's service, a database read — and asks afterwards whether that read can still be trusted.
 * Moments are sequence numbers, not clocks. Memory is bounded: past `maxTracked` devices the record starts
 * again, and a moment from before that counts as "changed" (it costs one more read, never a missed change).
 */
export class DeviceChanges {
  #seq = 0;
  /** Changes up to this moment were forgotten. */
  #floor = 0;
  readonly #last = new Map<string, number>();
  readonly #maxTracked: number;

  constructor(maxTracked = 10_000) {
    this.#maxTracked = maxTracked;
  }

  /** The current moment. */
  get now(): number {
    return this.#seq;
  }

  /** The operator changed `deviceName`. */
  record(deviceName: string): void {
    if (this.#last.size >= this.#maxTracked && !this.#last.has(deviceName)) {
      this.#last.clear();
      this.#floor = this.#seq;
    }
    this.#last.set(deviceName, ++this.#seq);
  }

  /** Was `deviceName` changed after `moment` (a value of `now`)? */
  changedSince(deviceName: string, moment: number): boolean {
    if (moment < this.#floor) return true;
    return (this.#last.get(deviceName) ?? 0) > moment;
  }
}
