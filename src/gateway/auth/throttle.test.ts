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

import { ConnectThrottle, type ConnectTurn } from './throttle.ts';

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

/** What `p` has come to once everything ready to run has run (one turn of the event loop): its value, or 'waiting'. */
function now<T>(p: Promise<T>): Promise<T | 'waiting'> {
  return Promise.race([p, new Promise<'waiting'>((resolve) => setImmediate(() => resolve('waiting')))]);
}

/** Runs every attempt of `attempts` that got a turn to its end ('success'), in order (each may wait for the one before). */
async function finishAll(attempts: Promise<ConnectTurn | null>[]): Promise<void> {
  for (const p of attempts) (await p)?.finish('success');
}

test('the gateway\'s failure throttle (DEFAULT_THROTTLE): three free failures, then 250 ms doubling up to 5 s, for ten minutes; 50 000 keys', { timeout: 15_000 }, () => {
  // The gateway builds its throttle with the defaults: these are the numbers the README gives operators.
  const t = new FailureThrottle();
  assert.deepEqual(Array.from({ length: 9 }, (_, i) => t.recordFailure(['p:meter'], i)), [0, 0, 0, 250, 500, 1000, 2000, 4000, 5000]);
  assert.equal(t.delayFor(['p:meter'], 8 + 600_000), 5000, 'ten minutes after the last failure: still counted');
  assert.equal(t.delayFor(['p:meter'], 8 + 600_001), 0);
  const many = new FailureThrottle();
  for (let i = 0; i <= 50_000; i++) many.recordFailure([`k${i}`], 0);
  assert.equal(many.size, 50_000);
  assert.equal(many.delayFor(['k0'], 1, () => 0), 0, 'the oldest key was evicted');
  assert.equal(many.delayFor(['k1'], 1, () => 0), 250);
});

test('a record lives windowMs from its last failure and is dropped when found expired; a new failure makes its key the newest', { timeout: 5_000 }, () => {
  const t = new FailureThrottle({ freeFailures: 0, baseDelayMs: 10, windowMs: 1000, maxKeys: 2 });
  assert.equal(t.delayFor(['u:x'], 0), 0, 'no record: no delay, even with no free failures');
  t.recordFailure(['u:x'], 0);
  t.recordFailure(['u:x'], 900);
  assert.equal(t.delayFor(['u:x'], 1900), 20, 'the window runs from the last failure');
  assert.equal(t.size, 1);
  assert.equal(t.delayFor(['u:x'], 1901), 0);
  assert.equal(t.size, 0, 'found expired: dropped');
  // k1, k2, then k1 again: k2 is the oldest when k3 comes, and goes.
  for (const [key, at] of [['k1', 2000], ['k2', 2000], ['k1', 2001], ['k3', 2002]] as const) t.recordFailure([key], at);
  assert.equal(t.size, 2);
  assert.deepEqual(['k1', 'k2', 'k3'].map((k) => t.delayFor([k], 2003)), [20, 0, 10]);
});

