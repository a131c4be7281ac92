import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BREAKER_DEFAULTS, CircuitBreaker, type FailureSource } from './circuit-breaker.ts';
import type { BreakerState } from '../third-party.ts';

function breaker(): { b: CircuitBreaker; changes: BreakerState[] } {
  const changes: BreakerState[] = [];
  return { b: new CircuitBreaker({ failureThreshold: 3, minAddresses: 2, openMs: 1000 }, (s) => changes.push(s)), changes };
}

/** The i-th caller of a real outage: its own username, addresses alternating. */
const caller = (i: number): FailureSource => ({ username: `device-${i}`, address: `10.0.0.${i % 2}` });

test('consecutive failures of distinct callers open the breaker; a success in between resets the count', { timeout: 5_000 }, () => {
  const { b, changes } = breaker();
  b.recordFailure(caller(0), 0);
  b.recordFailure(caller(1), 0);
  b.recordSuccess();
  b.recordFailure(caller(2), 0);
  b.recordFailure(caller(3), 0);
  assert.equal(b.state, 'closed');
  b.recordFailure(caller(4), 0);
  assert.equal(b.state, 'open');
  assert.equal(b.tryAcquire(999), false);
  assert.deepEqual(changes, ['open']);
});

test('one address or one username cannot open it, however many failures it causes', { timeout: 5_000 }, () => {
  const { b } = breaker();
  for (let i = 0; i < 50; i++) b.recordFailure({ username: `stranger-${i}`, address: '203.0.113.9' }, i);
  assert.equal(b.state, 'closed', 'many usernames from one address');
  const other = breaker().b;
  for (let i = 0; i < 50; i++) other.recordFailure({ username: 'victim', address: `198.51.100.${i}` }, i);
  assert.equal(other.state, 'closed', 'one username from many addresses');
  assert.deepEqual(other.counted, { usernames: 1, addresses: 2 }, 'addresses counted up to minAddresses only');
  // A real outage afterwards still opens it.
  for (let i = 0; i < 3; i++) b.recordFailure(caller(i), 100);
  assert.equal(b.state, 'open');
});

test('after openMs one probe goes through; its success closes, its failure reopens', { timeout: 5_000 }, () => {
  const { b, changes } = breaker();
  for (let i = 0; i < 3; i++) b.recordFailure(caller(i), 0);
  assert.equal(b.tryAcquire(1000), true);
  assert.equal(b.state, 'half_open');
  assert.equal(b.tryAcquire(1001), false, 'only one probe at a time');
  b.recordFailure(caller(9), 1002);
  assert.equal(b.state, 'open');
  assert.equal(b.tryAcquire(1500), false);
  assert.equal(b.tryAcquire(2002), true);
  b.recordSuccess();
  assert.equal(b.state, 'closed');
  assert.equal(b.tryAcquire(2003), true);
  assert.deepEqual(changes, ['open', 'half_open', 'open', 'half_open', 'closed']);
});

test('failures of calls made before it opened do not hold it open longer', { timeout: 5_000 }, () => {
  // Calls in flight when it opened fail afterwards (timeouts): they are the outage already counted.
  const { b, changes } = breaker();
  for (let i = 0; i < 3; i++) b.recordFailure(caller(i), 0);
  for (let i = 3; i < 9; i++) b.recordFailure(caller(i), 500);
  assert.equal(b.tryAcquire(999), false);
  assert.equal(b.tryAcquire(1000), true, 'the probe goes openMs after it opened');
  assert.deepEqual(changes, ['open', 'half_open']);
});

test('the callers it counts are bounded by the thresholds, and counted afresh once it opens or a call succeeds', { timeout: 5_000 }, () => {
  // A stranger failing under ever new usernames from one address holds no more than the thresholds.
  const { b } = breaker();
  for (let i = 0; i < 50; i++) b.recordFailure({ username: `stranger-${i}`, address: '203.0.113.9' }, i);
  assert.deepEqual(b.counted, { usernames: 3, addresses: 1 });
  b.recordSuccess();
  assert.deepEqual(b.counted, { usernames: 0, addresses: 0 });
  for (let i = 0; i < 3; i++) b.recordFailure(caller(i), 100);
  assert.equal(b.state, 'open');
  assert.deepEqual(b.counted, { usernames: 0, addresses: 0 }, 'opening starts a new count');
  // Unnamed callers count as one username and one address.
  const other = breaker().b;
  for (let i = 0; i < 5; i++) other.recordFailure({ username: undefined, address: undefined }, i);
  assert.deepEqual(other.counted, { usernames: 1, addresses: 1 });
  assert.equal(other.state, 'closed');
});

test('after a probe closed it, the next outage opens it again and is probed again after openMs', { timeout: 5_000 }, () => {
  const { b, changes } = breaker();
  for (let i = 0; i < 3; i++) b.recordFailure(caller(i), 0);
  assert.equal(b.tryAcquire(1000), true);
  b.recordSuccess();
  assert.equal(b.tryAcquire(1001), true, 'closed: every call goes');
  b.recordSuccess();
  for (let i = 0; i < 3; i++) b.recordFailure(caller(i), 2000);
  assert.equal(b.tryAcquire(2999), false);
  assert.equal(b.tryAcquire(3000), true);
  assert.deepEqual(changes, ['open', 'half_open', 'closed', 'open', 'half_open'], 'a success while closed changes nothing');
});

test('the gateway\'s breaker (BREAKER_DEFAULTS): five failures in a row from five usernames and two addresses open it for ten seconds', { timeout: 5_000 }, () => {
  // The numbers the README gives operators.
  const b = new CircuitBreaker(BREAKER_DEFAULTS, () => undefined);
  for (let i = 0; i < 5; i++) b.recordFailure({ username: `device-${i}`, address: '10.0.0.1' }, 0);
  assert.equal(b.state, 'closed', 'five usernames from one address');
  b.recordSuccess();
  for (let i = 0; i < 4; i++) b.recordFailure(caller(i), 0);
  assert.equal(b.state, 'closed', 'four usernames from two addresses');
  b.recordFailure(caller(4), 0);
  assert.equal(b.state, 'open');
  assert.equal(b.tryAcquire(9_999), false);
  assert.equal(b.tryAcquire(10_000), true);
});
