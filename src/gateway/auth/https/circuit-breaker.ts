/**
 * A backend that keeps failing trips the breaker: for `openMs` every device is answered "server
 * unavailable" at once instead of piling up behind timeouts. Then one probe call is let through
 * (half-open); its success closes the breaker, its failure opens it again.
 *
 * Only an outage seen by many callers opens it (issue 13): the failures in a row must come from at least
 * `failureThreshold` distinct usernames and `minAddresses` distinct source addresses. One stranger, from
 * one address or with one username, whose CONNECTs make the customer's service fail, cannot lock every
 * other device out; it only pays its own timeouts. The callers only count failures the backend is to
 * blame for (timeouts, network errors, 5xx): a 4xx is that device's refusal.
 */
import type { BreakerState } from '../third-party.ts';

export interface BreakerOptions {
  /** Consecutive backend failures, from as many distinct usernames, that open the breaker. */
  failureThreshold: number;
  /** Distinct source addresses among those failures. */
  minAddresses: number;
  openMs: number;
}

export const BREAKER_DEFAULTS: BreakerOptions = { failureThreshold: 5, minAddresses: 2, openMs: 10_000 };

/** Who made the call that failed. */
export interface FailureSource {
  username: string | undefined;
  address: string | undefined;
}

export class CircuitBreaker {
  readonly #options: BreakerOptions;
  readonly #onChange: (state: BreakerState) => void;
  #state: BreakerState = 'closed';
  /**
   * Distinct callers of the current run of failures (bounded: counting stops at the thresholds, so a
   * stranger's endless failures under new names hold no more memory). No separate count of failures:
   * `failureThreshold` distinct usernames take at least as many failures.
   */
  readonly #usernames = new Set<string>();
  readonly #addresses = new Set<string>();
  #openedAt = 0;
  #probing = false;

  constructor(options: BreakerOptions, onChange: (state: BreakerState) => void) {
    this.#options = options;
    this.#onChange = onChange;
  }

  get state(): BreakerState {
    return this.#state;
  }

  /** Distinct usernames and addresses counted in the current run of failures (for the bound's test). */
  get counted(): { usernames: number; addresses: number } {
    return { usernames: this.#usernames.size, addresses: this.#addresses.size };
  }

  /** Whether a call may go to the backend now; false = answer "unavailable" without calling. */
  tryAcquire(now = Date.now()): boolean {
    if (this.#state === 'closed') return true;
    if (this.#state === 'open' && now - this.#openedAt >= this.#options.openMs) this.#set('half_open');
    if (this.#state === 'half_open' && !this.#probing) {
      this.#probing = true;
      return true;
    }
    return false;
  }

  /** The backend answered (accept or reject: it works). */
  recordSuccess(): void {
    this.#reset();
    // `#probing` may stay set: it counts only half open, which comes after failures, and each clears it.
    if (this.#state !== 'closed') this.#set('closed');
  }

  recordFailure(source: FailureSource, now = Date.now()): void {
    if (this.#usernames.size < this.#options.failureThreshold) this.#usernames.add(source.username ?? '');
    if (this.#addresses.size < this.#options.minAddresses) this.#addresses.add(source.address ?? '');
    const probeFailed = this.#state === 'half_open';
    this.#probing = false;
    const widespread = this.#usernames.size >= this.#options.failureThreshold && this.#addresses.size >= this.#options.minAddresses;
    if (probeFailed || (this.#state === 'closed' && widespread)) {
      this.#openedAt = now;
      this.#reset();
      this.#set('open');
    }
  }

  #reset(): void {
    this.#usernames.clear();
    this.#addresses.clear();
  }

  #set(state: BreakerState): void {
    this.#state = state;
    this.#onChange(state);
  }
}
