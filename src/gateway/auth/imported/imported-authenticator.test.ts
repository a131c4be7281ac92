import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ImportedAuthenticator, type CredentialSource } from './imported-authenticator.ts';
import type { Credential } from '../authenticator.ts';

function source(rows: Record<string, { deviceName: string; password: string; disabled?: boolean }>) {
  const calls = { find: 0, verify: 0 };
  const s: CredentialSource = {
    findDeviceCredential(_pk, username) {
      calls.find++;
      const r = rows[username];
      return Promise.resolve(r === undefined ? undefined : { deviceName: r.deviceName, passwordHash: `hash:${r.password}`, disabled: r.disabled ?? false });
    },
    verifyPassword(hash, password) {
      calls.verify++;
      return Promise.resolve(hash !== undefined && hash === `hash:${password.toString()}`);
    },
    upgradePasswordHash: () => Promise.resolve(undefined),
  };
  return { s, calls };
}

const cred = (username: string | undefined, password: string | undefined): Credential => ({
  clientId: 'c', username, password: password === undefined ? undefined : Buffer.from(password), protocolVersion: 5,
  remoteAddress: '127.0.0.1', userProperties: undefined, socket: undefined,
});

test('allows the right password and names the device', async () => {
  const { s } = source({ 'meter-1': { deviceName: 'dev-1', password: 'pw' } });
  const auth = new ImportedAuthenticator('pk', s);
  assert.deepEqual(await auth.authenticate(cred('meter-1', 'pw')), { kind: 'allow', deviceName: 'dev-1' });
});

test('[MQTT-3.2.2-?] wrong password, unknown user and missing credentials are 0x86; disabled is 0x87', async () => {
  const { s, calls } = source({ 'meter-1': { deviceName: 'd', password: 'pw' }, off: { deviceName: 'o', password: 'pw', disabled: true } });
  const auth = new ImportedAuthenticator('pk', s);
  const code = async (c: Credential) => {
    const d = await auth.authenticate(c);
    return d.kind === 'deny' ? d.reasonCode : d.kind;
  };
  assert.equal(await code(cred('meter-1', 'bad')), 0x86);
  const before = calls.verify;
  assert.equal(await code(cred('ghost', 'pw')), 0x86);
  assert.equal(calls.verify, before + 1, 'an unknown user still pays for one hash check');
  assert.equal(await code(cred(undefined, undefined)), 0x86);
  assert.equal(await code(cred('off', 'pw')), 0x87);
});

test('reconnects hit the cache: no lookup and no slow hash per CONNECT', async () => {
  const { s, calls } = source({ 'meter-1': { deviceName: 'd', password: 'pw' } });
  const auth = new ImportedAuthenticator('pk', s);
  for (let i = 0; i < 5; i++) assert.equal((await auth.authenticate(cred('meter-1', 'pw'))).kind, 'allow');
  assert.deepEqual(calls, { find: 1, verify: 1 });
  // A different password is checked for real (and refused), not answered from the cache.
  assert.equal((await auth.authenticate(cred('meter-1', 'other'))).kind, 'deny');
  assert.equal(calls.verify, 2);
  auth.invalidate('meter-1');
  await auth.authenticate(cred('meter-1', 'pw'));
  assert.equal(calls.find, 2);
});

test('a failing lookup is "unavailable", never an allow', async () => {
  const auth = new ImportedAuthenticator('pk', {
    findDeviceCredential: () => Promise.reject(new Error('db down')),
    verifyPassword: () => Promise.resolve(true),
    upgradePasswordHash: () => Promise.resolve(undefined),
  });
  assert.equal((await auth.authenticate(cred('meter-1', 'pw'))).kind, 'unavailable');
});
