import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FailureThrottle } from './throttle.ts';

test('failures beyond the free ones wait longer each time, up to the cap', { timeout: 5_000 }, () => {
  const t = new FailureThrottle({ freeFailures: 2, baseDelayMs: 100, maxDelayMs: 1000 });
  const delays = Array.from({ length: 7 }, (_, i) => t.recordFailure(['u:meter'], 1000 + i));
  assert.deepEqual(delays, [0, 0, 100, 200, 400, 800, 1000]);
});

test('an address that tries many usernames is slowed down too', { timeout: 5_000 }, () => {
  const t = new FailureThrottle({ freeFailures: 1, baseDelayMs: 50 });
  assert.equal(t.recordFailure(['u:a', 'a:10.0.0.9'], 0), 0);
  assert.equal(t.recordFailure(['u:b', 'a:10.0.0.9'], 1), 50);
  assert.equal(t.recordFailure(['u:c', 'a:10.0.0.9'], 2), 100);
});

test('a success clears the username; old records are forgotten after the window', { timeout: 5_000 }, () => {
  const t = new FailureThrottle({ freeFailures: 0, baseDelayMs: 10, windowMs: 1000 });
  assert.equal(t.recordFailure(['u:x'], 0), 10);
  t.recordSuccess('u:x');
  assert.equal(t.recordFailure(['u:x'], 1), 10);
  assert.equal(t.recordFailure(['u:x'], 5000), 10); // the window passed: counted afresh
});

test('the number of tracked keys is bounded', { timeout: 5_000 }, () => {
  const t = new FailureThrottle({ freeFailures: 0, baseDelayMs: 10, maxKeys: 3 });
  for (let i = 0; i < 10; i++) t.recordFailure([`u:${i}`], i);
  // The oldest were evicted: u:0 starts over.
  assert.equal(t.recordFailure(['u:0'], 20), 10);
});

import { ConnectThrottle } from './throttle.ts';

/** A throttle whose sleeps are recorded and resolve at once. */
function throttle(options: ConstructorParameters<typeof ConnectThrottle>[0] = {}): { t: ConnectThrottle; slept: number[] } {
  const slept: number[] = [];
  return { t: new ConnectThrottle({ freeFailures: 1, baseDelayMs: 100, ...options }, (ms) => { slept.push(ms); return Promise.resolve(); }), slept };
}

test('attempts of one username and address run one at a time; beyond the queue they are refused without work', { timeout: 5_000 }, async () => {
  const { t } = throttle({ maxQueuedPerPair: 2 });
  const first = await t.enter('meter', '10.0.0.1');
  assert.ok(first);
  const waiting = [t.enter('meter', '10.0.0.1'), t.enter('meter', '10.0.0.1')];
  assert.equal(await t.enter('meter', '10.0.0.1'), null, 'the queue is full');
  let second: Awaited<(typeof waiting)[0]> | undefined;
  void waiting[0]!.then((turn) => { second = turn; });
  await Promise.resolve();
  assert.equal(second, undefined, 'still waiting while the first runs');
  first.finish('failure');
  (await waiting[0]!)!.finish('failure');
  (await waiting[1]!)!.finish('failure');
});

test('the delay earned by past failures is waited before the work, and only by that pair or address', { timeout: 5_000 }, async () => {
  const { t, slept } = throttle();
  for (let i = 0; i < 3; i++) (await t.enter('meter', '10.0.0.1'))!.finish('failure');
  assert.deepEqual(slept, [100], 'the third attempt waited for the second failure');
  (await t.enter('meter', '10.0.0.1'))!.finish('other');
  assert.deepEqual(slept, [100, 200]);
  // The same username from another address (the real device) and another username from another address: no wait.
  (await t.enter('meter', '10.0.0.2'))!.finish('success');
  (await t.enter('other', '10.0.0.3'))!.finish('success');
  assert.deepEqual(slept, [100, 200]);
});

test('an address failing with many usernames is slowed after its own free failures', { timeout: 5_000 }, async () => {
  const { t, slept } = throttle({ freeAddressFailures: 2 });
  for (let i = 0; i < 4; i++) (await t.enter(`user-${i}`, '10.0.0.9'))!.finish('failure');
  assert.deepEqual(slept, [100]);
});

test('concurrent verifications per username are bounded across addresses', { timeout: 5_000 }, async () => {
  const { t } = throttle({ maxConcurrentPerUsername: 1, maxWaitingPerUsername: 0 });
  const first = await t.enter('meter', '10.0.0.1');
  assert.ok(first);
  assert.equal(await t.enter('meter', '10.0.0.2'), null);
  first.finish('success');
  assert.ok(await t.enter('meter', '10.0.0.2'));
});

test('guesses queued while the pair looked innocent are refused but a few once it is throttled', { timeout: 5_000 }, async () => {
  const { t } = throttle({ freeFailures: 1, maxQueuedPerPair: 64, maxWaitingPerPair: 2 });
  const first = (await t.enter('meter', '10.0.0.1'))!;
  const queued = Array.from({ length: 10 }, () => t.enter('meter', '10.0.0.1'));
  first.finish('failure'); // 1 failure: still free; the next in line gets its turn
  const second = (await queued[0]!)!;
  second.finish('failure'); // 2 failures: throttled, the queue is cut to 2
  const outcomes = await Promise.all(queued.slice(1).map(async (p) => {
    const turn = await p;
    turn?.finish('failure');
    return turn === null ? 'refused' : 'ran';
  }));
  assert.deepEqual(outcomes, ['ran', 'ran', ...Array<string>(7).fill('refused')]);
});
