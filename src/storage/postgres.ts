/** PostgreSQL through a `pg` pool, when GATEHOUSE_DATABASE_URL is set. */
import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import type { Database } from './schema.ts';

/**
 * BIGINT (e.g. `count(*)`) comes back from `pg` as a string by default. Every value we read as one
 * fits a double exactly, so parse to number, for this pool only (not globally).
 */
const parseInt8 = (value: string): number => Number(value);
const types: pg.CustomTypesConfig = {
  getTypeParser: (oid, format) => (oid === pg.types.builtins.INT8 && format !== 'binary'
    ? parseInt8
    : pg.types.getTypeParser(oid, format) as (value: string) => unknown),
};

export interface PostgresOptions {
  connectionString: string;
  /** A schema to use (created if missing) instead of the user's default: tests isolate runs with it. */
  schema?: string;
  maxConnections?: number;
}

export function openPostgres(options: PostgresOptions): { db: Kysely<Database>; pool: pg.Pool } {
  if (options.schema !== undefined && !/^[a-z_][a-z0-9_]{0,62}$/.test(options.schema)) {
    throw new Error(`invalid PostgreSQL schema name "${options.schema}"`);
  }
  const pool = new pg.Pool({
    connectionString: options.connectionString,
    max: options.maxConnections ?? 10,
    types,
    ...(options.schema !== undefined ? { options: `-c search_path=${options.schema}` } : {}),
  });
  return { db: new Kysely<Database>({ dialect: new PostgresDialect({ pool }) }), pool };
}
