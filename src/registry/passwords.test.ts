import assert from 'node:assert/strict';
import { randomBytes, scryptSync } from 'node:crypto';
import { test } from 'node:test';
import { DEFAULT_SCRYPT_COST, dummyHash, hashPassword, needsRehash, verifyPassword } from './passwords.ts';

/** A row made by hand (not by hashPassword) for `password`, with a salt and a key of the given sizes. */
function row(password: string, saltBytes: number, keyBytes: number): string {
  const salt = randomBytes(saltBytes);
  const key = scryptSync(password, salt, keyBytes, { N: 1024, r: 8, p: 1 });
  return `scrypt$1024$8$1$${salt.toString('base64')}$${key.toString('base64')}`;
}

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

test('a hash stores a 16-byte salt and a 32-byte key; rows at the floors (8, 16) verify, one byte under them never do (issue 18)', { timeout: 5_000 }, async () => {
  const parts = (await hashPassword('pw')).split('$');
  assert.equal(Buffer.from(parts[4]!, 'base64').length, 16, 'salt');
  assert.equal(Buffer.from(parts[5]!, 'base64').length, 32, 'key');
  assert.equal(await verifyPassword(row('pw', 8, 16), 'pw'), true, 'the smallest salt and key we accept');
  assert.equal(await verifyPassword(row('pw', 8, 16), 'pv'), false);
  // Even with the right password: a part this short was never written by us.
  assert.equal(await verifyPassword(row('pw', 7, 16), 'pw'), false, 'a 7-byte salt');
  assert.equal(await verifyPassword(row('pw', 8, 15), 'pw'), false, 'a 15-byte key');
});

test('the cost a row may ask for: N a power of two from 2 to 2^20, r 1 to 32, p 1 to 16; ends in, one past out (issue 18)', { timeout: 5_000 }, () => {
  const salt = Buffer.alloc(16, 1).toString('base64');
  const key = Buffer.alloc(32, 2).toString('base64');
  // needsRehash reads a row without hashing: every well-formed row differs from a cost no row can have.
  const wellFormed = (N: number | string, r: number | string, p: number | string, prefix = 'scrypt'): boolean => needsRehash(`${prefix}$${N}$${r}$${p}$${salt}$${key}`, { N: 3, r: 0, p: 0 });
  for (const [N, r, p] of [[2, 8, 1], [2 ** 20, 8, 1], [1024, 1, 1], [1024, 32, 1], [1024, 8, 16]] as const) {
    assert.equal(wellFormed(N, r, p), true, `N=${N} r=${r} p=${p}`);
  }
  for (const [N, r, p] of [[1, 8, 1], [2 ** 21, 8, 1], [3072, 8, 1], [1024, 0, 1], [1024, 33, 1], [1024, 8, 0], [1024, 8, 17], ['x', 8, 1], [1024, 8.5, 1], [1024, 8, 'x']] as const) {
    assert.equal(wellFormed(N, r, p), false, `N=${N} r=${r} p=${p}`);
  }
  assert.equal(wellFormed(1024, 8, 1, 'bcrypt'), false, 'another scheme with scrypt-like parts');
});

test('an unknown user is checked against one dummy per cost, made at that cost, that no password matches', { timeout: 5_000 }, async () => {
  const cost = { N: 1024, r: 8, p: 1 };
  const first = dummyHash(cost);
  assert.equal(dummyHash(cost), first, 'made once, not per CONNECT');
  assert.notEqual(dummyHash({ N: 2048, r: 8, p: 1 }), first);
  assert.match(await first, /^scrypt\$1024\$8\$1\$/);
  assert.equal(await verifyPassword(undefined, 'pw', cost), false);
  assert.equal(await verifyPassword(undefined, '', cost), false);
});
