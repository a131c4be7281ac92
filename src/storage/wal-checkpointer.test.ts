import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import BetterSqlite3 from 'better-sqlite3';
import { silentLogger } from '../core/logger.ts';
import { WalCheckpointer } from './wal-checkpointer.ts';

const MB = 1024 * 1024;

function openWal(t: { after(fn: () => void): void }): { db: BetterSqlite3.Database; file: string } {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'gatehouse-wal-'));
  const file = path.join(dir, 'state.db');
  const db = new BetterSqlite3(file);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.exec('CREATE TABLE blobs (k INTEGER PRIMARY KEY, v BLOB NOT NULL)');
  t.after(() => {
    if (db.open) db.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { db, file };
}

const size = (file: string): number => (existsSync(file) ? statSync(file).size : 0);

async function until(what: string, ok: () => boolean, write: () => void): Promise<void> {
  for (let i = 0; i < 500 && !ok(); i++) {
    write();
    await sleep(20);
  }
  assert.ok(ok(), what);
}

test('a managed connection never checkpoints itself: the worker copies its log into the database file and the log is trimmed', { timeout: 60_000 }, async (t) => {
  const { db, file } = openWal(t);
  const checkpointer = new WalCheckpointer({ logger: silentLogger, intervalMs: 10, startAtBytes: MB });
  t.after(() => checkpointer.close());
  checkpointer.manage(db, file);
  assert.equal(db.pragma('wal_autocheckpoint', { simple: true }), 0);

  const put = db.prepare('INSERT OR REPLACE INTO blobs (k, v) VALUES (?, ?)');
  const blob = Buffer.alloc(MB, 7);
  for (let i = 0; i < 48; i++) {
    put.run(i, blob);
    await sleep(5); // the event loop turns, as between a gateway's commits
  }
  // The database file grows only by checkpoints, and this connection's are off: the worker did them. Its reply (the
  // count) comes once its checkpoint ended, after the file grew: waited for too (a loaded CI saw the file first).
  await until('the worker checkpointed the 48 MB into the database file', () => size(file) >= 48 * MB && checkpointer.checkpoints > 0, () => undefined);
  assert.equal(checkpointer.failures, 0);
  // Once a checkpoint has caught up, the next write starts the log over and trims it to the limit.
  let k = 1_000;
  await until(`the log is trimmed (now ${size(`${file}-wal`)} bytes)`, () => size(`${file}-wal`) <= 4 * MB, () => put.run(k++, Buffer.alloc(100)));
  assert.equal((db.prepare('SELECT count(*) AS n FROM blobs WHERE length(v) = ?').get(MB) as { n: number }).n, 48);
});

test('a log past maxWalBytes gets the connection its own checkpoints back (bounded disk), and the worker takes over again once it is small', { timeout: 60_000 }, async (t) => {
  const { db, file } = openWal(t);
  // The worker only checkpoints logs of 1 GB: never here; the bound has to act.
  const checkpointer = new WalCheckpointer({ logger: silentLogger, intervalMs: 10, startAtBytes: 1024 * MB, maxWalBytes: 4 * MB });
  t.after(() => checkpointer.close());
  checkpointer.manage(db, file);
  const put = db.prepare('INSERT OR REPLACE INTO blobs (k, v) VALUES (?, ?)');
  let k = 0;
  await until('the connection checkpoints on its own again', () => db.pragma('wal_autocheckpoint', { simple: true }) === 1000, () => put.run(k++, Buffer.alloc(MB, 1)));
  // Its own checkpoints keep the log near SQLite's 1,000 pages, under half the bound: handed back.
  await until('the worker takes the checkpoints back', () => db.pragma('wal_autocheckpoint', { simple: true }) === 0, () => put.run(k++ % 4, Buffer.alloc(MB, 2)));
});

test('close hands the checkpoints back and lets the writer remove its log on a clean close', { timeout: 30_000 }, async (t) => {
  const { db, file } = openWal(t);
  const checkpointer = new WalCheckpointer({ logger: silentLogger, intervalMs: 10, startAtBytes: 64 * 1024 });
  checkpointer.manage(db, file);
  const put = db.prepare('INSERT INTO blobs (k, v) VALUES (?, ?)');
  await until('the worker checkpointed once', () => checkpointer.checkpoints > 0, () => put.run(null, Buffer.alloc(128 * 1024)));
  await checkpointer.close();
  assert.equal(db.pragma('wal_autocheckpoint', { simple: true }), 1000);
  db.close();
  // The worker's connection was closed first, so the writer's was the last: SQLite removed the log.
  assert.equal(existsSync(`${file}-wal`), false);
});
