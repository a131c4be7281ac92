/**
 * Imports as operations the console polls (issue 14): `start` checks the request (its size, its CSV), records
 * the operation and answers at once; the import runs in the background (device-importer.ts) and its progress
 * is read with `get`.
 *
 * Kept in the registry's database, not in the memory of the process running it (issue 16): in a cluster, or
 * under `GATEHOUSE_WORKERS`, the poll reaches any node. The running node writes the progress after each step
 * and holds a lease on the operation (LEASE_MS ahead of its clock, renewed every RENEW_MS). A node that dies
 * mid-import (kill -9, power, lost database) stops renewing; the first read after the lease lapsed records the
 * operation FAILED with GW_ERR_IMPORT_INTERRUPTED, never RUNNING for ever. A node that restarts under the same
 * node id fails its own running operations at once, and one that stops cleanly fails them on its way out. The
 * rows of the steps committed before stay imported; importing the same file again creates only the rest (the
 * others fail as taken). Nodes' clocks must agree to well under the lease (as for the webhook outbox claims).
 *
 * A runner whose write finds its operation no longer RUNNING (a reader declared it interrupted while this
 * node could not write, say a database outage longer than the lease) stops at its next step: the operation
 * said FAILED, so it must not go on creating devices. Finished operations are kept for an hour (at most
 * KEEP_FINISHED of them).
 */
import { randomUUID } from 'node:crypto';
import { GatehouseError } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import type { RawImportRow } from './device-import.ts';
import type { ImportProgress } from './device-importer.ts';
import type {
  ImportOperation, ImportOperationRepository, ImportOperationUpdate,
} from './import-operation-records.ts';
import type { ImportResult, ImportRowError } from './types.ts';

export type { ImportOperation, ImportOperationRecord, ImportOperationRepository, ImportOperationState, ImportOperationUpdate } from './import-operation-records.ts';

/** Imports rows into an existing product, telling the progress as it goes (the device service's import). */
export type ImportRows = (productKey: string, rows: RawImportRow[], onProgress: (progress: ImportProgress) => void) => Promise<ImportResult>;

/** Failed rows an operation reports one by one; beyond them it counts (a wrong file can fail 100,000 rows). */
export const MAX_REPORTED_FAILURES = 1000;
const KEEP_FINISHED_MS = 3600_000;
/** Finished operations kept at most, whatever their age. */
const KEEP_FINISHED = 100;
/**
 * How long a running operation's node may stay silent before a reader calls it interrupted: long enough for
 * a loaded machine's missed renewals (three in a row), short enough that a console does not poll a dead
 * import for minutes.
 */
export const IMPORT_LEASE_MS = 20_000;
const RENEW_MS = 5_000;

const interrupted = (why: string): ImportRowError => ({
  code: 'GW_ERR_IMPORT_INTERRUPTED',
  message: `${why}; the rows reported created stay imported (and perhaps those of the step in flight): import the file again for the rest, rows already there fail as taken`,
  field: null,
});

/** One import running in this process: its latest progress, written in order, and its lease kept. */
class RunningImport {
  readonly operation: ImportOperation;
  /** Why this import must stop at its next step (its row is no longer RUNNING, or this node stops); null: go on. */
  abandoned: string | null = null;
  readonly #repo: ImportOperationRepository;
  readonly #now: () => Date;
  readonly #logger: Logger;
  #writes: Promise<void> = Promise.resolve();
  #progressQueued = false;
  readonly #renewal: NodeJS.Timeout;

  constructor(operation: ImportOperation, repo: ImportOperationRepository, now: () => Date, logger: Logger) {
    this.operation = operation;
    this.#repo = repo;
    this.#now = now;
    this.#logger = logger;
    this.#renewal = setInterval(() => this.#queueProgress(), RENEW_MS);
    this.#renewal.unref();
  }

  lease(): string {
    return new Date(this.#now().getTime() + IMPORT_LEASE_MS).toISOString();
  }

  progress(progress: ImportProgress): void {
    Object.assign(this.operation, progress);
    this.#queueProgress();
  }

  /** The outcome, after every progress write: the last word. Whether it was recorded (false: declared interrupted first). */
  async finish(update: ImportOperationUpdate): Promise<boolean> {
    this.stop();
    let recorded = false;
    this.#write(async () => {
      recorded = await this.#repo.updateRunning(this.operation.id, { ...update, leaseUntil: null });
    });
    await this.#writes;
    return recorded;
  }

  /** No more lease renewals. */
  stop(): void {
    clearInterval(this.#renewal);
  }

  /** One write at a time, in order; progress coalesced (only the latest matters). */
  #queueProgress(): void {
    if (this.#progressQueued) return;
    this.#progressQueued = true;
    this.#write(async () => {
      this.#progressQueued = false;
      const { total, processed, created, failed } = this.operation;
      if (!await this.#repo.updateRunning(this.operation.id, { total, processed, created, failed, leaseUntil: this.lease() })) {
        this.abandoned ??= 'another node recorded this import as interrupted';
      }
    });
  }

  #write(work: () => Promise<void>): void {
    this.#writes = this.#writes.then(work).catch((error: unknown) => {
      // The lease covers a short outage; a long one makes a reader call the operation interrupted.
      this.#logger.warn({ err: error, operationId: this.operation.id }, 'device_import_progress_not_written');
    });
  }
}

export class ImportOperations {
  readonly #importRows: ImportRows;
  readonly #repo: ImportOperationRepository;
  readonly #logger: Logger;
  readonly #now: () => Date;
  readonly #nodeId: string | null;
  readonly #running = new Map<string, { job: RunningImport; done: Promise<void> }>();

