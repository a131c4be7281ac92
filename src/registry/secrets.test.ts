import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GatehouseError } from '../core/errors.ts';
import { SecretBox } from './secrets.ts';

const box = new SecretBox(Buffer.alloc(32, 1));

test('round trip; fresh IV every time; no plaintext in the sealed form', { timeout: 5_000 }, () => {
  const a = box.encrypt('-----BEGIN PRIVATE KEY-----', 'gateway:g1:serverPrivateKey');
  const b = box.encrypt('-----BEGIN PRIVATE KEY-----', 'gateway:g1:serverPrivateKey');
  assert.notEqual(a, b);
  assert.match(a, /^v1:[^:]+:[^:]+:[^:]+$/);
  assert.ok(!a.includes('PRIVATE'));
  assert.equal(box.decrypt(a, 'gateway:g1:serverPrivateKey'), '-----BEGIN PRIVATE KEY-----');
});

test('another context, another key or a tampered ciphertext does not decrypt', { timeout: 5_000 }, () => {
  const sealed = box.encrypt('secret', 'gateway:g1:serverPrivateKey');
  const fails = (fn: () => unknown) => assert.throws(fn, (e: unknown) => e instanceof GatehouseError && e.code === 'GW_ERR_INTERNAL');
  fails(() => box.decrypt(sealed, 'gateway:g2:serverPrivateKey'));
  fails(() => new SecretBox(Buffer.alloc(32, 2)).decrypt(sealed, 'gateway:g1:serverPrivateKey'));
  const parts = sealed.split(':');
  const ciphertext = Buffer.from(parts[3] ?? '', 'base64');
  ciphertext[0] = (ciphertext[0] ?? 0) ^ 1;
  fails(() => box.decrypt([parts[0], parts[1], parts[2], ciphertext.toString('base64')].join(':'), 'gateway:g1:serverPrivateKey'));
  fails(() => box.decrypt('v0:x', 'c'));
});

test('the key check identifies the key without revealing it', { timeout: 5_000 }, () => {
  assert.equal(box.keyCheck(), new SecretBox(Buffer.alloc(32, 1)).keyCheck());
  assert.notEqual(box.keyCheck(), new SecretBox(Buffer.alloc(32, 2)).keyCheck());
  assert.ok(!box.keyCheck().includes(Buffer.alloc(32, 1).toString('hex')));
  assert.throws(() => new SecretBox(Buffer.alloc(16)), (e: unknown) => e instanceof GatehouseError && e.code === 'GW_ERR_CONFIG_INVALID');
});
