import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Pacer } from './pacer.ts';

test('a second of burst passes, the next message waits for its token', { timeout: 5_000 }, () => {
  const pacer = new Pacer(0);
  for (let i = 0; i < 10; i++) assert.equal(pacer.take(10, 10, 0, 0), 0);
  assert.equal(pacer.take(10, 10, 0, 0), 100); // one token at 10/s
  assert.equal(pacer.take(10, 10, 0, 100), 100); // the debt was repaid, one more overdraws again
});

test('bytes: a packet larger than the bucket is handled, then the debt is waited out', { timeout: 5_000 }, () => {
  const pacer = new Pacer(0);
  assert.equal(pacer.take(3000, 0, 1000, 0), 2000);
  assert.equal(pacer.take(1, 0, 1000, 2000), 1);
});

test('no rate, no wait; a changed rate starts a full bucket', { timeout: 5_000 }, () => {
  const pacer = new Pacer(0);
  for (let i = 0; i < 1000; i++) assert.equal(pacer.take(1 << 20, 0, 0, 0), 0);
  for (let i = 0; i < 5; i++) pacer.take(1, 5, 0, 0);
  assert.ok(pacer.take(1, 5, 0, 0) > 0);
  assert.equal(pacer.take(1, 50, 0, 0), 0);
});
