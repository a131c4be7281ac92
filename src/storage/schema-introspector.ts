/**
 * Kysely's PostgreSQL introspector, as its migrator uses it (to find its bookkeeping tables), reads every schema of
 * the database and calls `has_schema_privilege` on each name: a schema another application — or another test run —
 * drops meanwhile makes the query fail ("schema … does not exist", 3F000), and Gatehouse's start with it. This one
 * sees only the schema Gatehouse works in.
 */
import { sql, type DatabaseIntrospector, type DatabaseMetadata, type Kysely, type SchemaMetadata, type TableMetadata } from 'kysely';

export class OneSchemaIntrospector implements DatabaseIntrospector {
  readonly #db: Kysely<unknown>;
  readonly #schema: string;

  constructor(db: Kysely<unknown>, schema: string) {
    this.#db = db;
    this.#schema = schema;
  }

  /** Ours only: it exists (`current_schema()` named it). */
  getSchemas(): Promise<SchemaMetadata[]> {
    return Promise.resolve([{ name: this.#schema }]);
  }

  /** The tables and views of our schema, by name (the migrator needs no columns). */
  async getTables(): Promise<TableMetadata[]> {
    const { rows } = await sql<{ name: string; type: string }>`
      select table_name as name, table_type as type from information_schema.tables where table_schema = ${this.#schema}`.execute(this.#db);
    return rows.map((row) => ({ name: row.name, schema: this.#schema, isView: row.type === 'VIEW', columns: [] }));
  }

  async getMetadata(): Promise<DatabaseMetadata> {
    return { tables: await this.getTables() };
  }
}

/**
 * The same database handle with `introspection` answered by OneSchemaIntrospector (for Kysely's Migrator, which reads
 * only that of the handle it is given; every other member is the handle's own, bound to it).
 */
export function withOneSchemaIntrospection<DB>(db: Kysely<DB>, schema: string): Kysely<DB> {
  const introspection = new OneSchemaIntrospector(db as Kysely<unknown>, schema);
  return new Proxy(db, {
    get(target, property) {
      if (property === 'introspection') return introspection;
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
}
