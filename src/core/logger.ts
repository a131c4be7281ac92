import pino from 'pino';

/** Structured logger. Event names are snake_case so they can be grepped (`auth_backend_timeout`). */
export type Logger = pino.Logger;

export function createLogger(level: string = process.env.GATEHOUSE_LOG_LEVEL ?? 'info', name = 'gatehouse'): Logger {
  return pino({ name, level, base: undefined, timestamp: pino.stdTimeFunctions.isoTime });
}

/** A logger that drops everything: the default for engines embedded in tests and benchmarks. */
export const silentLogger: Logger = pino({ level: 'silent' });
