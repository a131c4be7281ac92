/**
 * A backend that keeps failing trips the breaker: for `openMs` every device is answered "server
 * unavailable" at once instead of piling up behind timeouts. Then one probe call is let through
 * (half-open); its success closes the breaker, its failure opens it again.
 */
import type { BreakerState } from '../third-party.ts';

export interface BreakerOptions {
  /** Consecutive backend failures that open the breaker. */
  failureThreshold: number;
  openMs: number;
}

export const BREAKER_DEFAULTS: BreakerOptions = { failureThreshold: 5, openMs: 10_000 };

export class CircuitBreaker {
  readonly #options: BreakerOptions;
  readonly #onChange: (state: BreakerState) => void;
  #state: BreakerState = 'closed';
  #failures = 0;
  #openedAt = 0;
  #probing = false;

  constructor(options: BreakerOptions, onChange: (state: BreakerState) => void) {
    this.#options = options;
    this.#onChange = onChange;
  }

  get state(): BreakerState {
    return this.#state;
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
    this.#failures = 0;
    this.#probing = false;
    if (this.#state !== 'closed') this.#set('closed');
  }

  recordFailure(now = Date.now()): void {
    this.#failures++;
    const probeFailed = this.#state === 'half_open';
    this.#probing = false;
    if (probeFailed || (this.#state === 'closed' && this.#failures >= this.#options.failureThreshold)) {
      this.#openedAt = now;
      this.#set('open');
    }
  }

  #set(state: BreakerState): void {
    this.#state = state;
    this.#onChange(state);
  }
}
