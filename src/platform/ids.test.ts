import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RANDOM_POOL_SIZE, newEventId } from './ids.ts';

test('event ids: fixed width, ordered by time then by the counter, unique, random suffix drawn afresh past the pool', { timeout: 10_000 }, () => {
  const n = RANDOM_POOL_SIZE * 3 + 7; // crosses several refills of the suffix pool
  const ids = Array.from({ length: n }, (_, i) => newEventId(1_700_000_000_000 + Math.floor(i / 100)));
  for (const id of ids) assert.match(id, /^[0-9a-z]{9}[0-9a-z]{5}[0-9a-f]{6}$/);
  assert.deepEqual([...ids].sort(), ids, 'lexical order is creation order');
  assert.equal(new Set(ids).size, n);
  const suffixes = new Set(ids.map((id) => id.slice(14)));
  // 24 random bits each: a repeated or constant suffix (a pool never refilled) would leave far fewer.
  assert.ok(suffixes.size > n * 0.99, `${suffixes.size} distinct suffixes of ${n}`);
  const perRefill = [0, 1, 2].map((k) => new Set(ids.slice(k * RANDOM_POOL_SIZE, (k + 1) * RANDOM_POOL_SIZE).map((id) => id.slice(14))));
  assert.ok([...perRefill[1]!].filter((s) => perRefill[0]!.has(s)).length < 5, 'a refill draws new randomness, not the same pool again');
  assert.ok(newEventId(1_700_000_000_001) > newEventId(1_700_000_000_000), 'a later millisecond sorts after');
});
