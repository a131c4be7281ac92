import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CircuitBreaker } from './circuit-breaker.ts';
import type { BreakerState } from '../third-party.ts';

function breaker(): { b: CircuitBreaker; changes: BreakerState[] } {
  const changes: BreakerState[] = [];
  return { b: new CircuitBreaker({ failureThreshold: 3, openMs: 1000 }, (s) => changes.push(s)), changes };
}

test('consecutive failures open the breaker; a success in between resets the count', () => {
  const { b, changes } = breaker();
  b.recordFailure(0);
  b.recordFailure(0);
  b.recordSuccess();
  b.recordFailure(0);
  b.recordFailure(0);
  assert.equal(b.state, 'closed');
  b.recordFailure(0);
  assert.equal(b.state, 'open');
  assert.equal(b.tryAcquire(999), false);
  assert.deepEqual(changes, ['open']);
});

test('after openMs one probe goes through; its success closes, its failure reopens', () => {
  const { b, changes } = breaker();
  for (let i = 0; i < 3; i++) b.recordFailure(0);
  assert.equal(b.tryAcquire(1000), true);
  assert.equal(b.state, 'half_open');
  assert.equal(b.tryAcquire(1001), false, 'only one probe at a time');
  b.recordFailure(1002);
  assert.equal(b.state, 'open');
  assert.equal(b.tryAcquire(1500), false);
  assert.equal(b.tryAcquire(2002), true);
  b.recordSuccess();
  assert.equal(b.state, 'closed');
  assert.equal(b.tryAcquire(2003), true);
  assert.deepEqual(changes, ['open', 'half_open', 'open', 'half_open', 'closed']);
});
