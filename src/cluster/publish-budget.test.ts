import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PublishBudget } from './publish-budget.ts';

/** Flushes the test answers by hand, as a NATS server's PONGs would arrive. */
function flushes(): { flush: () => Promise<void>; pending: { resolve: () => void; reject: (e: Error) => void }[] } {
  const pending: { resolve: () => void; reject: (e: Error) => void }[] = [];
  return { pending, flush: () => new Promise<void>((resolve, reject) => pending.push({ resolve, reject })) };
}
const turn = () => new Promise((r) => setImmediate(r));

test('publishes are admitted up to the bound while unconfirmed, refused past it, and admitted again once a flush answers', { timeout: 5_000 }, async () => {
  const f = flushes();
  const budget = new PublishBudget(100, f.flush);
  assert.ok(budget.admit(60));
  assert.equal(f.pending.length, 1, 'a flush goes out with the first publish');
  assert.ok(budget.admit(40), 'exactly at the bound');
  assert.equal(budget.unconfirmed, 100);
  assert.equal(budget.admit(1), false, 'past the bound: refused, not counted');
  assert.equal(budget.unconfirmed, 100);
  assert.equal(f.pending.length, 1, 'one flush in flight at a time');
  f.pending[0]!.resolve();
  await turn();
  // The first flush confirmed only the 60 bytes before it; the 40 after it get a flush of their own.
  assert.equal(budget.unconfirmed, 40);
  assert.equal(f.pending.length, 2);
  f.pending[1]!.resolve();
  await turn();
  assert.equal(budget.unconfirmed, 0);
  assert.equal(f.pending.length, 2, 'nothing unconfirmed: no more flushes');
  assert.ok(budget.admit(100));
});

test('one publish larger than the whole budget passes when nothing else waits, so it is not refused forever', { timeout: 5_000 }, () => {
  const f = flushes();
  const budget = new PublishBudget(10, f.flush);
  assert.ok(budget.admit(50));
  assert.equal(budget.admit(1), false);
});

test('a flush that fails (connection closed) releases what it covered; one never answered is retried after retryMs', { timeout: 5_000 }, async () => {
  const f = flushes();
  let now = 0;
  const budget = new PublishBudget(100, f.flush, 1_000, () => now);
  assert.ok(budget.admit(100));
  f.pending[0]!.reject(new Error('closed'));
  await turn();
  assert.equal(budget.unconfirmed, 0);

  assert.ok(budget.admit(100));
  assert.equal(f.pending.length, 2);
  now = 999;
  assert.equal(budget.admit(1), false);
  assert.equal(f.pending.length, 2, 'not retried before retryMs');
  now = 1_000;
  assert.equal(budget.admit(1), false, 'still over the bound');
  assert.equal(f.pending.length, 3, 'the unanswered flush is tried again');
  f.pending[2]!.resolve();
  await turn();
  assert.equal(budget.unconfirmed, 0, 'a later answer confirms everything before it; the lost PING holds nothing up');
  assert.ok(budget.admit(100));
  assert.equal(f.pending.length, 4, 'a new flush at once: the lost one no longer counts as in flight');
  f.pending[1]!.resolve(); // the lost one answers late: harmless
  await turn();
  assert.equal(budget.unconfirmed, 100);
});
