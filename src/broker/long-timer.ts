/**
 * A cancellable one-shot timer for protocol intervals measured in seconds (will delay, session
 * expiry), which may exceed setTimeout's 2^31-1 ms limit. Unref'd: it never keeps the process alive.
 */
const MAX_TIMEOUT_MS = 0x7fffffff;

export class LongTimer {
  readonly #deadline: number;
  readonly #fn: () => void;
  #handle: NodeJS.Timeout | undefined;

  constructor(seconds: number, fn: () => void) {
    this.#deadline = Date.now() + seconds * 1000;
    this.#fn = fn;
    this.#arm();
  }

  #arm(): void {
    const left = this.#deadline - Date.now();
    if (left <= 0) {
      this.#handle = undefined;
      this.#fn();
      return;
    }
    this.#handle = setTimeout(() => this.#arm(), Math.min(left, MAX_TIMEOUT_MS));
    this.#handle.unref();
  }

  cancel(): void {
    clearTimeout(this.#handle);
    this.#handle = undefined;
  }

  /** Runs the action now instead of at the deadline. */
  fireNow(): void {
    if (this.#handle === undefined) return;
    this.cancel();
    this.#fn();
  }
}