test('the gateway\'s CONNECT throttle (DEFAULT_THROTTLE): 20 free failures per address; per pair 64 queued, 4 once throttled; 4 per username and 32 per address at once, 64 and 256 waiting', { timeout: 30_000 }, async () => {
  const slept: number[] = [];
  const t = new ConnectThrottle({}, (ms) => { slept.push(ms); return Promise.resolve(); });
  // An address trying a new username each time: 20 failures are free, the 21st earns the first delay.
  for (let i = 0; i < 21; i++) (await t.enter(`user-${i}`, '10.0.0.9'))!.finish('failure');
  assert.deepEqual(slept, []);
  (await t.enter('user-21', '10.0.0.9'))!.finish('failure');
  assert.deepEqual(slept, [250]);

  // One pair with no failures: one runs, 64 wait, the next is refused.
  const first = t.enter('meter', '10.0.0.1');
  const queued = Array.from({ length: 65 }, () => t.enter('meter', '10.0.0.1'));
  assert.notEqual(await now(first), 'waiting');
  assert.deepEqual(await Promise.all(queued.map(async (p) => { const v = await now(p); return v === 'waiting' ? v : v === null ? 'refused' : 'ran'; })),
    [...Array<string>(64).fill('waiting'), 'refused']);
  await finishAll([first, ...queued]);

  // A pair past its three free failures: one runs, 4 wait, the next is refused.
  for (let i = 0; i < 4; i++) (await t.enter('guess', '10.0.0.2'))!.finish('failure');
  const running = t.enter('guess', '10.0.0.2');
  const throttled = Array.from({ length: 5 }, () => t.enter('guess', '10.0.0.2'));
  assert.notEqual(await now(running), 'waiting');
  assert.deepEqual(await Promise.all(throttled.map(async (p) => { const v = await now(p); return v === 'waiting' ? v : v === null ? 'refused' : 'ran'; })),
    [...Array<string>(4).fill('waiting'), 'refused']);
  await finishAll([running, ...throttled]);

  // One username from many addresses: 4 run, 64 wait, the next is refused; one address with many usernames: 32 and 256.
  for (const [attempts, runs, waits] of [
    [Array.from({ length: 69 }, (_, i) => t.enter('fleet', `10.1.${i >> 8}.${i & 255}`)), 4, 64],
    [Array.from({ length: 289 }, (_, i) => t.enter(`device-${i}`, '10.2.0.1')), 32, 256],
  ] as const) {
    const states = await Promise.all(attempts.map(async (p) => { const v = await now(p); return v === 'waiting' ? v : v === null ? 'refused' : 'ran'; }));
    assert.deepEqual(states, [...Array<string>(runs).fill('ran'), ...Array<string>(waits).fill('waiting'), 'refused']);
    await finishAll(attempts);
  }
  assert.equal(t.heldKeys, 0, 'nothing is held once every turn is over');
});

test('an attempt refused by the address or the username limit gives back the turns it already held', { timeout: 5_000 }, async () => {
  const { t } = throttle({ maxConcurrentPerAddress: 1, maxWaitingPerAddress: 0 });
  const a = (await t.enter('a', '10.0.0.1'))!;
  assert.equal(await t.enter('b', '10.0.0.1'), null, 'the address is busy');
  a.finish('success');
  const b = await now(t.enter('b', '10.0.0.1'));
  assert.ok(b !== 'waiting' && b !== null, 'b\'s pair was given back');
  b.finish('success');
  assert.equal(t.heldKeys, 0);

  const { t: u } = throttle({ maxConcurrentPerUsername: 1, maxWaitingPerUsername: 0 });
  const x = (await u.enter('meter', '10.0.0.1'))!;
  assert.equal(await u.enter('meter', '10.0.0.2'), null, 'the username is busy');
  x.finish('success');
  const y = await now(u.enter('meter', '10.0.0.2'));
  assert.ok(y !== 'waiting' && y !== null, 'the pair and the address were given back');
  y.finish('success');
  assert.equal(u.heldKeys, 0);
});

test('a username\'s count of running turns goes down by one per finished turn', { timeout: 5_000 }, async () => {
  const { t } = throttle({ maxConcurrentPerUsername: 2, maxWaitingPerUsername: 0 });
  const a = (await t.enter('meter', '10.0.0.1'))!;
  const b = (await t.enter('meter', '10.0.0.2'))!;
  assert.equal(await t.enter('meter', '10.0.0.3'), null);
  a.finish('success');
  const c = (await t.enter('meter', '10.0.0.3'))!;
  assert.equal(await t.enter('meter', '10.0.0.4'), null, 'two run again: the limit');
  b.finish('success');
  c.finish('success');
  assert.equal(t.heldKeys, 0);
});

