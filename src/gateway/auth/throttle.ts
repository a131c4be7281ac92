/**
 * Brute-force protection of the CONNECT path, applied before any slow hash or outbound call (issue 13).
 *
 * Failed attempts are accounted per (username, source address) pair and per source address, never per
 * username alone: a device is only slowed down by failures from its own address, so a stranger guessing
 * its password elsewhere cannot lock it out. Attempts of one pair run one at a time and each waits the
 * delay its pair's (or address's) past failures earned *before* doing any work, so 200 parallel guesses
 * cost what 200 sequential ones do. Once a pair has failed more than its free failures, only a short
 * queue of its attempts may wait; the rest are refused at once, without work (a device opening several
 * connections at once, with no failures, just waits its turn).
 * Concurrent verifications per username and per address are bounded too (the hash CPU and the
 * customer's service are shared by everyone).
 */
export interface ThrottleOptions {
  /** Failures of one (username, address) pair allowed without delay. */
  freeFailures: number;
  /** Failures from one address (any usernames) allowed without delay: a fleet behind one NAT mistypes too. */
  freeAddressFailures: number;
  baseDelayMs: number;
  maxDelayMs: number;
  /** A record older than this is forgotten. */
  windowMs: number;
  /** Bound on tracked keys; the oldest are evicted. */
  maxKeys: number;
  /** Attempts of one pair waiting behind the running one while it has no failures beyond the free ones. */
  maxQueuedPerPair: number;
  /** … and once it has: more are refused without work. */
  maxWaitingPerPair: number;
  /** Verifications running at once for one username (from all addresses), and waiting for a turn. */
  maxConcurrentPerUsername: number;
  maxWaitingPerUsername: number;
  /** Verifications running at once from one address, and waiting for a turn. */
  maxConcurrentPerAddress: number;
  maxWaitingPerAddress: number;
}

export const DEFAULT_THROTTLE: ThrottleOptions = {
  freeFailures: 3, freeAddressFailures: 20, baseDelayMs: 250, maxDelayMs: 5000, windowMs: 10 * 60_000, maxKeys: 50_000,
  maxQueuedPerPair: 64, maxWaitingPerPair: 4, maxConcurrentPerUsername: 4, maxWaitingPerUsername: 64, maxConcurrentPerAddress: 32, maxWaitingPerAddress: 256,
};

interface FailureRecord {
  failures: number;
  lastAt: number;
  /** When its queue was last cut to `maxWaitingPerPair` (0: never). */
  trimmedAt: number;
}

/** Counts failures per key and turns them into a delay: free ones, then doubling up to a cap. */
export class FailureThrottle {
  readonly #records = new Map<string, FailureRecord>();
  readonly #options: ThrottleOptions;

  constructor(options: Partial<ThrottleOptions> = {}) {
    this.#options = { ...DEFAULT_THROTTLE, ...options };
  }

