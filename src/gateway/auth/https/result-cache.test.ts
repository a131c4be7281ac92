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
  assert.equal(cache.get(a, 59_999)?.kind, 'accept', 'an accept outlives the reject TTL');
  assert.equal(cache.get(a, 60_000), undefined);
  const off = new ResultCache(0, 0);
  off.put(a, { kind: 'accept', deviceName: 'dev-a' }, 0);
  assert.equal(off.size, 0);
  const brief = new ResultCache(1, 1);
  brief.put(a, { kind: 'accept', deviceName: 'dev-a' }, 0);
  assert.equal(brief.get(a, 0)?.kind, 'accept', 'a TTL of 1 ms still caches');
});

test('the oldest entry goes when the cache is full', { timeout: 5_000 }, () => {
  const cache = new ResultCache(60_000, 60_000, 2);
  for (const k of ['k1', 'k2', 'k3']) cache.put(k, { kind: 'accept', deviceName: k }, 0);
  assert.equal(cache.get('k1', 1), undefined);
  assert.equal(cache.get('k3', 1)?.kind, 'accept');
});

test('an answer found expired is dropped, not kept until evicted', { timeout: 5_000 }, () => {
  const cache = new ResultCache(1_000, 1_000);
  cache.put('k', { kind: 'accept', deviceName: 'd' }, 0);
  assert.equal(cache.get('k', 999)?.kind, 'accept');
  assert.equal(cache.size, 1);
  assert.equal(cache.get('k', 1_000), undefined);
  assert.equal(cache.size, 0);
});

test('a full cache holds exactly its size; an answer put again is the newest, so the oldest other one goes', { timeout: 5_000 }, () => {
  const cache = new ResultCache(60_000, 60_000, 2);
  cache.put('k1', { kind: 'accept', deviceName: 'k1' }, 0);
  cache.put('k2', { kind: 'accept', deviceName: 'k2' }, 0);
  assert.deepEqual([cache.size, cache.get('k1', 1)?.kind, cache.get('k2', 1)?.kind], [2, 'accept', 'accept']);
  cache.put('k1', { kind: 'reject', reason: 'changed' }, 1);
  cache.put('k3', { kind: 'accept', deviceName: 'k3' }, 1);
  assert.deepEqual([cache.get('k1', 2)?.kind, cache.get('k2', 2), cache.get('k3', 2)?.kind], ['reject', undefined, 'accept']);
});

test('by default it holds 100 000 answers', { timeout: 15_000 }, () => {
  // The bound on the memory the HTTPS authenticator's cache may take (it is built with the default).
  const cache = new ResultCache(60_000, 60_000);
  for (let i = 0; i <= 100_000; i++) cache.put(`k${i}`, { kind: 'reject', reason: 'r' }, 0);
  assert.equal(cache.size, 100_000);
  assert.equal(cache.get('k0', 1), undefined);
  assert.equal(cache.get('k1', 1)?.kind, 'reject');
});
