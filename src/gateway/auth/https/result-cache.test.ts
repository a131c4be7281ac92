import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ResultCache } from './result-cache.ts';

test('accepts and rejects live for their own time; a zero TTL does not cache', { timeout: 5_000 }, () => {
  const cache = new ResultCache(60_000, 5_000);
  const a = cache.keyOf('{"username":"a"}');
  const r = cache.keyOf('{"username":"r"}');
  assert.notEqual(a, r);
  cache.put(a, { kind: 'accept', deviceName: 'dev-a' }, 0);
  cache.put(r, { kind: 'reject', reason: 'no' }, 0);
  assert.deepEqual(cache.get(a, 4_999), { kind: 'accept', deviceName: 'dev-a' });
  assert.deepEqual(cache.get(r, 4_999), { kind: 'reject', reason: 'no' });
  assert.equal(cache.get(r, 5_000), undefined);
  assert.equal(cache.get(a, 60_000), undefined);
  const off = new ResultCache(0, 0);
  off.put(a, { kind: 'accept', deviceName: 'dev-a' }, 0);
  assert.equal(off.size, 0);
});

test('the oldest entry goes when the cache is full', { timeout: 5_000 }, () => {
  const cache = new ResultCache(60_000, 60_000, 2);
  for (const k of ['k1', 'k2', 'k3']) cache.put(k, { kind: 'accept', deviceName: k }, 0);
  assert.equal(cache.get('k1', 1), undefined);
  assert.equal(cache.get('k3', 1)?.kind, 'accept');
});