  /** Records a failure against each key; returns the delay the worst key has now earned. */
  recordFailure(keys: readonly string[], now = Date.now()): number {
    for (const key of keys) {
      const r = this.#fresh(key, now) ?? { failures: 0, lastAt: now, trimmedAt: 0 };
      r.failures++;
      r.lastAt = now;
      this.#records.delete(key); // re-insert: Map order = recency, for eviction
      this.#records.set(key, r);
    }
    while (this.#records.size > this.#options.maxKeys) this.#records.delete(this.#records.keys().next().value!);
    return this.delayFor(keys, now);
  }

  /** The delay an attempt under these keys waits before any work; `free` per key (default `freeFailures`). */
  delayFor(keys: readonly string[], now = Date.now(), free: (key: string) => number = () => this.#options.freeFailures): number {
    let delay = 0;
    for (const key of keys) {
      const over = (this.#fresh(key, now)?.failures ?? 0) - free(key);
      if (over > 0) delay = Math.max(delay, Math.min(this.#options.maxDelayMs, this.#options.baseDelayMs * 2 ** (over - 1)));
    }
    return delay;
  }

  recordSuccess(key: string): void {
    this.#records.delete(key);
  }

  /** The key's queue was cut now (it is throttled). */
  recordTrim(key: string, now = Date.now()): void {
    const r = this.#fresh(key, now);
    if (r !== undefined) r.trimmedAt = now;
  }

  /** When the key's queue was last cut (0: never, or its record is gone). */
  trimmedAt(key: string, now = Date.now()): number {
    return this.#fresh(key, now)?.trimmedAt ?? 0;
  }

  /** Keys with a record (for the bound's test: expired ones are dropped when met). */
  get size(): number {
    return this.#records.size;
  }

  #fresh(key: string, now: number): FailureRecord | undefined {
    const r = this.#records.get(key);
    if (r !== undefined && now - r.lastAt > this.#options.windowMs) {
      this.#records.delete(key);
      return undefined;
    }
    return r;
  }
}

/** Turns of a bounded number of holders per key, FIFO, with a bounded queue. */
class KeyedGate {
  readonly #running = new Map<string, number>();
  readonly #waiting = new Map<string, ((admitted: boolean) => void)[]>();

  /** Resolves true when the caller holds a turn (release it!), false at once when the queue is full. */
  enter(key: string, limit: number, maxWaiting: number): boolean | Promise<boolean> {
    const running = this.#running.get(key) ?? 0;
    if (running < limit) {
      this.#running.set(key, running + 1);
      return true;
    }
    const queue = this.#waiting.get(key) ?? [];
    if (queue.length >= maxWaiting) return false;
    this.#waiting.set(key, queue);
    return new Promise((resolve) => queue.push(resolve));
  }

  /** Refuses the waiters beyond the first `maxWaiting` (newest first). */
  trim(key: string, maxWaiting: number): void {
    const queue = this.#waiting.get(key);
    if (queue === undefined) return;
    for (const refused of queue.splice(maxWaiting)) refused(false);
    if (queue.length === 0) this.#waiting.delete(key);
  }

  /** Gives back a turn `enter` gave (to the next waiter, if any). */
  leave(key: string): void {
    const queue = this.#waiting.get(key);
    const next = queue?.shift();
    if (next !== undefined) {
      if (queue!.length === 0) this.#waiting.delete(key);
      next(true); // the turn passes on: `running` stays as it is
      return;
    }
    const running = this.#running.get(key)! - 1;
    if (running <= 0) this.#running.delete(key);
    else this.#running.set(key, running);
  }

  /** Keys with a turn running or waiting: none is kept once its turns are over. */
  get size(): number {
    return this.#running.size + this.#waiting.size;
  }
}

/** A turn to verify one CONNECT; `finish` records the outcome and passes the turns on. */
export interface ConnectTurn {
  finish(outcome: 'success' | 'failure' | 'other'): void;
}

/** What the CONNECT path asks for a turn: a ConnectThrottle, or on a cluster node the cluster's (issue 16). */
export interface ConnectGate {
  /** `arrivedAt`: when the attempt's connection reached the node (epoch ms), if not now (another node asked: ConnectThrottle.enter). */
  enter(username: string | undefined, address: string | undefined, arrivedAt?: number): Promise<ConnectTurn | null>;
}

export class ConnectThrottle implements ConnectGate {
  readonly #options: ThrottleOptions;
  readonly #failures: FailureThrottle;
  readonly #pairs = new KeyedGate();
  readonly #usernames = new KeyedGate();
  readonly #addresses = new KeyedGate();
  readonly #sleep: (ms: number) => Promise<void>;

  constructor(options: Partial<ThrottleOptions> = {}, sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))) {
    this.#options = { ...DEFAULT_THROTTLE, ...options };
    this.#failures = new FailureThrottle(this.#options);
    this.#sleep = sleep;
  }

  /** Pairs, usernames and addresses with a turn running or waiting (for the test that none is kept after). */
  get heldKeys(): number {
    return this.#pairs.size + this.#usernames.size + this.#addresses.size;
  }

  /**
   * Waits for this attempt's turn and its earned delay; null = refused without any work (too many
   * attempts of this pair, username or address are already waiting). `arrivedAt`: when the attempt's connection
   * reached its node, on a cluster where another node asks this one (cluster/attempt-throttles.ts): one that arrived before
   * its throttled pair's queue was cut and reaches it after would have been cut with the others, and is refused
   * (the hop between nodes must not let a guess in that the same guess on this node would not have got).
   */
  async enter(username: string | undefined, address: string | undefined, arrivedAt?: number): Promise<ConnectTurn | null> {
    const o = this.#options;
    const user = `u:${username ?? ''}`;
    const addr = `a:${address ?? ''}`;
    const pair = `p:${username ?? ''}\u0000${address ?? ''}`;
    const earned = (): number => this.#failures.delayFor([pair, addr], Date.now(), (key) => (key === addr ? o.freeAddressFailures : o.freeFailures));
    if (arrivedAt !== undefined && arrivedAt < this.#failures.trimmedAt(pair) && earned() !== 0) return null;
    if (!await this.#pairs.enter(pair, 1, earned() === 0 ? o.maxQueuedPerPair : o.maxWaitingPerPair)) return null;
    const delay = earned();
    if (delay !== 0) await this.#sleep(delay);
    if (!await this.#addresses.enter(addr, o.maxConcurrentPerAddress, o.maxWaitingPerAddress)) {
      this.#pairs.leave(pair);
      return null;
    }
    if (!await this.#usernames.enter(user, o.maxConcurrentPerUsername, o.maxWaitingPerUsername)) {
      this.#addresses.leave(addr);
      this.#pairs.leave(pair);
      return null;
    }
    let done = false;
    return {
      finish: (outcome) => {
        if (done) return;
        done = true;
        if (outcome === 'failure') {
          this.#failures.recordFailure([pair, addr]);
          // Now throttled: of the guesses queued behind this one while it looked innocent, only a few may wait.
          if (earned() !== 0) {
            this.#pairs.trim(pair, o.maxWaitingPerPair);
            this.#failures.recordTrim(pair);
          }
        } else if (outcome === 'success') this.#failures.recordSuccess(pair);
        this.#usernames.leave(user);
        this.#addresses.leave(addr);
        this.#pairs.leave(pair);
      },
    };
  }
}
