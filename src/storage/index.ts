/**
 * Opens the configured database (PostgreSQL when a URL is given, SQLite under the data directory
 * otherwise), brings its schema up to date, and returns it as the registry's `Storage` port.
 */
import { sql, type Kysely, Migrator } from 'kysely';
import type { Logger } from '../core/logger.ts';
import type { Storage } from '../registry/ports.ts';
import { KyselyStorage } from './kysely-storage.ts';
import { BundledMigrations } from './migrations/index.ts';
import { openPostgres } from './postgres.ts';
import type { Database, Dialect } from './schema.ts';
import { openSqlite, sqliteFileIn } from './sqlite.ts';

export { KyselyStorage } from './kysely-storage.ts';
export { SQLITE_FILE } from './sqlite.ts';

export interface OpenStorageOptions {
  /** SQLite lives in `<dataDir>/gatehouse.db` unless `databaseUrl` is set. */
  dataDir: string;
  /** `postgres://…`: use PostgreSQL. */
  databaseUrl?: string;
  /** PostgreSQL only: a schema of our own (created if missing). */
  postgresSchema?: string;
  logger: Logger;
}

export async function openStorage(options: OpenStorageOptions): Promise<KyselyStorage> {
  let db: Kysely<Database>;
  let dialect: Dialect;
  if (options.databaseUrl !== undefined) {
    dialect = 'postgres';
    ({ db } = openPostgres({ connectionString: options.databaseUrl, schema: options.postgresSchema }));
    if (options.postgresSchema !== undefined) {
      await sql`create schema if not exists ${sql.id(options.postgresSchema)}`.execute(db);
    }
  } else {
    dialect = 'sqlite';
    db = openSqlite(sqliteFileIn(options.dataDir));
  }
  try {
    await migrate(db, dialect, options.logger);
  } catch (error) {
    await db.destroy();
    throw error;
  }
  return new KyselyStorage(db, dialect);
}

/** Applies every migration not yet applied, in order; fails on the first error. */
export async function migrate(db: Kysely<Database>, dialect: Dialect, logger: Logger): Promise<void> {
  // Kysely looks for its bookkeeping tables in every schema of a PostgreSQL database; pin it to ours so
  // another schema's tables (another app, another test run) are not mistaken for these.
  const migrationTableSchema = dialect === 'postgres'
    ? (await sql<{ schema: string }>`select current_schema() as schema`.execute(db)).rows[0]?.schema
    : undefined;
  const migrator = new Migrator({ db, provider: new BundledMigrations(), migrationTableSchema });
  const { error, results } = await migrator.migrateToLatest();
  for (const result of results ?? []) {
    if (result.status === 'Success') logger.info({ migration: result.migrationName, dialect }, 'storage_migration_applied');
    if (result.status === 'Error') logger.error({ migration: result.migrationName, dialect }, 'storage_migration_failed');
  }
  if (error) throw error instanceof Error ? error : new Error('storage migration failed', { cause: error });
}

export type { Storage };
