/**
 * The embedded default: one SQLite file under the data directory, through better-sqlite3 on a thread of
 * its own (sqlite-thread.ts). WAL lets the API read while a write is in progress; foreign keys are off
 * by default in SQLite and the schema's cascades depend on them.
 */
import path from 'node:path';
import { Kysely } from 'kysely';
import type { Database } from './schema.ts';
import { SqliteThread, sqliteThreadDialect } from './sqlite-thread.ts';

export const SQLITE_FILE = 'gatehouse.db';

export const SQLITE_PRAGMAS = [
  'journal_mode = WAL',
  'foreign_keys = ON',
  // A second process (the CLI, a backup) holding a lock makes us wait briefly instead of failing at once.
  'busy_timeout = 5000',
  'synchronous = NORMAL',
] as const;

/**
 * The file is opened by the first query (Kysely initialises its driver then): a file SQLite cannot
 * read fails that query with SQLite's own error (SQLITE_NOTADB …), which openStorage turns into its
 * "damaged database" refusal.
 */
export function openSqlite(file: string): Kysely<Database> {
  return new Kysely<Database>({ dialect: sqliteThreadDialect(() => SqliteThread.open(file, SQLITE_PRAGMAS)) });
}

export function sqliteFileIn(dataDir: string): string {
  return path.join(dataDir, SQLITE_FILE);
}
