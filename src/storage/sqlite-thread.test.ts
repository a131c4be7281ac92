import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { Kysely, sql } from 'kysely';
import { PREPARED_STATEMENTS, SqliteThread, sqliteThreadDialect } from './sqlite-thread.ts';

interface Db { t: { n: number; body: Buffer | null } }

async function withDb(run: (db: Kysely<Db>, thread: () => SqliteThread) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'gh-sqlite-thread-'));
  let opened: SqliteThread | null = null;
  const db = new Kysely<Db>({
    dialect: sqliteThreadDialect(async () => (opened = await SqliteThread.open(path.join(dir, 'x.db'), ['journal_mode = WAL']))),
  });
  try {
    await sql`create table t (n integer primary key, body blob)`.execute(db);
    await run(db, () => opened!);
  } finally {
    await db.destroy();
    await rm(dir, { recursive: true, force: true });
  }
}

test('sqlite thread: rows, changes and BLOBs come back as the synchronous driver gave them (Buffer, not Uint8Array)', { timeout: 15_000 }, async () => {
  await withDb(async (db) => {
    const body = Buffer.from([0, 1, 2, 255]);
    const inserted = await db.insertInto('t').values({ n: 7, body }).executeTakeFirstOrThrow();
    assert.equal(inserted.insertId, 7n);
    const row = await db.selectFrom('t').selectAll().executeTakeFirstOrThrow();
    assert.ok(Buffer.isBuffer(row.body), 'a BLOB is a Buffer again on this side');
    assert.deepEqual(row.body, body);
    const updated = await db.updateTable('t').set({ body: null }).where('n', '=', 7).executeTakeFirstOrThrow();
    assert.equal(updated.numUpdatedRows, 1n);
  });
});

test('sqlite thread: a BLOB that is a view of shared memory (a large frame\'s payload) is stored as exactly its bytes', { timeout: 15_000 }, async () => {
  await withDb(async (db) => {
    const frame = Buffer.from(new SharedArrayBuffer(128 * 1024));
    for (let i = 0; i < frame.length; i++) frame[i] = (i * 13) % 251;
    const payload = frame.subarray(9, 9 + 100 * 1024);
    await db.insertInto('t').values({ n: 1, body: payload }).execute();
    const row = await db.selectFrom('t').selectAll().executeTakeFirstOrThrow();
    assert.ok(row.body?.equals(payload), 'the view\'s bytes, not the whole shared buffer');
  });
});

test('sqlite thread: SQLite errors keep their code (callers map SQLITE_CONSTRAINT_* to their own errors)', { timeout: 15_000 }, async () => {
  await withDb(async (db) => {
    await db.insertInto('t').values({ n: 1, body: null }).execute();
    await assert.rejects(db.insertInto('t').values({ n: 1, body: null }).execute(),
      (e: Error & { code?: string }) => e.code === 'SQLITE_CONSTRAINT_PRIMARYKEY' && /UNIQUE constraint failed: t\.n/.test(e.message));
    // The connection is still good after a failed statement.
    assert.equal((await db.selectFrom('t').select('n').execute()).length, 1);
  });
});

test('sqlite thread: a query issued while a transaction is open does not run inside it (it waits for the rollback)', { timeout: 15_000 }, async () => {
  await withDb(async (db) => {
    let outside: Promise<unknown> = Promise.resolve();
    await assert.rejects(db.transaction().execute(async (trx) => {
      await trx.insertInto('t').values({ n: 1, body: null }).execute();
      // Issued on the database, not the transaction: were it posted now, the rollback below would undo it too.
      outside = db.insertInto('t').values({ n: 2, body: null }).execute();
      await new Promise((r) => setTimeout(r, 20));
      await trx.insertInto('t').values({ n: 3, body: null }).execute();
      throw new Error('roll back');
    }), /roll back/);
    await outside;
    assert.deepEqual((await db.selectFrom('t').select('n').orderBy('n').execute()).map((r) => r.n), [2]);
    // Transactions one after another, and queries between them, in order.
    await Promise.all([
      db.transaction().execute(async (trx) => { await trx.insertInto('t').values({ n: 10, body: null }).execute(); }),
      db.insertInto('t').values({ n: 11, body: null }).execute(),
      db.transaction().execute(async (trx) => { await trx.insertInto('t').values({ n: 12, body: null }).execute(); }),
    ]);
    assert.deepEqual((await db.selectFrom('t').select('n').orderBy('n').execute()).map((r) => r.n), [2, 10, 11, 12]);
  });
});

test('sqlite thread: the same SQL reuses its prepared statement; at most PREPARED_STATEMENTS are kept, least recently used dropped', { timeout: 30_000 }, async () => {
  await withDb(async (db, thread) => {
    for (let round = 0; round < 3; round++) await sql`select ${sql.lit(1)} as n`.execute(db);
    const before = (await thread().stats()).preparedStatements;
    await sql`select ${sql.lit(1)} as n`.execute(db);
    assert.equal((await thread().stats()).preparedStatements, before, 'a repeated query prepared nothing new');
    for (let i = 0; i < PREPARED_STATEMENTS + 50; i++) {
      const r = await sql<{ n: number }>`select ${sql.lit(i)} as n`.execute(db);
      assert.equal(r.rows[0]!.n, i);
    }
    assert.equal((await thread().stats()).preparedStatements, PREPARED_STATEMENTS);
    const again = await sql<{ n: number }>`select ${sql.lit(3)} as n`.execute(db); // evicted long ago: prepared anew, still right
    assert.equal(again.rows[0]!.n, 3);
  });
});

test('sqlite thread: a file that is not a database fails the first query with SQLITE_NOTADB; a closed database refuses', { timeout: 15_000 }, async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'gh-sqlite-thread-'));
  try {
    const file = path.join(dir, 'bad.db');
    await writeFile(file, Buffer.alloc(4096, 0x42));
    const bad = new Kysely<Db>({ dialect: sqliteThreadDialect(() => SqliteThread.open(file, ['journal_mode = WAL'])) });
    await assert.rejects(sql`select 1`.execute(bad), (e: Error & { code?: string }) => e.code === 'SQLITE_NOTADB');
    await bad.destroy();
    const thread = await SqliteThread.open(path.join(dir, 'ok.db'), []);
    await thread.close();
    await assert.rejects(thread.query('select 1', []), /closed/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
