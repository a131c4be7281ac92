/**
 * A bound in bytes on what this node has published on core NATS and the server has not yet confirmed.
 *
 * `nc.publish` never waits: it appends to the NATS client's outbound buffer, which has no bound of its own.
 * With NATS slow to read (or the connection away, reconnecting) a flood of uplinks — every one of them a
 * platform event with its payload — would grow that buffer without limit (issue 12: no device may grow the
 * process's memory without a bound in bytes). So publishes that may be dropped (at most once by design) go
 * through a budget: the bytes published since the last confirmation are counted, a flush (PING → PONG) is
 * kept in flight, and its answer confirms everything published before it was sent. Past `maxBytes`
 * unconfirmed, `admit` says no and the caller drops (and counts) what it was about to publish.
 *
 * A flush that is not answered is tried again after `retryMs` (a PING lost with a dropped connection); any
 * later answer confirms everything before it, since NATS answers PINGs in order. A flush that fails (the
 * connection closed) confirms too: what it covered is no longer in this process's memory.
 */
/**
 * What one node may have published on core NATS and not yet had confirmed, at most: the QoS 0 messages it
 * forwards to the other nodes' subscribers and shared groups, and its platform events (payloads included).
 * Past it they are dropped and counted rather than queued in the NATS client's buffer. 8 MiB is ~128
 * messages of 64 KB in flight, far more than a NATS server that keeps up ever leaves unconfirmed.
 */
export const MAX_UNCONFIRMED_PUBLISH_BYTES = 8 * 1024 * 1024;

export class PublishBudget {
  readonly maxBytes: number;
  readonly #flush: () => Promise<void>;
  readonly #retryMs: number;
  readonly #now: () => number;
  /** Bytes admitted since the start, and of those the ones a flush's answer confirmed. */
  #published = 0;
  #confirmed = 0;
  /** The newest flush sent (older ones may still be out, lost with a connection: they no longer hold anything up). */
  #newest = 0;
  #newestPending = false;
  #newestAt = 0;

  constructor(maxBytes: number, flush: () => Promise<void>, retryMs = 5_000, now: () => number = Date.now) {
    this.maxBytes = maxBytes;
    this.#flush = flush;
    this.#retryMs = retryMs;
    this.#now = now;
  }

  /** Bytes published and not yet confirmed by the server. */
  get unconfirmed(): number {
    return this.#published - this.#confirmed;
  }

  /**
   * Whether `bytes` more may be published now (true: they are counted, publish them). One publish larger than
   * the whole budget is still admitted when nothing else is unconfirmed, so it is not refused forever.
   */
  admit(bytes: number): boolean {
    const unconfirmed = this.unconfirmed;
    if (unconfirmed > 0 && unconfirmed + bytes > this.maxBytes) {
      this.#confirmSoon();
      return false;
    }
    this.#published += bytes;
    this.#confirmSoon();
    return true;
  }

  #confirmSoon(): void {
    if (this.#published === this.#confirmed) return;
    if (this.#newestPending && this.#now() - this.#newestAt < this.#retryMs) return;
    const mark = this.#published;
    const id = ++this.#newest;
    this.#newestPending = true;
    this.#newestAt = this.#now();
    const settle = (): void => {
      if (mark > this.#confirmed) this.#confirmed = mark;
      if (id !== this.#newest) return;
      this.#newestPending = false;
      // What was published while this flush was out needs an answer of its own.
      this.#confirmSoon();
    };
    let flushed: Promise<void>;
    try {
      flushed = this.#flush();
    } catch {
      flushed = Promise.resolve();
    }
    flushed.then(settle, settle);
  }
}
