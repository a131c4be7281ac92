import assert from 'node:assert/strict';
import { test } from 'node:test';
import { flushIfOverdue, scheduleCommit, scheduleFlush, setFlushClock } from './flush-scheduler.ts';

// A clock of the test's own: on a loaded machine the process can be descheduled past the 2 ms budget
// between two lines, which made the "inside the budget" steps fail now and then.
let now = 0;

function busyFor(ms: number): void {
  now += ms; // a connection's input taking its time
}

test('writes wait for the end of the turn, unless the turn ran past its budget: then they leave at the next connection\'s end of input, after the commits', { timeout: 10_000 }, async (t) => {
  setFlushClock(() => now);
  t.after(() => setFlushClock(undefined));
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
