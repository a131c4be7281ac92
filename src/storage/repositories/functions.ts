import type { Kysely, Selectable } from 'kysely';
import type { FunctionRecord, FunctionRepository } from '../../registry/ports.ts';
import { mappingDuplicates } from '../errors.ts';
import type { Database, FunctionsTable } from '../schema.ts';

function toRow(r: FunctionRecord): FunctionsTable {
  return { name: r.name, source: r.source, timeout_ms: r.timeoutMs, memory_mb: r.memoryMb, created_at: r.createdAt, updated_at: r.updatedAt };
}

function fromRow(row: Selectable<FunctionsTable>): FunctionRecord {
  return {
    name: row.name, source: row.source, timeoutMs: Number(row.timeout_ms), memoryMb: Number(row.memory_mb),
    createdAt: row.created_at, updatedAt: row.updated_at,
  };
}

export class KyselyFunctionRepository implements FunctionRepository {
  readonly #db: Kysely<Database>;

  constructor(db: Kysely<Database>) {
    this.#db = db;
  }

  async insert(record: FunctionRecord): Promise<void> {
    await mappingDuplicates(() => this.#db.insertInto('functions').values(toRow(record)).execute());
  }

  async update(record: FunctionRecord): Promise<boolean> {
    const { name, ...row } = toRow(record);
    const result = await this.#db.updateTable('functions').set(row).where('name', '=', name).executeTakeFirst();
    return result.numUpdatedRows > 0n;
  }

  async get(name: string): Promise<FunctionRecord | undefined> {
    const row = await this.#db.selectFrom('functions').selectAll().where('name', '=', name).executeTakeFirst();
    return row && fromRow(row);
  }

  async list(): Promise<FunctionRecord[]> {
    return (await this.#db.selectFrom('functions').selectAll().orderBy('name').execute()).map(fromRow);
  }

  async delete(name: string): Promise<boolean> {
    const result = await this.#db.deleteFrom('functions').where('name', '=', name).executeTakeFirst();
    return result.numDeletedRows > 0n;
  }
}
