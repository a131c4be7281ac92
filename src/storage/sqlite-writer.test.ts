import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { packTransaction, SqliteWriter } from './sqlite-writer.ts';

function scratch(t: { after(fn: () => void): void }): { file: string; reader: BetterSqlite3.Database } {
  const dir = mkdtempSync(path.join(tmpdir(), 'gh-writer-'));
  const file = path.join(dir, 'w.db');
  const reader = new BetterSqlite3(file);
  reader.pragma('journal_mode = WAL');
  reader.exec('CREATE TABLE t (k INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE, body BLOB)');
  t.after(() => {
    reader.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { file, reader };
}

const INSERT = 'INSERT INTO t (name, body) VALUES (?, ?)';

test('BLOB parameters cross as exactly their bytes: views of a larger buffer are packed, not their whole backing store', { timeout: 5_000 }, () => {
  const big = Buffer.alloc(64 * 1024, 7);
  const a = big.subarray(100, 110);
  const b = Buffer.from('hello');
  const m = packTransaction(1, [{ sql: INSERT, params: ['a', a] }, { sql: INSERT, params: ['b', b] }, { sql: INSERT, params: ['c', null] }]);
  assert.equal(m.blob?.byteLength, 15, 'only the 15 bytes of the two parameters');
  assert.deepEqual(m.refs, [0, 1, 0, 10, 1, 1, 10, 5]);
  assert.deepEqual(m.params, [['a', null], ['b', null], ['c', null]]);
  assert.deepEqual([m.sql, m.statements], [[INSERT], [0, 0, 0]], 'the SQL text crosses once');
  assert.deepEqual(Buffer.from(m.blob).subarray(10), b);
  assert.equal(packTransaction(2, [{ sql: INSERT, params: ['x', 1] }]).blob, null, 'no BLOB, nothing packed');
});

test('transactions commit in posting order with their BLOBs whole; the caller\'s own connection reads them once settled', { timeout: 20_000 }, async (t) => {
  const { file, reader } = scratch(t);
  const writer = new SqliteWriter(file, ['journal_mode = WAL', 'synchronous = NORMAL']);
  t.after(() => writer.close());
  const source = Buffer.alloc(1024 * 1024);
  for (let i = 0; i < source.length; i++) source[i] = i % 251;
  const keys = await Promise.all([
    writer.run([{ sql: INSERT, params: ['first', source.subarray(1, 1 + 512 * 1024)] }]),
    writer.run([{ sql: INSERT, params: ['second', Buffer.alloc(0)] }, { sql: INSERT, params: ['third', source] }]),
  ]);
  assert.deepEqual(keys, [1, 3], 'the last statement\'s rowid of each transaction');
  const rows = reader.prepare('SELECT k, name, body FROM t ORDER BY k').all() as { k: number; name: string; body: Buffer }[];
  assert.deepEqual(rows.map((r) => r.name), ['first', 'second', 'third']);
  assert.ok(rows[0]!.body.equals(source.subarray(1, 1 + 512 * 1024)));
  assert.equal(rows[1]!.body.length, 0);
  assert.ok(rows[2]!.body.equals(source));
});

test('a BLOB over shared memory (a large frame) crosses by reference, not packed, and is written whole beside packed ones', { timeout: 20_000 }, async (t) => {
  const shared = Buffer.from(new SharedArrayBuffer(256 * 1024));
  for (let i = 0; i < shared.length; i++) shared[i] = (i * 7) % 253;
  const payload = shared.subarray(5, 5 + 200 * 1024); // a PUBLISH's payload: a view inside its frame
  const small = Buffer.from('packed');
  const m = packTransaction(1, [{ sql: INSERT, params: ['shared', payload] }, { sql: INSERT, params: ['small', small] }]);
  assert.equal(m.blob?.byteLength, small.length, 'only the unshared parameter is copied');
  assert.deepEqual(m.refs, [1, 1, 0, small.length]);
  assert.equal(m.params[0]![1], payload, 'the shared view stays a parameter: postMessage shares its memory');

  const { file, reader } = scratch(t);
  const writer = new SqliteWriter(file, ['journal_mode = WAL', 'synchronous = NORMAL']);
  t.after(() => writer.close());
  await writer.run([{ sql: INSERT, params: ['shared', payload] }, { sql: INSERT, params: ['small', small] }]);
  const rows = reader.prepare('SELECT name, body FROM t ORDER BY k').all() as { name: string; body: Buffer }[];
  assert.deepEqual(rows.map((r) => r.name), ['shared', 'small']);
  assert.ok(rows[0]!.body.equals(payload), 'exactly the view\'s bytes, not its whole shared buffer');
  assert.ok(rows[1]!.body.equals(small));
});

test('a failing statement rolls its whole transaction back with SQLite\'s code; the next transaction still commits', { timeout: 20_000 }, async (t) => {
  const { file, reader } = scratch(t);
  const writer = new SqliteWriter(file, []);
  t.after(() => writer.close());
  await writer.run([{ sql: INSERT, params: ['one', null] }]);
  const failed = writer.run([{ sql: INSERT, params: ['two', null] }, { sql: INSERT, params: ['one', null] }]);
  const after = writer.run([{ sql: INSERT, params: ['three', null] }]);
  await assert.rejects(failed, (e: Error & { code?: string }) => e.code === 'SQLITE_CONSTRAINT_UNIQUE');
  await after;
  assert.deepEqual(reader.prepare('SELECT name FROM t ORDER BY k').pluck().all(), ['one', 'three'], '"two" went with its transaction');
});

test('drain settles after everything posted before it; close lets posted writes commit, then refuses more', { timeout: 20_000 }, async (t) => {
  const { file, reader } = scratch(t);
  const writer = new SqliteWriter(file, []);
  assert.equal(writer.open, true);
  const posted = Array.from({ length: 50 }, (_, i) => writer.run([{ sql: INSERT, params: [`n${i}`, Buffer.alloc(1000, i)] }]));
  await writer.drain();
  assert.equal((reader.prepare('SELECT count(*) FROM t').pluck().get()), 50, 'all 50 committed when drain settles');
  await Promise.all(posted);
  void writer.run([{ sql: INSERT, params: ['last', null] }]);
  await writer.close();
  assert.equal(writer.open, false);
  assert.equal((reader.prepare('SELECT count(*) FROM t').pluck().get()), 51, 'what was posted before close is written');
  await assert.rejects(writer.run([{ sql: INSERT, params: ['late', null] }]), /closed/);
});

test('a file the thread cannot open fails each write with the reason, and never hangs', { timeout: 20_000 }, async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'gh-writer-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const writer = new SqliteWriter(path.join(dir, 'missing.db'), []);
  t.after(() => writer.close());
  await assert.rejects(writer.run([{ sql: INSERT, params: ['x', null] }]), /unable to open|does not exist|directory/i);
});
