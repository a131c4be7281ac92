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
  cachePreparedStatements(database);
  return new Kysely<Database>({ dialect: new SqliteDialect({ database }) });
}

export function sqliteFileIn(dataDir: string): string {
  return path.join(dataDir, SQLITE_FILE);
}

/** Distinct statements kept prepared; the application issues a few dozen shapes of query. */
const PREPARED_STATEMENTS = 256;

/**
 * Kysely's SQLite driver prepares every query it runs, and SQLite's prepare is not cheap: on a flood of
 * small messages it was a sixth of the message store's time. The same SQL text gets the same prepared
 * statement back (least recently used ones dropped). Safe because the driver only runs a statement to
 * completion (`all` / `run`); nothing here streams rows through `iterate`, which would hold one busy.
 */
export function cachePreparedStatements(database: BetterSqlite3.Database): void {
  const prepare = database.prepare.bind(database);
  const cache = new Map<string, BetterSqlite3.Statement>();
  database.prepare = ((source: string) => {
    let statement = cache.get(source);
    if (statement !== undefined) {
      cache.delete(source); // re-inserted below: the Map's order is the recency order
    } else {
      statement = prepare(source);
      if (cache.size >= PREPARED_STATEMENTS) cache.delete(cache.keys().next().value as string);
    }
    cache.set(source, statement);
    return statement;
  }) as typeof database.prepare;
}
