import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEFAULT_SCRYPT_COST, hashPassword, needsRehash, verifyPassword } from './passwords.ts';

test('hashes are salted, carry their cost, and verify', { timeout: 5_000 }, async () => {
  const a = await hashPassword('pw:1');
  const b = await hashPassword('pw:1');
  assert.notEqual(a, b, 'salted');
  assert.match(a, /^scrypt\$4096\$8\$1\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$/);
  assert.equal(await verifyPassword(a, 'pw:1'), true);
  assert.equal(await verifyPassword(a, 'pw:2'), false);
  assert.equal(await verifyPassword(a, Buffer.from('pw:1')), true);
});

test('a cost stored in the hash is the one used to verify', { timeout: 5_000 }, async () => {
  const cheap = await hashPassword('pw', { N: 1024, r: 8, p: 1 });
  assert.match(cheap, /^scrypt\$1024\$/);
  assert.equal(await verifyPassword(cheap, 'pw'), true);
});

test('malformed or hostile hashes are false, not errors', { timeout: 5_000 }, async () => {
  for (const hash of ['', 'plain', 'scrypt$4096$8$1$$', 'bcrypt$1$2$3$4$5', 'scrypt$3$8$1$c2FsdA==$a2V5', 'scrypt$1073741824$8$1$c2FsdA==$a2V5', 'scrypt$4096$99$1$c2FsdA==$a2V5']) {
    assert.equal(await verifyPassword(hash, 'pw'), false, hash);
  }
});

test('no hash (unknown user) is false after the same work', { timeout: 5_000 }, async () => {
  assert.equal(await verifyPassword(undefined, 'pw'), false);
});

test('a hash with a salt but an empty or short key part is never accepted, whatever the password (issue 18)', { timeout: 5_000 }, async () => {
  // scrypt asked for 0 bytes derives an empty key, and an empty key equals an empty key: without the
  // floor on the key's length this row would accept any password.
  const salt = Buffer.from('sixteen byte sal').toString('base64');
  for (const hash of ['scrypt$4096$8$1$c2FsdA==$', `scrypt$4096$8$1$${salt}$`, `scrypt$4096$8$1$${salt}$AA==`, `scrypt$4096$8$1$${salt}$${Buffer.alloc(15).toString('base64')}`]) {
    for (const password of ['', 'pw', 'anything at all', Buffer.alloc(0)]) {
      assert.equal(await verifyPassword(hash, password), false, `${hash} with ${JSON.stringify(password.toString())}`);
    }
  }
});

test('needsRehash: a well-formed hash at another cost does; the current cost, and malformed rows, do not', { timeout: 5_000 }, async () => {
  const current = await hashPassword('pw');
  assert.equal(needsRehash(current, DEFAULT_SCRYPT_COST), false);
  assert.equal(needsRehash(await hashPassword('pw', { N: 1024, r: 8, p: 1 }), DEFAULT_SCRYPT_COST), true);
  assert.equal(needsRehash(current, { ...DEFAULT_SCRYPT_COST, N: DEFAULT_SCRYPT_COST.N * 2 }), true);
  assert.equal(needsRehash(current, { ...DEFAULT_SCRYPT_COST, r: 16 }), true);
  assert.equal(needsRehash('scrypt$4096$8$1$c2FsdA==$', { N: 1024, r: 8, p: 1 }), false, 'a damaged row is not rewritten from a password');
});
