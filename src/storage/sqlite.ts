/**
 * The embedded default: one SQLite file under the data directory, through better-sqlite3. WAL lets the
 * API read while a write is in progress; foreign keys are off by default in SQLite and the schema's
 * cascades depend on them.
 */
import path from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { Kysely, SqliteDialect } from 'kysely';
import type { Database } from './schema.ts';
import type { WalCheckpointer } from './wal-checkpointer.ts';

export const SQLITE_FILE = 'gatehouse.db';

/** `checkpointer`: the message store writes here on the message path; its checkpoints run off the event loop. */
export function openSqlite(file: string, checkpointer?: WalCheckpointer): Kysely<Database> {
  const database = new BetterSqlite3(file);
  database.pragma('journal_mode = WAL');
  database.pragma('foreign_keys = ON');
  // A second process (the CLI, a backup) holding a lock makes us wait briefly instead of failing at once.
  database.pragma('busy_timeout = 5000');
  database.pragma('synchronous = NORMAL');
  checkpointer?.manage(database, file);
  return new Kysely<Database>({ dialect: new SqliteDialect({ database }) });
}

export function sqliteFileIn(dataDir: string): string {
  return path.join(dataDir, SQLITE_FILE);
}
