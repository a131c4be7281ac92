import assert from 'node:assert/strict';
import { test } from 'node:test';
import { chunksByRowsAndBytes } from './chunks.ts';

test('runs stay within the rows and the bytes; an item larger than the bytes goes alone; order is kept', { timeout: 5_000 }, () => {
  const sizes = [3, 3, 3, 20, 1, 1, 1, 1, 1];
  const chunks = chunksByRowsAndBytes(sizes.map((size, i) => ({ i, size })), 4, 7, (x) => x.size);
  assert.deepEqual(chunks.map((c) => c.map((x) => x.i)), [[0, 1], [2], [3], [4, 5, 6, 7], [8]]);
  assert.deepEqual(chunksByRowsAndBytes([], 4, 7, () => 1), []);
});
