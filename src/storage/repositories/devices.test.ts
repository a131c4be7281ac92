/** The upper bound of a prefix search's index range (the ranges themselves run in the storage contract). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { prefixEnd } from './devices.ts';

test('prefixEnd: the prefix with its last code point raised, past the end of the code points', { timeout: 5_000 }, () => {
  assert.equal(prefixEnd('dev-00'), 'dev-01');
  assert.equal(prefixEnd('a'), 'b');
  assert.equal(prefixEnd('Grü'), 'Grý');
  // A character outside the BMP is one code point, not two UTF-16 units.
  assert.equal(prefixEnd('x😀'), 'x😁');
  // The last code point below the surrogates goes to the first one above them.
  assert.equal(prefixEnd('a\uD7FF'), 'a\uE000');
  // U+10FFFF cannot be raised: the one before it is.
  assert.equal(prefixEnd('ab\u{10FFFF}'), 'ac');
  assert.equal(prefixEnd('\u{10FFFF}'), undefined);
  for (const prefix of ['dev-00', 'Grü', 'x😀', 'a~']) {
    const end = prefixEnd(prefix) as string;
    for (const s of [prefix, `${prefix}0`, `${prefix}\u{10FFFE}`, `${prefix}zzzz`]) assert.ok(s >= prefix && s < end, `${s} within [${prefix}, ${end})`);
  }
});
