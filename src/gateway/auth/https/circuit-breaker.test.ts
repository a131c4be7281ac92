import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CircuitBreaker, type FailureSource } from './circuit-breaker.ts';
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
