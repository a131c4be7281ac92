/**
 * Pacing of what one connection publishes (EMQX's limiter, not a drop): token buckets of messages and
 * bytes per second with one second of burst. A PUBLISH that overdraws a bucket is still handled; the
 * connection then stops reading until the debt is repaid, so TCP pushes back on the device and nothing
 * it sent is lost.
 */
export class Pacer {
  #messages = 0;
  #bytes = 0;
  #messageRate = 0;
  #byteRate = 0;
  #at: number;

  constructor(now: number) {
    this.#at = now;
  }

  /**
   * Takes one PUBLISH of `size` bytes at `now` (ms). Returns how many ms reading must pause; 0 = go on.
   * A rate of 0 is no limit; a changed rate (a live edit) starts a full bucket.
   */
  take(size: number, messageRate: number, byteRate: number, now: number): number {
    const elapsed = Math.max(0, now - this.#at) / 1000;
    this.#at = now;
    let wait = 0;
    if (messageRate > 0) {
      if (messageRate !== this.#messageRate) this.#messages = this.#messageRate = messageRate;
      this.#messages = Math.min(messageRate, this.#messages + elapsed * messageRate) - 1;
      if (this.#messages < 0) wait = (-this.#messages / messageRate) * 1000;
    }
    if (byteRate > 0) {
      if (byteRate !== this.#byteRate) this.#bytes = this.#byteRate = byteRate;
      this.#bytes = Math.min(byteRate, this.#bytes + elapsed * byteRate) - size;
      if (this.#bytes < 0) wait = Math.max(wait, (-this.#bytes / byteRate) * 1000);
    }
    return Math.ceil(wait);
  }
}
