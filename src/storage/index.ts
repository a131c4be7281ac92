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
import { withOneSchemaIntrospection } from './schema-introspector.ts';
import { openSqlite, sqliteFileIn } from './sqlite.ts';
import { checkClaim, damagedDatabase, isDamagedSqlite, writeMarker, type DatabaseClaim } from './installation.ts';

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
  /** At start: check whose database this is before migrating (see installation.ts). */
  claim?: Omit<DatabaseClaim, 'describe'>;
}

export async function openStorage(options: OpenStorageOptions): Promise<KyselyStorage> {
  let db: Kysely<Database>;
  let dialect: Dialect;
  const file = sqliteFileIn(options.dataDir);
  if (options.databaseUrl !== undefined) {
    dialect = 'postgres';
    ({ db } = openPostgres({ connectionString: options.databaseUrl, schema: options.postgresSchema }));
    if (options.postgresSchema !== undefined) {
      await sql`create schema if not exists ${sql.id(options.postgresSchema)}`.execute(db);
    }
  } else {
    dialect = 'sqlite';
    try {
      db = openSqlite(file);
    } catch (error) {
      throw isDamagedSqlite(error) ? damagedDatabase(file, error) : error;
    }
  }
  let installationId: string | null = null;
  try {
    const claim = options.claim === undefined ? undefined
      : await checkClaim(db, dialect, { ...options.claim, describe: dialect === 'sqlite' ? file : 'the PostgreSQL database of GATEHOUSE_DATABASE_URL' });
    await migrate(db, dialect, options.logger);
    if (claim !== undefined) {
      if (claim.needsMarker) await writeMarker(db, claim.installationId);
      installationId = claim.installationId;
    }
  } catch (error) {
    await db.destroy();
    throw dialect === 'sqlite' && isDamagedSqlite(error) ? damagedDatabase(file, error) : error;
  }
  const storage = new KyselyStorage(db, dialect);
  storage.installationId = installationId;
  return storage;
}

/** Applies every migration not yet applied, in order; fails on the first error. */
export async function migrate(db: Kysely<Database>, dialect: Dialect, logger: Logger): Promise<void> {
  // Kysely looks for its bookkeeping tables in every schema of a PostgreSQL database; pin it to ours so
  // another schema's tables (another app, another test run) are not mistaken for these.
  const migrationTableSchema = dialect === 'postgres'
    ? (await sql<{ schema: string | null }>`select current_schema() as schema`.execute(db)).rows[0]?.schema ?? undefined
    : undefined;
  // …and let it look in ours only: its own look reads every schema, and one dropped meanwhile fails the start.
  const migrator = new Migrator({
    db: migrationTableSchema === undefined ? db : withOneSchemaIntrospection(db, migrationTableSchema),
    provider: new BundledMigrations(dialect), migrationTableSchema,
  });
  const { error, results } = await migrator.migrateToLatest();
  for (const result of results ?? []) {
    if (result.status === 'Success') logger.info({ migration: result.migrationName, dialect }, 'storage_migration_applied');
    if (result.status === 'Error') logger.error({ migration: result.migrationName, dialect }, 'storage_migration_failed');
  }
  if (error) throw error instanceof Error ? error : new Error('storage migration failed', { cause: error });
}

export type { Storage };
