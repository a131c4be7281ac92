/**
 * Whose database is this? Checked at start before any migration runs, so Gatehouse never builds a
 * fresh schema (and a demo gateway) over a missing or emptied database beside an installation's
 * state, never migrates another application's database, and never runs against another
 * installation's. The database carries the installation id in its settings; the data directory's
 * identity file (src/config/identity.ts) carries the same id.
 */
import { sql, type Kysely } from 'kysely';
import { GatehouseError } from '../core/errors.ts';
import type { Database, Dialect } from './schema.ts';

export const INSTALLATION_SETTING = 'installation_id';
const MIGRATION_TABLE = 'kysely_migration';

export interface DatabaseClaim {
  /** The id the data directory's identity file names; null when it has none. */
  expectedId: string | null;
  /** The id to give a database that has none. */
  newId: string;
  /** What in the data directory shows that an installation ran there (file names); empty on a fresh install. */
  existingState: readonly string[];
  dataDir: string;
  /** The database in words, for messages: its file, or "the PostgreSQL database". */
  describe: string;
}

export interface ClaimResult {
  installationId: string;
  /** The database had no id yet and gets `newId` once migrated. */
  needsMarker: boolean;
}

export async function listTables(db: Kysely<Database>, dialect: Dialect): Promise<string[]> {
  const rows = dialect === 'sqlite'
    ? (await sql<{ name: string }>`select name from sqlite_master where type = 'table' and name not like 'sqlite_%'`.execute(db)).rows
    : (await sql<{ name: string }>`select table_name as name from information_schema.tables where table_schema = current_schema()`.execute(db)).rows;
  return rows.map((r) => r.name).sort();
}

/** Decides before migrating; throws a GW_ERR_DATA_DIR_* error naming what is wrong and what to do. */
export async function checkClaim(db: Kysely<Database>, dialect: Dialect, claim: DatabaseClaim): Promise<ClaimResult> {
  const tables = await listTables(db, dialect);
  const ours = tables.includes(MIGRATION_TABLE);
  if (!ours && tables.length > 0) {
    throw new GatehouseError('GW_ERR_DATA_DIR_DATABASE_FOREIGN',
      `${claim.describe} holds tables (${tables.slice(0, 5).join(', ')}${tables.length > 5 ? ', …' : ''}) but not Gatehouse's: it belongs to another application. ` +
      'Point GATEHOUSE_DATA_DIR or GATEHOUSE_DATABASE_URL at Gatehouse\'s own database; nothing was changed in this one', 'GATEHOUSE_DATA_DIR');
  }
  if (!ours) {
    if (claim.existingState.length > 0) {
      throw new GatehouseError('GW_ERR_DATA_DIR_DATABASE_MISSING',
        `${claim.describe} is missing or empty, but the data directory ${claim.dataDir} holds an installation's state ` +
        `(${claim.existingState.join(', ')}). Restore the database from a backup (\`gatehouse restore <file>\`), or, to start over, ` +
        'move the data directory away. Gatehouse will not create a new installation over it', 'GATEHOUSE_DATA_DIR');
    }
    return { installationId: claim.newId, needsMarker: true };
  }
  const marker = (await db.selectFrom('settings').select('value').where('key', '=', INSTALLATION_SETTING).executeTakeFirst())?.value;
  if (claim.expectedId !== null && marker !== claim.expectedId) {
    throw new GatehouseError('GW_ERR_DATA_DIR_DATABASE_FOREIGN',
      `${claim.describe} belongs to ${marker === undefined ? 'an installation without an id' : `installation ${marker}`}, ` +
      `but the data directory ${claim.dataDir} to installation ${claim.expectedId} (identity.json). Restore this installation's database ` +
      '(`gatehouse restore <file>`) or point GATEHOUSE_DATA_DIR at the directory this database belongs to', 'GATEHOUSE_DATA_DIR');
  }
  // A database from before installation ids (or whose directory lost identity.json) is adopted.
  return marker === undefined ? { installationId: claim.newId, needsMarker: true } : { installationId: marker, needsMarker: false };
}

export async function writeMarker(db: Kysely<Database>, installationId: string): Promise<void> {
  await db.insertInto('settings').values({ key: INSTALLATION_SETTING, value: installationId })
    .onConflict((oc) => oc.column('key').doUpdateSet({ value: installationId })).execute();
}

/** SQLite's "this is not a database" and corruption errors, for a message instead of a stack. */
export function isDamagedSqlite(error: unknown): boolean {
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' && (code === 'SQLITE_NOTADB' || code.startsWith('SQLITE_CORRUPT'));
}

export function damagedDatabase(file: string, error: unknown): GatehouseError {
  return new GatehouseError('GW_ERR_DATA_DIR_DATABASE_DAMAGED',
    `${file} is damaged (${(error as Error).message}). Restore it from a backup (\`gatehouse restore <file>\`); ` +
    '`gatehouse doctor` checks the rest of the data directory', 'GATEHOUSE_DATA_DIR');
}
