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
 *
 * Backpressure: a write on a thread no longer slows the input down as a synchronous one did, so a
 * client that publishes without waiting for its acknowledgements (3.1.1 has no Receive Maximum) could
 * queue state for the writer faster than the disk takes it, without bound. The gate counts the bytes
 * recorded for writing and not yet committed; past `limitBytes` the gateway's connections stop reading
 * (`overloaded`) until half of it is written (`relieved`). Bytes are counted from the moment the state
 * is recorded, not when its commit starts at the end of the turn, so one turn cannot overshoot.
 */
export class CommitGate {
  readonly #limitBytes: number;
  /** Bytes recorded and not yet committed (or dropped). */
  #uncommittedBytes = 0;
  /** Bytes of each commit in flight, released when it settles. */
  readonly #bytesOf = new Map<number, number>();
  #reliefWaiters: (() => void)[] = [];
  /** Times the gate went over its limit (the gateway's reads paused). */
  overloads = 0;
  /** Told when the gate goes over its limit and when it is back under half of it (logs). */
  onPressure: ((overloaded: boolean, bytes: number) => void) | undefined;
  #overloadedSince = false;

  /** `limitBytes`: bytes recorded and not yet committed past which reading pauses (0 = no limit). */
  constructor(limitBytes = 0) {
    this.#limitBytes = limitBytes;
  }
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

  /** Bytes recorded and not yet committed. */
  get uncommittedBytes(): number {
    return this.#uncommittedBytes;
  }

  /** Whether reading should pause: more bytes wait for the writer than the limit. */
  get overloaded(): boolean {
    return this.#limitBytes > 0 && this.#uncommittedBytes > this.#limitBytes;
  }

  /** State of `bytes` recorded for the next commit. */
  add(bytes: number): void {
    this.#uncommittedBytes += bytes;
    if (!this.#overloadedSince && this.overloaded) {
      this.#overloadedSince = true;
      this.overloads++;
      this.onPressure?.(true, this.#uncommittedBytes);
    }
  }

  /** Bytes added that will not go through a tracked commit (written synchronously, or not written). */
  release(bytes: number): void {
    this.#uncommittedBytes -= bytes;
    this.#relieve();
  }

  /**
   * A commit in flight, carrying `bytes` added before it. Settled either way: a failed write is logged
   * by its store and its packets leave as they did when a synchronous write failed (holding them would
   * only stall the client).
   */
  track(commit: PromiseLike<unknown>, bytes = 0): void {
    const seq = ++this.#started;
    if (bytes > 0) this.#bytesOf.set(seq, bytes);
    const settle = (): void => this.#settle(seq);
    commit.then(settle, settle);
  }

  /**
   * `bytes` of state on their way to a store that no output waits for here (a cluster's retained store:
   * the acknowledgement waits on its own promise): counted against the limit until `settles` settles.
   */
  hold(settles: PromiseLike<unknown>, bytes: number): void {
    this.add(bytes);
    const done = (): void => this.release(bytes);
    settles.then(done, done);
  }

  /** Settles once the bytes waiting for the writer are back to half the limit (at once when they are). */
  relieved(): Promise<void> {
    if (!this.#underLowWater()) return new Promise((resolve) => this.#reliefWaiters.push(resolve));
    return Promise.resolve();
  }

  #underLowWater(): boolean {
    return this.#limitBytes === 0 || this.#uncommittedBytes <= this.#limitBytes / 2;
  }

  #relieve(): void {
    if (!this.#underLowWater()) return;
    if (this.#overloadedSince) {
      this.#overloadedSince = false;
      this.onPressure?.(false, this.#uncommittedBytes);
    }
    if (this.#reliefWaiters.length === 0) return;
    const waiters = this.#reliefWaiters;
    this.#reliefWaiters = [];
    for (const resolve of waiters) resolve();
  }

  /** `release` runs each time commits settle, until `unwait`. */
  wait(release: () => void): void {
    this.#waiters.add(release);
  }

  unwait(release: () => void): void {
    this.#waiters.delete(release);
  }

  #settle(seq: number): void {
    const bytes = this.#bytesOf.get(seq);
    if (bytes !== undefined) {
      // Written (or failed): either way no longer waiting in the writer's queue.
      this.#bytesOf.delete(seq);
      this.release(bytes);
    }
    if (seq !== this.#done + 1) {
      this.#settledAhead.add(seq);
      return;
    }
    this.#done = seq;
    while (this.#settledAhead.delete(this.#done + 1)) this.#done++;
    for (const release of [...this.#waiters]) release();
  }
}
