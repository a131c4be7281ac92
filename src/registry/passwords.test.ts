import assert from 'node:assert/strict';
import { test } from 'node:test';
import { hashPassword, verifyPassword } from './passwords.ts';

test('hashes are salted, carry their cost, and verify', async () => {
  const a = await hashPassword('pw:1');
  const b = await hashPassword('pw:1');
  assert.notEqual(a, b, 'salted');
  assert.match(a, /^scrypt\$4096\$8\$1\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$/);
  assert.equal(await verifyPassword(a, 'pw:1'), true);
  assert.equal(await verifyPassword(a, 'pw:2'), false);
  assert.equal(await verifyPassword(a, Buffer.from('pw:1')), true);
});

test('a cost stored in the hash is the one used to verify', async () => {
  const cheap = await hashPassword('pw', { N: 1024, r: 8, p: 1 });
  assert.match(cheap, /^scrypt\$1024\$/);
  assert.equal(await verifyPassword(cheap, 'pw'), true);
});

test('malformed or hostile hashes are false, not errors', async () => {
  for (const hash of ['', 'plain', 'scrypt$4096$8$1$$', 'bcrypt$1$2$3$4$5', 'scrypt$3$8$1$c2FsdA==$a2V5', 'scrypt$1073741824$8$1$c2FsdA==$a2V5', 'scrypt$4096$99$1$c2FsdA==$a2V5']) {
    assert.equal(await verifyPassword(hash, 'pw'), false, hash);
  }
});

test('no hash (unknown user) is false after the same work', async () => {
  assert.equal(await verifyPassword(undefined, 'pw'), false);
});
