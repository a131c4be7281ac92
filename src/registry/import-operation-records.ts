/**
 * An import operation as storage keeps it (issue 16: in the registry's database, so every node reads it) and
 * the repository storage implements; the behaviour is in import-operations.ts.
 */
import type { ImportRowError, ImportRowResult } from './types.ts';

export type ImportOperationState = 'RUNNING' | 'DONE' | 'FAILED';

export interface ImportOperation {
  id: string;
  productKey: string;
  state: ImportOperationState;
  total: number;
  /** Rows decided: failed a check, or hashed and inserted (or refused at insert). */
  processed: number;
  created: number;
  failed: number;
  startedAt: string;
  finishedAt: string | null;
  /** Why a FAILED operation stopped (storage unreachable, its node gone …); the rows before it stay imported. */
  error: ImportRowError | null;
  /** The failed rows, in order, at most MAX_REPORTED_FAILURES of them. */
  failures: ImportRowResult[];
  /** Failed rows beyond those listed. */
  failuresOmitted: number;
}

/** An operation as stored: who runs it, and until when its silence is no sign of death. */
export interface ImportOperationRecord extends ImportOperation {
  nodeId: string | null;
  /** ISO 8601; null once finished. */
  leaseUntil: string | null;
}

/** What a running operation writes: its progress, its lease, and at the end its outcome. */
export type ImportOperationUpdate = Partial<Pick<ImportOperationRecord,
  'total' | 'processed' | 'created' | 'failed' | 'state' | 'finishedAt' | 'error' | 'failures' | 'failuresOmitted' | 'leaseUntil'>>;

/** Implemented by storage (src/storage/repositories/import-operations.ts). */
export interface ImportOperationRepository {
  insert(record: ImportOperationRecord): Promise<void>;
  get(id: string): Promise<ImportOperationRecord | undefined>;
  /** Writes `update` only while the operation is RUNNING; whether it wrote. */
  updateRunning(id: string, update: ImportOperationUpdate): Promise<boolean>;
  /** RUNNING with a lease that lapsed before `now` → FAILED with `error`, finished at `now`; whether it wrote. */
  failLapsed(id: string, now: string, error: ImportRowError): Promise<boolean>;
  /** Every RUNNING operation of `nodeId` → FAILED with `error`, finished at `at`; how many. */
  failRunningOf(nodeId: string, at: string, error: ImportRowError): Promise<number>;
  /** Deletes operations finished before `finishedBefore`, and the oldest finished beyond the newest `keep`. */
  prune(finishedBefore: string, keep: number): Promise<void>;
}
