/**
 * Imports one-party rows into a product, in steps (issue 14: 100,000 rows with progress). Every row is
 * checked first, and against the product's devices and the rows before it (one read), so a bad or taken
 * row fails alone and before any hashing. Then, step by step, the step's passwords are hashed (scrypt, the
 * slow part: on libuv's pool, at most HASH_CONCURRENCY at a time for the whole process, whatever the number
 * of imports) and its rows inserted in a transaction of their own, re-checked against what other requests
 * added meanwhile. Between steps the event loop and the database are free: a CONNECT's credential read
 * never waits behind the whole import, and the caller hears the progress after each step.
 */
import { GatehouseError } from '../core/errors.ts';
import type { RegistryContext } from './context.ts';
import type { RawImportRow } from './device-import.ts';
import { rowDeviceRecord } from './device-records.ts';
import { checkDeviceRow, type CheckedDeviceRow } from './device-rules.ts';
import { hashPassword } from './passwords.ts';
import { DuplicateKeyError, type DeviceRecord } from './ports.ts';
import type { ImportResult, ImportRowResult } from './types.ts';

/** scrypt runs on libuv's pool (4 threads); leave room for the data plane's own password checks. */
const HASH_CONCURRENCY = 2;
/** Rows hashed and inserted per step: one INSERT (13 values a row, well under both backends' bound), and the progress grain. */
export const IMPORT_STEP = 500;
/** Rows checked between two yields to the event loop while checking a large import. */
const CHECK_SLICE = 2000;

export interface ImportProgress {
  total: number;
  /** Rows decided: failed a check, or hashed and inserted (or refused at insert). */
  processed: number;
  created: number;
  failed: number;
}

interface Candidate {
  index: number;
  row: CheckedDeviceRow;
}

/** What an import needs of the registry's context. */
export type ImporterContext = Pick<RegistryContext, 'storage' | 'passwordCost' | 'now' | 'logger'>;

export class DeviceImporter {
  readonly #ctx: ImporterContext;
  readonly #hashSlots = new Slots(HASH_CONCURRENCY);

  constructor(context: ImporterContext) {
    this.#ctx = context;
  }

  /** The product must exist (the caller checked). `onProgress` hears after the checks and after each step. */
  async run(productKey: string, rows: RawImportRow[], onProgress?: (progress: ImportProgress) => void): Promise<{ result: ImportResult; created: DeviceRecord[] }> {
    const results: ImportRowResult[] = rows.map(({ row }) => ({ row, ok: false }));
    const candidates: Candidate[] = [];
    for (let index = 0; index < rows.length; index++) {
      const raw = rows[index] as RawImportRow;
      const result = results[index] as ImportRowResult;
      if (raw.error) result.error = raw.error;
      else {
        try {
          candidates.push({ index, row: checkDeviceRow(raw.value) });
        } catch (error) {
          result.error = rowError(error);
        }
      }
      if (index % CHECK_SLICE === CHECK_SLICE - 1) await yieldToLoop();
    }

    // Against the product (and earlier rows) before hashing: hashing is the slow part.
    const accepted = dropConflicts(candidates, await this.#ctx.storage.devices.listIdentities(productKey), results);
    const progress: ImportProgress = { total: rows.length, processed: rows.length - accepted.length, created: 0, failed: rows.length - accepted.length };
    onProgress?.({ ...progress });

    const created: DeviceRecord[] = [];
    for (let from = 0; from < accepted.length; from += IMPORT_STEP) {
      const step = accepted.slice(from, from + IMPORT_STEP);
      const hashes = await Promise.all(step.map(({ row }) => this.#hashSlots.run(() => hashPassword(row.password, this.#ctx.passwordCost))));
      const inserted = await this.#insertStep(productKey, step, hashes, results);
      for (const [candidate, record] of inserted) {
        const result = results[candidate.index] as ImportRowResult;
        result.ok = true;
        result.deviceName = record.deviceName;
        created.push(record);
      }
      progress.processed += step.length;
      progress.created += inserted.length;
      progress.failed += step.length - inserted.length;
      onProgress?.({ ...progress });
    }
    this.#ctx.logger.info({ productKey, rows: rows.length, created: created.length }, 'devices_imported');
    return { result: { total: rows.length, created: created.length, failed: rows.length - created.length, rows: results }, created };
  }

  /**
   * One step in one transaction: what another request added while we hashed is checked again first. On
   * PostgreSQL a concurrent insert can still slip in between; one retry re-checks against it.
   */
  async #insertStep(productKey: string, step: Candidate[], hashes: string[], results: ImportRowResult[]): Promise<[Candidate, DeviceRecord][]> {
    const hashOf = new Map(step.map((candidate, i) => [candidate, hashes[i] as string]));
    const at = this.#ctx.now().toISOString();
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.#ctx.storage.transaction(async (tx) => {
          const taken = await tx.devices.findIdentities(productKey, step.map((c) => c.row.deviceName), step.map((c) => c.row.username));
          const free = dropConflicts(step, taken, results);
          const records = free.map((c) => rowDeviceRecord(productKey, c.row, hashOf.get(c) as string, at));
          await tx.devices.insertMany(records);
          return free.map((c, i): [Candidate, DeviceRecord] => [c, records[i] as DeviceRecord]);
        });
      } catch (error) {
        if (!(error instanceof DuplicateKeyError) || attempt >= 2) throw translateConflict(error);
      }
    }
  }
}

/** Keeps the candidates whose name and username are free, in order; marks the others. */
function dropConflicts(candidates: Candidate[], existing: { deviceName: string; username: string | null }[], results: ImportRowResult[]): Candidate[] {
  const names = new Set(existing.map((d) => d.deviceName));
  const usernames = new Set(existing.flatMap((d) => (d.username === null ? [] : [d.username])));
  return candidates.filter(({ index, row }) => {
    const result = results[index] as ImportRowResult;
    const error = usernames.has(row.username)
      ? new GatehouseError('GW_ERR_USERNAME_TAKEN', `username "${row.username}" is taken in this product`, 'username')
      : names.has(row.deviceName)
        ? new GatehouseError('GW_ERR_DEVICE_NAME_TAKEN', `device name "${row.deviceName}" is taken in this product`, 'deviceName')
        : undefined;
    if (error) {
      result.error = rowError(error);
      return false;
    }
    delete result.error;
    names.add(row.deviceName);
    usernames.add(row.username);
    return true;
  });
}

function rowError(error: unknown): { code: string; message: string; field: string | null } {
  if (error instanceof GatehouseError) return { code: error.code, message: error.message, field: error.field ?? null };
  throw error;
}

function translateConflict(error: unknown): unknown {
  return error instanceof DuplicateKeyError
    ? new GatehouseError('GW_ERR_CONFLICT', 'devices of this product changed during the import; retry it')
    : error;
}

function yieldToLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** At most `size` tasks at a time; the rest wait their turn in order. */
class Slots {
  readonly #size: number;
  #busy = 0;
  readonly #waiting: (() => void)[] = [];

  constructor(size: number) {
    this.#size = size;
  }

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.#busy >= this.#size) await new Promise<void>((resolve) => this.#waiting.push(resolve));
    else this.#busy++;
    try {
      return await task();
    } finally {
      const next = this.#waiting.shift();
      if (next) next();
      else this.#busy--;
    }
  }
}
