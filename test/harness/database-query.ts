/**
 * What a Gatehouse stored, read from its database whichever process wrote it (the test's own, or one of the workers
 * of GATEHOUSE_TEST_WORKERS): the SQLite file of its data directory, or the PostgreSQL of its `databaseUrl`.
 * A test reads a stored result it has no API for (a password hash) through `TestGatehouse.query`.
 */
import path from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { SQLITE_FILE } from '../../src/storage/index.ts';

/**
 * Runs one read. `$1`, `$2` … are the parameters, in the order they appear in `sql` (SQLite binds them as `?`).
 * `databaseUrl` undefined: the SQLite file in `dataDir`.
 */
export async function queryDatabase<T>(target: { databaseUrl: string | undefined; dataDir: string }, sql: string, params: unknown[] = []): Promise<T[]> {
  if (target.databaseUrl === undefined) {
    const db = new Database(path.join(target.dataDir, SQLITE_FILE), { fileMustExist: true });
    try {
      return db.prepare(sql.replace(/\$\d+/g, '?')).all(...params) as T[];
    } finally {
      db.close();
    }
  }
  const client = new pg.Client({ connectionString: target.databaseUrl });
  await client.connect();
  try {
    return (await client.query(sql, params)).rows as T[];
  } finally {
    await client.end();
  }
}
