import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cacheUntil, DEFAULT_OCSP_TIMINGS, OcspStatusCache } from './ocsp-cache.ts';

const MIN = 60_000;
const now = Date.UTC(2026, 0, 1);

test('answers are kept until nextUpdate, clamped to 5 min … 1 h (DESIGN.md contracts)', { timeout: 5_000 }, () => {
  const at = (minutes: number): Date => new Date(now + minutes * MIN);
  assert.equal(cacheUntil(at(30), now, DEFAULT_OCSP_TIMINGS), now + 30 * MIN);
  assert.equal(cacheUntil(at(1), now, DEFAULT_OCSP_TIMINGS), now + 5 * MIN, 'raised to the lower bound');
  assert.equal(cacheUntil(at(-10), now, DEFAULT_OCSP_TIMINGS), now + 5 * MIN, 'a past nextUpdate still waits the lower bound before asking again');
  assert.equal(cacheUntil(at(24 * 60), now, DEFAULT_OCSP_TIMINGS), now + 60 * MIN, 'cut to the upper bound');
  assert.equal(cacheUntil(undefined, now, DEFAULT_OCSP_TIMINGS), now + 5 * MIN, 'no nextUpdate: newer information is always available (RFC 6960 §2.4)');
});

test('the status cache drops expired entries and stays within its size bound', { timeout: 5_000 }, () => {
  const cache = new OcspStatusCache(2);
  cache.set('a', { status: 'good', expiresAt: now + 1000 });
  assert.deepEqual(cache.get('a', now), { status: 'good', expiresAt: now + 1000 });
  assert.equal(cache.get('a', now + 1000), undefined, 'expired at expiresAt');
  assert.equal(cache.size, 0);
  cache.set('a', { status: 'good', expiresAt: now + 1000 });
  cache.set('b', { status: 'revoked', expiresAt: now + 1000 });
  cache.set('c', { status: 'unknown', expiresAt: now + 1000 });
  assert.equal(cache.size, 2);
  assert.equal(cache.get('a', now), undefined, 'the oldest entry made room');
  assert.equal(cache.get('c', now)?.status, 'unknown');
});
