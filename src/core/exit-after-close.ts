/**
 * The end of a stop: once everything is closed the process lets its event loop empty, so every close finishes its
 * writes (no `process.exit()` cutting them short). Something left behind that keeps the loop alive — a retry timer
 * re-armed by a part that was still starting when the close came, a socket nobody ends — used to keep a stopped
 * Gatehouse alive for ever: a single process that never exits on SIGTERM, a worker that outlived its primary
 * (found with GATEHOUSE_WORKERS=2 in the e2e suite: a worker whose close had finished, kept alive by one timer, still
 * running an hour after its primary was killed). Past `graceMs` the process exits anyway, saying what was left.
 */
import type { Logger } from './logger.ts';

/** How long a closed process may take to wind down by itself before it is ended. */
export const EXIT_GRACE_MS = 10_000;

/** Call once the close finished: exits after `graceMs` unless the event loop emptied first (the timer never holds it). */
export function exitAfterClose(logger: Logger, graceMs = EXIT_GRACE_MS): void {
  const timer = setTimeout(() => {
    logger.warn({ graceMs, resources: process.getActiveResourcesInfo().filter((r) => r !== 'TTYWrap') }, 'exit_forced_after_close');
    process.exit(process.exitCode ?? 0);
  }, graceMs);
  timer.unref();
}
