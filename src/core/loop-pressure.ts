/**
 * Whether this thread's event loop has had no spare time for a while: its utilization (the share of wall time spent
 * running callbacks, `performance.eventLoopUtilization`) sampled every `windowMs`. Saturated once `enterWindows`
 * windows in a row were at or above `enterAt`; no longer after one window below `leaveAt` (the gap keeps it from
 * flapping at the edge).
 *
 * Work that may be skipped asks it, so that a loop with no time to spare gives it to what may not: data parsing runs
 * after a message is routed and is bounded and droppable by design, while every device's MQTT traffic passes through
 * this one loop. At saturation on the pinned core of `npm run bench`, the ~0.3 % of messages parsing still got through
 * cost MQTT ~10 % of its throughput (the sandbox thread, the collection of its garbage and the hand-over all ran on that
 * core; docs/benchmarks.md, sessions 19–21), so a gateway whose parsing queue overflows while the loop is saturated
 * is shed (parser.ts): what waits and what comes is stored unparsed until the loop has time again; a gateway whose
 * parsing keeps up goes on parsing. `/metrics` shows the state and the episodes (`gatehouse_event_loop_saturated`,
 * `gatehouse_event_loop_saturations_total`).
 */
import { performance, type EventLoopUtilization } from 'node:perf_hooks';

export interface LoopPressureOptions {
  windowMs: number;
  enterAt: number;
  enterWindows: number;
  leaveAt: number;
}

/**
 * One second of a loop busy ≥ 90 % of the time; free again at the first quarter second below 75 %. A loop forwarding as
 * fast as its core allows measured 0.96–0.99 in half-second windows (`npm run bench`, qos0-tls), but only 0.93–0.97 with
 * parsing's thread on the same core: a loop woken while another thread holds the core counts the wait as idle.
 */
export const DEFAULT_LOOP_PRESSURE: LoopPressureOptions = { windowMs: 250, enterAt: 0.9, enterWindows: 4, leaveAt: 0.75 };

/** What a user of the signal reads: a plain field, no call per message. */
export interface LoopSaturation {
  readonly saturated: boolean;
}

export class LoopPressure implements LoopSaturation {
  saturated = false;
  /** Times the loop became saturated since start (`gatehouse_event_loop_saturations_total`). */
  episodes = 0;
  readonly #options: LoopPressureOptions;
  readonly #sample: () => EventLoopUtilization;
  #last: EventLoopUtilization;
  #streak = 0;
  #timer: NodeJS.Timeout | undefined;

  /** `sample`: the utilization counters (tests give their own; the default is this thread's). */
  constructor(options: LoopPressureOptions = DEFAULT_LOOP_PRESSURE, sample: () => EventLoopUtilization = () => performance.eventLoopUtilization()) {
    if (!(options.windowMs > 0 && options.enterWindows >= 1 && options.leaveAt <= options.enterAt)) {
      throw new RangeError('loop pressure: windowMs > 0, enterWindows >= 1 and leaveAt <= enterAt');
    }
    this.#options = options;
    this.#sample = sample;
    this.#last = sample();
    this.#timer = setInterval(() => this.tick(), options.windowMs);
    this.#timer.unref();
  }

  /** One window's end: run by the timer (public for tests that step it themselves). */
  tick(): void {
    const now = this.#sample();
    // The delta by hand: `eventLoopUtilization(now, last)` answers zeros on Node 26 for counters it did not make.
    const active = now.active - this.#last.active;
    const total = active + now.idle - this.#last.idle;
    const used = total > 0 ? active / total : 0;
    this.#last = now;
    if (used >= this.#options.enterAt) {
      this.#streak++;
      if (!this.saturated && this.#streak >= this.#options.enterWindows) {
        this.saturated = true;
        this.episodes++;
      }
    } else {
      this.#streak = 0;
      if (used < this.#options.leaveAt) this.saturated = false;
    }
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.saturated = false;
  }
}
