/**
 * Holds a gateway's outgoing packets until the durable state they depend on is written.
 *
 * The flush scheduler runs every journal's commit before a turn's socket writes, so an acknowledgement
 * (PUBACK, PUBREC, a SUBACK of stored filters, a QoS 1/2 delivery recorded in a session) never leaves
 * before its state is stored. When a store writes on a thread of its own, the commit is a promise:
 * each one is tracked here under a sequence number, and a connection's output queued up to a commit
 * waits for that commit's number, not for commits started later (under a steady flood there is always
 * one in flight, and "wait until nothing is in flight" would hold a connection's output forever).
 *
 * One gate per engine (gateway): a quiet gateway's PINGRESP never waits for another gateway's commit,
 * which is the point of writing on a thread (one device's 1 MB retained messages used to stall every
 * gateway's sockets while SQLite appended them). Connections of the same gateway share its gate: a
 * packet may wait for a commit it does not depend on, by the time of one write.
 */
export class CommitGate {
  /** Number of the last commit started. */
  #started = 0;
  /** Every commit up to this number has settled. */
  #done = 0;
  /** Commits settled ahead of an earlier one (two stores, two threads). */
  readonly #settledAhead = new Set<number>();
  readonly #waiters = new Set<() => void>();

  /**
   * The commit a packet queued now must wait for: the last one started, or 0 when every commit has
   * settled (nothing to wait for).
   */
  get required(): number {
    return this.#started === this.#done ? 0 : this.#started;
  }

  /** Whether commit `seq` (and every commit before it) has settled. */
  passed(seq: number): boolean {
    return seq <= this.#done;
  }

  /**
   * A commit in flight. Settled either way: a failed write is logged by its store and its packets
   * leave as they did when a synchronous write failed (holding them would only stall the client).
   */
  track(commit: PromiseLike<unknown>): void {
    const seq = ++this.#started;
    const settle = (): void => this.#settle(seq);
    commit.then(settle, settle);
  }

  /** `release` runs each time commits settle, until `unwait`. */
  wait(release: () => void): void {
    this.#waiters.add(release);
  }

  unwait(release: () => void): void {
    this.#waiters.delete(release);
  }

  #settle(seq: number): void {
    if (seq !== this.#done + 1) {
      this.#settledAhead.add(seq);
      return;
    }
    this.#done = seq;
    while (this.#settledAhead.delete(this.#done + 1)) this.#done++;
    for (const release of [...this.#waiters]) release();
  }
}
