import assert from 'node:assert/strict';
import { test } from 'node:test';
import BetterSqlite3 from 'better-sqlite3';
import { cachePreparedStatements } from './sqlite.ts';

test('the same SQL gets the same prepared statement back; the least recently used of 256 is dropped', { timeout: 10_000 }, () => {
  const db = new BetterSqlite3(':memory:');
  try {
    cachePreparedStatements(db);
    db.exec('CREATE TABLE t (n INTEGER)');
    const insert = db.prepare('INSERT INTO t (n) VALUES (?)');
    assert.equal(db.prepare('INSERT INTO t (n) VALUES (?)'), insert);
    insert.run(1);
    db.prepare('INSERT INTO t (n) VALUES (?)').run(2);
    assert.deepEqual(db.prepare('SELECT n FROM t ORDER BY n').all(), [{ n: 1 }, { n: 2 }]);
    const first = db.prepare('SELECT 0 AS n');
    for (let i = 1; i <= 256; i++) db.prepare(`SELECT ${i} AS n`); // 256 newer ones (the two above go first)
    assert.equal(db.prepare('SELECT 256 AS n'), db.prepare('SELECT 256 AS n'));
    assert.notEqual(db.prepare('SELECT 0 AS n'), first, 'evicted after 256 newer statements');
  } finally {
    db.close();
  }
});
