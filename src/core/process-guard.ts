/**
 * The last line of defence: an error that escaped every per-connection guard is logged and counted
 * (`gatehouse_uncaught_errors_total`), and the process keeps serving every other gateway. Designed never
 * to fire: each path that runs for one connection contains its own failures; a count above zero is a
 * bug to report, not a state to live with.
 */
import type { Logger } from './logger.ts';

export const processGuard = { uncaughtErrors: 0 };

export function installProcessGuard(logger: Logger): void {
  process.on('uncaughtException', (err) => {
    processGuard.uncaughtErrors++;
    logger.error({ err }, 'process_uncaught_exception');
  });
  process.on('unhandledRejection', (reason) => {
    processGuard.uncaughtErrors++;
    logger.error({ err: reason }, 'process_unhandled_rejection');
  });
}
