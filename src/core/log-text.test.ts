import { test } from 'node:test';
import assert from 'node:assert/strict';
import { logText } from './log-text.ts';

test('device-supplied text in logs is bounded, escaped and never carries the password', { timeout: 5_000 }, () => {
  assert.equal(logText(undefined), undefined);
  assert.equal(logText('short'), 'short');
  const long = logText('x'.repeat(1_000_000));
  assert.ok(long !== undefined && long.length < 240, `bounded: ${long?.length}`);
  assert.match(long, /1000000 chars/);
  assert.equal(logText('rejected: hunter2 is wrong', { secret: Buffer.from('hunter2') }), 'rejected: [password] is wrong');
  // The password cut in half by the length bound does not leak either.
  const cut = logText(`${'a'.repeat(190)}hunter2hunter2`, { secret: 'hunter2' });
  assert.ok(!cut!.includes('hunter'), cut);
  assert.equal(logText('a\nb\u0000'), 'a\\x0ab\\x00');
});
