/**
 * Slows down repeated failures from one username or one address: after a few free failures each
 * further one waits longer before its CONNACK, up to a cap. A success clears the username's record.
 */
export interface ThrottleOptions {
  /** Failures allowed without delay. */
  freeFailures: number;
  baseDelayMs: number;
  maxDelayMs: number;
  /** A record older than this is forgotten. */
  windowMs: number;
  /** Bound on tracked keys; the oldest are evicted. */
  maxKeys: number;
}

export const DEFAULT_THROTTLE: ThrottleOptions = { freeFailures: 3, baseDelayMs: 250, maxDelayMs: 5000, windowMs: 10 * 60_000, maxKeys: 50_000 };

interface Record {
  failures: number;
  lastAt: number;
}

export class FailureThrottle {
  readonly #records = new Map<string, Record>();
  readonly #options: ThrottleOptions;

  constructor(options: Partial<ThrottleOptions> = {}) {
    this.#options = { ...DEFAULT_THROTTLE, ...options };
  }

  /** How long to hold the answer for a failure now recorded against these keys. */
  recordFailure(keys: readonly string[], now = Date.now()): number {
    let worst = 0;
    for (const key of keys) {
      const r = this.#fresh(key, now) ?? { failures: 0, lastAt: now };
      r.failures++;
      r.lastAt = now;
      this.#records.delete(key); // re-insert: Map order = recency, for eviction
      this.#records.set(key, r);
      worst = Math.max(worst, r.failures);
    }
    while (this.#records.size > this.#options.maxKeys) this.#records.delete(this.#records.keys().next().value!);
    const over = worst - this.#options.freeFailures;
    return over <= 0 ? 0 : Math.min(this.#options.maxDelayMs, this.#options.baseDelayMs * 2 ** (over - 1));
  }

  recordSuccess(key: string): void {
    this.#records.delete(key);
  }

  #fresh(key: string, now: number): Record | undefined {
    const r = this.#records.get(key);
    if (r !== undefined && now - r.lastAt > this.#options.windowMs) {
      this.#records.delete(key);
      return undefined;
    }
    return r;
  }
}
