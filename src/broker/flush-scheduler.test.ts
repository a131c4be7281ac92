import assert from 'node:assert/strict';
import { test } from 'node:test';
import { flushIfOverdue, scheduleCommit, scheduleFlush } from './flush-scheduler.ts';

function busyFor(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) { /* a connection's input taking its time */ }
}

test('writes wait for the end of the turn, unless the turn ran past its budget: then they leave at the next connection\'s end of input, after the commits', { timeout: 10_000 }, async () => {
  const order: string[] = [];
  scheduleCommit({ commit: () => order.push('commit') });
  scheduleFlush({ flush: () => order.push('flush') });
  flushIfOverdue(); // at once: well inside the budget
  assert.equal(order.length, 0, 'an ordinary turn keeps its writes for one flush at its end');
  busyFor(5);
  flushIfOverdue();
  assert.deepEqual(order, ['commit', 'flush'], 'durable state first, then the writes');
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(order, ['commit', 'flush'], 'the turn-end flush finds nothing left');
  // And the next turn coalesces again.
  scheduleFlush({ flush: () => order.push('flush-2') });
  flushIfOverdue();
  assert.equal(order.length, 2);
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(order, ['commit', 'flush', 'flush-2']);
});
