import type { Kysely, Selectable, Updateable } from 'kysely';
import type {
  ImportOperationRecord, ImportOperationRepository, ImportOperationState, ImportOperationUpdate,
} from '../../registry/import-operation-records.ts';
import type { ImportRowError, ImportRowResult } from '../../registry/types.ts';
import type { Database, ImportOperationsTable } from '../schema.ts';

function fromRow(row: Selectable<ImportOperationsTable>): ImportOperationRecord {
  return {
    id: row.id, productKey: row.product_key,
    // Written only from the typed record: the column holds the same literals.
    state: row.state as ImportOperationState,
    total: Number(row.total), processed: Number(row.processed), created: Number(row.created), failed: Number(row.failed),
    startedAt: row.started_at, finishedAt: row.finished_at,
    error: row.error === null ? null : (JSON.parse(row.error) as ImportRowError),
    failures: JSON.parse(row.failures) as ImportRowResult[], failuresOmitted: Number(row.failures_omitted),
    nodeId: row.node_id, leaseUntil: row.lease_until,
  };
}

function toColumns(update: ImportOperationUpdate): Updateable<ImportOperationsTable> {
  const columns: Updateable<ImportOperationsTable> = {};
  if (update.total !== undefined) columns.total = update.total;
  if (update.processed !== undefined) columns.processed = update.processed;
  if (update.created !== undefined) columns.created = update.created;
  if (update.failed !== undefined) columns.failed = update.failed;
  if (update.state !== undefined) columns.state = update.state;
  if (update.finishedAt !== undefined) columns.finished_at = update.finishedAt;
  if (update.error !== undefined) columns.error = update.error === null ? null : JSON.stringify(update.error);
  if (update.failures !== undefined) columns.failures = JSON.stringify(update.failures);
  if (update.failuresOmitted !== undefined) columns.failures_omitted = update.failuresOmitted;
  if (update.leaseUntil !== undefined) columns.lease_until = update.leaseUntil;
  return columns;
}

export class KyselyImportOperationRepository implements ImportOperationRepository {
  readonly #db: Kysely<Database>;

  constructor(db: Kysely<Database>) {
    this.#db = db;
  }

  async insert(r: ImportOperationRecord): Promise<void> {
    await this.#db.insertInto('import_operations').values({
      id: r.id, product_key: r.productKey, state: r.state, total: r.total, processed: r.processed, created: r.created,
      failed: r.failed, started_at: r.startedAt, finished_at: r.finishedAt, error: r.error === null ? null : JSON.stringify(r.error),
      failures: JSON.stringify(r.failures), failures_omitted: r.failuresOmitted, node_id: r.nodeId, lease_until: r.leaseUntil,
    }).execute();
  }

  async get(id: string): Promise<ImportOperationRecord | undefined> {
    const row = await this.#db.selectFrom('import_operations').selectAll().where('id', '=', id).executeTakeFirst();
    return row === undefined ? undefined : fromRow(row);
  }

  async updateRunning(id: string, update: ImportOperationUpdate): Promise<boolean> {
    const result = await this.#db.updateTable('import_operations').set(toColumns(update))
      .where('id', '=', id).where('state', '=', 'RUNNING').executeTakeFirst();
    return result.numUpdatedRows > 0n;
  }

  async failLapsed(id: string, now: string, error: ImportRowError): Promise<boolean> {
    // ISO times of one format compare as text, on both backends.
    const result = await this.#db.updateTable('import_operations')
      .set({ state: 'FAILED', finished_at: now, lease_until: null, error: JSON.stringify(error) })
      .where('id', '=', id).where('state', '=', 'RUNNING').where('lease_until', '<', now).executeTakeFirst();
    return result.numUpdatedRows > 0n;
  }

  async failRunningOf(nodeId: string, at: string, error: ImportRowError): Promise<number> {
    const result = await this.#db.updateTable('import_operations')
      .set({ state: 'FAILED', finished_at: at, lease_until: null, error: JSON.stringify(error) })
      .where('node_id', '=', nodeId).where('state', '=', 'RUNNING').executeTakeFirst();
    return Number(result.numUpdatedRows);
  }

  async prune(finishedBefore: string, keep: number): Promise<void> {
    await this.#db.deleteFrom('import_operations').where('finished_at', '<', finishedBefore).execute();
    const newest = await this.#db.selectFrom('import_operations').select('finished_at').where('finished_at', 'is not', null)
      .orderBy('finished_at', 'desc').limit(1).offset(keep - 1).executeTakeFirst();
    if (newest?.finished_at != null) {
      await this.#db.deleteFrom('import_operations').where('finished_at', '<', newest.finished_at).execute();
    }
  }
}
