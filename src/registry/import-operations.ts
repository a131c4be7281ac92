/**
 * Imports as operations the console polls (issue 14): `start` checks the request (its size, its CSV) and
 * answers at once; the import runs in the background (device-importer.ts) and its progress is read with
 * `get`. Kept in this process's memory: a restart forgets them (rows inserted so far stay, and importing the
 * same file again fails only the rows already there). Finished ones are forgotten after an hour.
 */
import { randomUUID } from 'node:crypto';
import { GatehouseError } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import type { RawImportRow } from './device-import.ts';
import type { ImportProgress } from './device-importer.ts';
import type { ImportResult, ImportRowError, ImportRowResult } from './types.ts';

/** Imports rows into an existing product, telling the progress as it goes (the device service's import). */
export type ImportRows = (productKey: string, rows: RawImportRow[], onProgress: (progress: ImportProgress) => void) => Promise<ImportResult>;

/** Failed rows an operation reports one by one; beyond them it counts (a wrong file can fail 100,000 rows). */
export const MAX_REPORTED_FAILURES = 1000;
const KEEP_FINISHED_MS = 3600_000;
/** Finished operations kept at most, whatever their age. */
const KEEP_FINISHED = 100;

export type ImportOperationState = 'RUNNING' | 'DONE' | 'FAILED';

export interface ImportOperation extends ImportProgress {
  id: string;
  productKey: string;
  state: ImportOperationState;
  startedAt: string;
  finishedAt: string | null;
  /** Why a FAILED operation stopped (storage unreachable …); the rows before it stay imported. */
  error: ImportRowError | null;
  /** The failed rows, in order, at most MAX_REPORTED_FAILURES of them. */
  failures: ImportRowResult[];
  /** Failed rows beyond those listed. */
  failuresOmitted: number;
}

export class ImportOperations {
  readonly #importRows: ImportRows;
  readonly #logger: Logger;
  readonly #now: () => Date;
  readonly #operations = new Map<string, ImportOperation>();
  readonly #running = new Set<Promise<void>>();

  constructor(importRows: ImportRows, logger: Logger, now: () => Date) {
    this.#importRows = importRows;
    this.#logger = logger;
    this.#now = now;
  }

  /** Starts importing `rows` (already parsed and within the operation's bound) into an existing product. */
  start(productKey: string, rows: RawImportRow[]): ImportOperation {
    this.#forgetOld();
    const operation: ImportOperation = {
      id: randomUUID(), productKey, state: 'RUNNING', total: rows.length, processed: 0, created: 0, failed: 0,
      startedAt: this.#now().toISOString(), finishedAt: null, error: null, failures: [], failuresOmitted: 0,
    };
    this.#operations.set(operation.id, operation);
    const run = this.#importRows(productKey, rows, (progress) => Object.assign(operation, progress)).then((result) => {
      const failed = result.rows.filter((r) => !r.ok);
      operation.failures = failed.slice(0, MAX_REPORTED_FAILURES);
      operation.failuresOmitted = Math.max(0, failed.length - MAX_REPORTED_FAILURES);
      operation.state = 'DONE';
    }, (error: unknown) => {
      operation.state = 'FAILED';
      operation.error = error instanceof GatehouseError
        ? { code: error.code, message: error.message, field: error.field ?? null }
        : { code: 'GW_ERR_INTERNAL', message: 'the import stopped on an internal error (see the server log)', field: null };
      this.#logger.error({ err: error, productKey, operationId: operation.id }, 'device_import_failed');
    }).finally(() => {
      operation.finishedAt = this.#now().toISOString();
      this.#running.delete(run);
    });
    this.#running.add(run);
    return snapshot(operation);
  }

  get(productKey: string, id: string): ImportOperation {
    this.#forgetOld();
    const operation = this.#operations.get(id);
    if (operation === undefined || operation.productKey !== productKey) {
      throw new GatehouseError('GW_ERR_IMPORT_NOT_FOUND', `no import operation "${id}" in product "${productKey}"`, 'importId');
    }
    return snapshot(operation);
  }

  /** Resolves when every running import has finished (shutdown, tests). */
  async settled(): Promise<void> {
    while (this.#running.size > 0) await Promise.allSettled([...this.#running]);
  }

  #forgetOld(): void {
    const now = this.#now().getTime();
    const finished = [...this.#operations.values()].filter((o) => o.finishedAt !== null);
    finished.forEach((o, i) => {
      if (now - Date.parse(o.finishedAt as string) > KEEP_FINISHED_MS || i < finished.length - KEEP_FINISHED) this.#operations.delete(o.id);
    });
  }
}

function snapshot(operation: ImportOperation): ImportOperation {
  return { ...operation, failures: [...operation.failures] };
}