  constructor(importRows: ImportRows, repo: ImportOperationRepository, logger: Logger, now: () => Date, nodeId: string | null) {
    this.#importRows = importRows;
    this.#repo = repo;
    this.#logger = logger;
    this.#now = now;
    this.#nodeId = nodeId;
  }

  /** Starts importing `rows` (already parsed and within the operation's bound) into an existing product. */
  async start(productKey: string, rows: RawImportRow[]): Promise<ImportOperation> {
    const now = this.#now();
    await this.#repo.prune(new Date(now.getTime() - KEEP_FINISHED_MS).toISOString(), KEEP_FINISHED);
    const operation: ImportOperation = {
      id: randomUUID(), productKey, state: 'RUNNING', total: rows.length, processed: 0, created: 0, failed: 0,
      startedAt: now.toISOString(), finishedAt: null, error: null, failures: [], failuresOmitted: 0,
    };
    const job = new RunningImport(operation, this.#repo, this.#now, this.#logger);
    // Recorded before the answer: a poll through another node right after the 202 finds it.
    try {
      await this.#repo.insert({ ...operation, nodeId: this.#nodeId, leaseUntil: job.lease() });
    } catch (error) {
      job.stop();
      throw error;
    }
    const done = this.#importRows(productKey, rows, (progress) => {
      if (job.abandoned !== null) throw new GatehouseError('GW_ERR_IMPORT_INTERRUPTED', job.abandoned);
      job.progress(progress);
    }).then(async (result) => {
      const failed = result.rows.filter((r) => !r.ok);
      await this.#record(job, {
        total: result.total, processed: result.total, created: result.created, failed: result.failed, state: 'DONE',
        finishedAt: this.#now().toISOString(), failures: failed.slice(0, MAX_REPORTED_FAILURES),
        failuresOmitted: Math.max(0, failed.length - MAX_REPORTED_FAILURES),
      });
    }, async (error: unknown) => {
      const rowError: ImportRowError = error instanceof GatehouseError
        ? { code: error.code, message: error.message, field: error.field ?? null }
        : { code: 'GW_ERR_INTERNAL', message: 'the import stopped on an internal error (see the server log)', field: null };
      this.#logger.error({ err: error, productKey, operationId: operation.id }, 'device_import_failed');
      const { total, processed, created, failed } = operation;
      await this.#record(job, { total, processed, created, failed, state: 'FAILED', finishedAt: this.#now().toISOString(), error: rowError });
    }).finally(() => {
      this.#running.delete(operation.id);
    });
    this.#running.set(operation.id, { job, done });
    return { ...operation, failures: [] };
  }

  async get(productKey: string, id: string): Promise<ImportOperation> {
    let record = await this.#repo.get(id);
    const now = this.#now();
    if (record === undefined || record.productKey !== productKey
      || (record.finishedAt !== null && now.getTime() - Date.parse(record.finishedAt) > KEEP_FINISHED_MS)) {
      throw new GatehouseError('GW_ERR_IMPORT_NOT_FOUND', `no import operation "${id}" in product "${productKey}"`, 'importId');
    }
    // Its node went silent past the lease: dead or cut off from the database. Say so, once, for every reader.
    if (record.state === 'RUNNING' && record.leaseUntil !== null && Date.parse(record.leaseUntil) < now.getTime()) {
      const error = interrupted(`the node running this import (${record.nodeId ?? 'unnamed'}) stopped reporting its progress`);
      if (await this.#repo.failLapsed(id, now.toISOString(), error)) {
        this.#logger.warn({ operationId: id, productKey, nodeId: record.nodeId, processed: record.processed }, 'device_import_interrupted');
      }
      record = await this.#repo.get(id) ?? record;
    }
    const { nodeId: _node, leaseUntil: _lease, ...operation } = record;
    return operation;
  }

  /**
   * At this node's start: what a previous life of it (same node id) left RUNNING cannot be running now.
   * How many were failed.
   */
  async failOwnInterrupted(): Promise<number> {
    if (this.#nodeId === null) return 0;
    const count = await this.#repo.failRunningOf(this.#nodeId, this.#now().toISOString(), interrupted('the node running this import restarted'));
    if (count > 0) this.#logger.warn({ count, nodeId: this.#nodeId }, 'device_imports_interrupted_by_restart');
    return count;
  }

  /**
   * At this node's stop: its running imports are recorded FAILED now (not left RUNNING until their lease
   * lapses) and stop at their next step; the step in flight is not waited for (it may take many seconds).
   */
  async close(): Promise<void> {
    const error = interrupted('the node running this import stopped');
    await Promise.all([...this.#running.values()].map(async ({ job }) => {
      job.abandoned = 'this node stopped';
      const { total, processed, created, failed } = job.operation;
      await job.finish({ total, processed, created, failed, state: 'FAILED', finishedAt: this.#now().toISOString(), error });
    }));
  }

  /** Resolves when every running import has finished (tests). */
  async settled(): Promise<void> {
    while (this.#running.size > 0) await Promise.allSettled([...this.#running.values()].map((r) => r.done));
  }

  async #record(job: RunningImport, update: ImportOperationUpdate): Promise<void> {
    Object.assign(job.operation, update);
    if (!await job.finish(update)) {
      this.#logger.warn({ operationId: job.operation.id, state: update.state, created: update.created }, 'device_import_outcome_not_recorded');
    }
  }
}
