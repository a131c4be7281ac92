/**
 * The steps of a start, each named, logged and bounded. A start that waited on something that never answered
 * (a NATS request, a PostgreSQL query, a thread) used to wait forever without a word: the process held its
 * pid file and its connections and never listened (a CI run hung on one). Now each step says when it begins
 * and ends (`start_step`, `start_step_done`, debug), says again while it is still waiting (`start_step_slow`,
 * warn, every `slowEveryMs`: visible at the default log levels), and past its deadline fails the start with
 * GW_ERR_START_STEP_TIMED_OUT naming it, so `npm start` exits 1 with one line saying where it waited.
 */
import { GatehouseError } from './errors.ts';
import type { Logger } from './logger.ts';

export interface StartStepOptions {
  /** How often a step still running says so (10 s). */
  slowEveryMs?: number;
}

export class StartSteps {
  readonly #logger: Logger;
  readonly #slowEveryMs: number;

  constructor(logger: Logger, options: StartStepOptions = {}) {
    this.#logger = logger;
    this.#slowEveryMs = options.slowEveryMs ?? 10_000;
  }

  /**
   * Runs one step; rejects with GW_ERR_START_STEP_TIMED_OUT once `deadlineMs` passed (the step's own promise is
   * left behind: the start fails, and `npm start` exits). `what` says what the step waits on, for that message.
   */
  async run<T>(step: string, what: string, deadlineMs: number, work: () => Promise<T>): Promise<T> {
    const startedAt = Date.now();
    this.#logger.debug({ step }, 'start_step');
    let deadline: NodeJS.Timeout | undefined;
    const slow = setInterval(() => {
      this.#logger.warn({ step, waitingMs: Date.now() - startedAt, deadlineMs }, 'start_step_slow');
    }, this.#slowEveryMs);
    const timedOut = new Promise<never>((_resolve, reject) => {
      deadline = setTimeout(() => {
        this.#logger.error({ step, deadlineMs }, 'start_step_timed_out');
        reject(new GatehouseError('GW_ERR_START_STEP_TIMED_OUT',
          `the start step "${step}" (${what}) did not finish within ${Math.round(deadlineMs / 1000)} s; nothing answered it`));
      }, deadlineMs);
    });
    try {
      const value = await Promise.race([work(), timedOut]);
      this.#logger.debug({ step, ms: Date.now() - startedAt }, 'start_step_done');
      return value;
    } finally {
      clearInterval(slow);
      clearTimeout(deadline);
    }
  }
}
