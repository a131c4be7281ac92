import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import BetterSqlite3 from 'better-sqlite3';
import { threadNiceness } from '../../test/harness/thread-niceness.ts';
import { silentLogger } from '../core/logger.ts';
import { STORAGE_THREAD_NICENESS } from '../core/thread-priority.ts';
import { SqliteThread } from './sqlite-thread.ts';
import { SqliteWriter } from './sqlite-writer.ts';
import { WalCheckpointer } from './wal-checkpointer.ts';

// The SQLite threads (a message-path writer, the WAL checkpointer, the embedded database's thread)
// run below the event loop's priority, so that a flood of large writes cannot take a contested core
// from the loop every device's packets pass through (core/thread-priority.ts). Each thread lowers its
// own priority from its evaluated source, which carries the function as text: this also proves the
// function still works once stringified.

const LINUX = process.platform === 'linux';

// The process is assumed to run below niceness 10 (a test run under `nice -n 10` would see nothing change).
test('the SQLite threads run at niceness 10; the event loop keeps its own', { skip: !LINUX, timeout: 20_000 }, async (t) => {
  assert.equal(STORAGE_THREAD_NICENESS, 10);
  const dir = mkdtempSync(path.join(tmpdir(), 'gh-thread-priority-'));
  const file = path.join(dir, 'w.db');
  const setup = new BetterSqlite3(file);
  setup.pragma('journal_mode = WAL');
  setup.exec('CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)');
  setup.close();
  const before = threadNiceness();
  const writer = new SqliteWriter(file, []);
  const thread = await SqliteThread.open(path.join(dir, 'db.db'), ['journal_mode = WAL']);
  const checkpointer = new WalCheckpointer({ logger: silentLogger });
  t.after(async () => {
    await Promise.all([writer.close(), thread.close(), checkpointer.close()]);
    rmSync(dir, { recursive: true, force: true });
  });
  // Each thread works, so each has run its source's first lines.
  await writer.run([{ sql: 'INSERT INTO t (v) VALUES (?)', params: ['x'] }]);
  let lowered: Array<[number, number]> = [];
  for (let i = 0; i < 100; i++) { // the checkpointer's thread answers nothing unasked: wait for its start
    lowered = [...threadNiceness()].filter(([tid, nice]) => !before.has(tid) && nice === STORAGE_THREAD_NICENESS);
    if (lowered.length >= 3) break;
    await sleep(50);
  }
  const added = [...threadNiceness()].filter(([tid]) => !before.has(tid));
  assert.equal(lowered.length, 3, `one lowered thread each for the writer, the database thread and the checkpointer; new threads: ${JSON.stringify(added)}`);
  assert.equal(threadNiceness().get(process.pid), before.get(process.pid), 'the main thread keeps its priority');
});