test('finishing a turn twice passes it on once', { timeout: 5_000 }, async () => {
  const { t } = throttle();
  const a = (await t.enter('meter', '10.0.0.1'))!;
  const w1 = t.enter('meter', '10.0.0.1');
  const w2 = t.enter('meter', '10.0.0.1');
  // The pair (one running, two waiting), the username and the address (one running each).
  assert.equal(t.heldKeys, 4, 'a pair with turns running and waiting counts as two keys held');
  a.finish('failure');
  a.finish('failure');
  assert.notEqual(await now(w1), 'waiting');
  assert.equal(await now(w2), 'waiting', 'the pair runs one at a time still');
  await finishAll([w1, w2]);
  assert.equal(t.heldKeys, 0);
});

test('a success clears the pair\'s failures; an outcome that is neither (a backend error) clears nothing', { timeout: 5_000 }, async () => {
  const { t, slept } = throttle(); // one free failure, 100 ms
  for (let i = 0; i < 2; i++) (await t.enter('meter', '10.0.0.1'))!.finish('failure');
  (await t.enter('meter', '10.0.0.1'))!.finish('other'); // waited 100
  (await t.enter('meter', '10.0.0.1'))!.finish('success'); // still two failures: waited 100
  (await t.enter('meter', '10.0.0.1'))!.finish('success'); // cleared
  assert.deepEqual(slept, [100, 100]);
});

test('pairs, usernames and addresses are each their own: another username or another address does not wait for a busy one', { timeout: 5_000 }, async () => {
  const { t } = throttle({ maxConcurrentPerAddress: 1, maxWaitingPerAddress: 0, maxConcurrentPerUsername: 1, maxWaitingPerUsername: 0 });
  const a = (await t.enter('a', '10.0.0.1'))!;
  const other = await now(t.enter('b', '10.0.0.2'));
  assert.ok(other !== 'waiting' && other !== null, 'another username from another address');
  other.finish('success');
  a.finish('success');
  const { t: v } = throttle();
  const x = (await v.enter('x', '10.0.0.1'))!;
  const sameAddress = await now(v.enter('y', '10.0.0.1'));
  const sameUsername = await now(v.enter('x', '10.0.0.2'));
  assert.ok(sameAddress !== 'waiting' && sameAddress !== null, 'another username from the same address: its own pair');
  assert.ok(sameUsername !== 'waiting' && sameUsername !== null, 'the same username from another address: its own pair');
  for (const turn of [x, sameAddress, sameUsername]) turn.finish('success');
  assert.equal(v.heldKeys, 0);
});

test('guesses queued while the pair looked innocent are all refused once it is throttled, when none may wait', { timeout: 5_000 }, async () => {
  const { t } = throttle({ freeFailures: 0, maxQueuedPerPair: 8, maxWaitingPerPair: 0 });
  const first = (await t.enter('meter', '10.0.0.1'))!;
  const queued = Array.from({ length: 3 }, () => t.enter('meter', '10.0.0.1'));
  first.finish('failure');
  assert.deepEqual(await Promise.all(queued), [null, null, null]);
  assert.equal(t.heldKeys, 0);
});

test('an attempt another node asked about is judged as of its arrival there: arrived before its throttled pair\'s queue was cut, it is cut too (issue 16)', { timeout: 5_000 }, async () => {
  const { t } = throttle();
  const arrived = Date.now() - 1_000;
  // The second failure is past the free one: the pair is throttled and its queue cut now.
  for (let i = 0; i < 2; i++) (await t.enter('guess', '10.0.0.7'))!.finish('failure');
  assert.equal(await t.enter('guess', '10.0.0.7', arrived), null, 'reached this node after the cut it would have fallen to');
  const later = await t.enter('guess', '10.0.0.7', Date.now() + 1);
  assert.ok(later, 'one that arrived after the cut waits its turn as on one process');
  later.finish('other');
  // A pair never throttled is not judged by arrival: nothing was cut.
  const other = await t.enter('meter', '10.0.0.7', arrived);
  assert.ok(other);
  other.finish('success');
});
