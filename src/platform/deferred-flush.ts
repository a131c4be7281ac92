/**
 * Batched writers (message store, webhook outbox) share this: work piles up, one write drains it a
 * little later (or at once when asked), never two writes at a time, and `flush()` resolves only
 * after a write that started after the call (so whatever was queued before it is written).
 */
export class DeferredFlush {
  readonly #write: () => Promise<void>;
  readonly #pending: () => boolean;
  #timer: NodeJS.Timeout | null = null;
  #running: Promise<void> | null = null;

  /** `write` drains the queued work; `pending` says whether any is queued. */
  constructor(write: () => Promise<void>, pending: () => boolean) {
    this.#write = write;
    this.#pending = pending;
  }

  /** A write within `delayMs`; 0 brings a scheduled one forward. */
  schedule(delayMs: number): void {
    if (this.#timer !== null) {
      if (delayMs > 0) return;
      clearTimeout(this.#timer);
    }
    this.#timer = setTimeout(() => {
      this.#timer = null;
      void this.flush();
    }, delayMs);
    this.#timer.unref();
  }

  async flush(): Promise<void> {
    while (this.#running !== null) await this.#running;
    if (!this.#pending()) return;
    this.#running = this.#write().finally(() => {
      this.#running = null;
    });
    await this.#running;
  }

  /** No more timers; writes what is queued. */
  async close(): Promise<void> {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    await this.flush();
  }
}
