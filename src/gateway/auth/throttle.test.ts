import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FailureThrottle } from './throttle.ts';

test('failures beyond the free ones wait longer each time, up to the cap', () => {
  const t = new FailureThrottle({ freeFailures: 2, baseDelayMs: 100, maxDelayMs: 1000 });
  const delays = Array.from({ length: 7 }, (_, i) => t.recordFailure(['u:meter'], 1000 + i));
  assert.deepEqual(delays, [0, 0, 100, 200, 400, 800, 1000]);
});

test('an address that tries many usernames is slowed down too', () => {
  const t = new FailureThrottle({ freeFailures: 1, baseDelayMs: 50 });
  assert.equal(t.recordFailure(['u:a', 'a:10.0.0.9'], 0), 0);
  assert.equal(t.recordFailure(['u:b', 'a:10.0.0.9'], 1), 50);
  assert.equal(t.recordFailure(['u:c', 'a:10.0.0.9'], 2), 100);
});

test('a success clears the username; old records are forgotten after the window', () => {
  const t = new FailureThrottle({ freeFailures: 0, baseDelayMs: 10, windowMs: 1000 });
  assert.equal(t.recordFailure(['u:x'], 0), 10);
  t.recordSuccess('u:x');
  assert.equal(t.recordFailure(['u:x'], 1), 10);
  assert.equal(t.recordFailure(['u:x'], 5000), 10); // the window passed: counted afresh
});

test('the number of tracked keys is bounded', () => {
  const t = new FailureThrottle({ freeFailures: 0, baseDelayMs: 10, maxKeys: 3 });
  for (let i = 0; i < 10; i++) t.recordFailure([`u:${i}`], i);
  // The oldest were evicted: u:0 starts over.
  assert.equal(t.recordFailure(['u:0'], 20), 10);
});
