import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ImportedAuthenticator, type CredentialSource } from './imported-authenticator.ts';
import type { Credential } from '../authenticator.ts';
import { DEFAULT_SCRYPT_COST, hashPassword, verifyPassword } from '../../../registry/passwords.ts';
import type { DeviceCredential } from '../../../registry/types.ts';

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

test('allows the right password and names the device', { timeout: 5_000 }, async () => {
  const { s } = source({ 'meter-1': { deviceName: 'dev-1', password: 'pw' } });
  const auth = new ImportedAuthenticator('pk', s);
  assert.deepEqual(await auth.authenticate(cred('meter-1', 'pw')), { kind: 'allow', deviceName: 'dev-1' });
});

test('[MQTT-3.2.2-?] wrong password, unknown user and missing credentials are 0x86; disabled is 0x87', { timeout: 5_000 }, async () => {
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
  // Missing either part: refused before any lookup or hash.
  const work = { ...calls };
  for (const c of [cred(undefined, 'pw'), cred('meter-1', undefined), cred(undefined, undefined)]) {
    assert.deepEqual(await auth.authenticate(c), { kind: 'deny', reasonCode: 0x86, reason: 'missing_credentials' });
  }
  assert.deepEqual(calls, work);
  assert.equal(await code(cred('off', 'pw')), 0x87);
});

test('reconnects hit the cache: no lookup and no slow hash per CONNECT', { timeout: 5_000 }, async () => {
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

test('a failing lookup is "unavailable", never an allow', { timeout: 5_000 }, async () => {
  const auth = new ImportedAuthenticator('pk', {
    findDeviceCredential: () => Promise.reject(new Error('db down')),
    verifyPassword: () => Promise.resolve(true),
    upgradePasswordHash: () => Promise.resolve(undefined),
  });
  assert.deepEqual(await auth.authenticate(cred('meter-1', 'pw')), { kind: 'unavailable', reason: 'credential lookup failed: db down' });
  const odd = new ImportedAuthenticator('pk', {
    // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- a store rejecting with a non-Error is the case
    findDeviceCredential: () => Promise.reject('timeout'),
    verifyPassword: () => Promise.resolve(true),
    upgradePasswordHash: () => Promise.resolve(undefined),
  });
  assert.deepEqual(await odd.authenticate(cred('meter-1', 'pw')), { kind: 'unavailable', reason: 'credential lookup failed: timeout' });
});

test('a disabled device with a wrong password is refused as any wrong password is, after the same one hash (issue 18)', { timeout: 5_000 }, async () => {
  // Real scrypt hashes, one cost for every row; the source counts the slow checks and the hashes' costs.
  const rows = new Map<string, DeviceCredential>();
  for (const [username, disabled] of [['on-1', false], ['off-1', true]] as const) {
    rows.set(username, { deviceName: username, passwordHash: await hashPassword(`pw-${username}`), disabled });
  }
  const checks: string[] = [];
  const auth = new ImportedAuthenticator('pk', {
    findDeviceCredential: (_pk, username) => Promise.resolve(rows.get(username)),
    verifyPassword: (hash, password) => {
      checks.push(hash === undefined ? 'dummy' : hash.split('$').slice(0, 4).join('$'));
      return verifyPassword(hash, password);
    },
    upgradePasswordHash: () => Promise.resolve(undefined),
  });
  const answer = async (username: string, password: string): Promise<string> => {
    checks.length = 0;
    const d = await auth.authenticate(cred(username, password));
    return `${d.kind === 'deny' ? d.reasonCode : d.kind} after ${checks.join(',')}`;
  };
  const cost = `scrypt$${DEFAULT_SCRYPT_COST.N}$${DEFAULT_SCRYPT_COST.r}$${DEFAULT_SCRYPT_COST.p}`;
  assert.equal(await answer('off-1', 'wrong'), `134 after ${cost}`, 'nothing says the device exists and is disabled');
  assert.equal(await answer('on-1', 'wrong'), `134 after ${cost}`);
  assert.equal(await answer('nobody', 'wrong'), '134 after dummy');
  // Only the right password learns that the device is disabled.
  assert.equal(await answer('off-1', 'pw-off-1'), `135 after ${cost}`);
});

test('a lookup overtaken by an invalidation is not cached: the next CONNECT reads the row as it is now', { timeout: 5_000 }, async () => {
  const rows: Record<string, { deviceName: string; password: string; disabled?: boolean }> = { 'meter-1': { deviceName: 'd', password: 'pw' } };
  const { s, calls } = source(rows);
  // The first read is slow: it answers the row as it was, after the operator disabled the device.
  const find = s.findDeviceCredential.bind(s);
  let release!: () => void;
  const released = new Promise<void>((resolve) => { release = resolve; });
  let slowOnce = true;
  s.findDeviceCredential = (pk, username) => {
    if (!slowOnce) return find(pk, username);
    slowOnce = false;
    const before = find(pk, username);
    return released.then(() => before);
  };
  const auth = new ImportedAuthenticator('pk', s);
  const first = auth.authenticate(cred('meter-1', 'pw'));
  await new Promise((r) => setImmediate(r));
  rows['meter-1'] = { ...rows['meter-1']!, disabled: true };
  auth.invalidate('meter-1');
  release();
  assert.equal((await first).kind, 'allow'); // read before the change: the gateway's state step judges it
  const next = await auth.authenticate(cred('meter-1', 'pw'));
  assert.deepEqual(next.kind === 'deny' ? next.reasonCode : next.kind, 0x87);
  assert.equal(calls.find, 2);
});

/** A source whose hashes are `<tag>:<password>`, counting lookups and slow checks, with upgrades held until released. */
function upgradingSource(rows: Map<string, DeviceCredential>) {
  const calls = { find: 0, verify: 0, upgrades: [] as string[] };
  const pending: ((next: string | undefined) => void)[] = [];
  const s: CredentialSource = {
    findDeviceCredential: (_pk, username) => {
      calls.find++;
      return Promise.resolve(rows.get(username));
    },
    verifyPassword: (hash, password) => {
      calls.verify++;
      return Promise.resolve(hash !== undefined && hash.slice(hash.indexOf(':') + 1) === password.toString());
    },
    upgradePasswordHash: (pk, deviceName, verifiedHash, password) => {
      calls.upgrades.push(`${pk}/${deviceName} ${verifiedHash} ${password.toString()}`);
      // As the registry does: the new hash is stored, then handed back.
      return new Promise((resolve) => pending.push((next) => {
        const username = [...rows].find(([, r]) => r.deviceName === deviceName)?.[0];
        if (next !== undefined && username !== undefined) rows.set(username, { ...rows.get(username)!, passwordHash: next });
        resolve(next);
      }));
    },
  };
  return { s, calls, release: (next: string | undefined) => pending.shift()!(next) };
}

test('a login on an old hash starts one upgrade at a time; the new hash and its digest are remembered, so the next login pays no hash', { timeout: 5_000 }, async (t) => {
  t.mock.timers.enable({ apis: ['Date'], now: 1_000_000 });
  const rows = new Map<string, DeviceCredential>([
    ['meter-1', { deviceName: 'd1', passwordHash: 'old:pw1', disabled: false }],
    ['meter-2', { deviceName: 'd2', passwordHash: 'old:pw2', disabled: false }],
    ['meter-3', { deviceName: 'd3', passwordHash: 'old:pw3', disabled: false }],
  ]);
  const { s, calls, release } = upgradingSource(rows);
  const auth = new ImportedAuthenticator('pk', s);
  assert.deepEqual(await auth.authenticate(cred('meter-1', 'pw1')), { kind: 'allow', deviceName: 'd1' });
  assert.deepEqual(calls.upgrades, ['pk/d1 old:pw1 pw1']);
  // While it runs, another device's login on an old hash leaves its upgrade for later.
  assert.equal((await auth.authenticate(cred('meter-2', 'pw2'))).kind, 'allow');
  assert.equal(calls.upgrades.length, 1);
  release('new:pw1');
  await new Promise((r) => setImmediate(r));
  const before = { find: calls.find, verify: calls.verify };
  assert.deepEqual(await auth.authenticate(cred('meter-1', 'pw1')), { kind: 'allow', deviceName: 'd1' });
  assert.deepEqual({ find: calls.find, verify: calls.verify }, before, 'remembered against the new hash: no lookup, no hash');
  assert.equal(calls.upgrades.length, 1, 'a remembered login starts no upgrade');
  // Read again after the cache's minute: the stored row has the new hash, which the cache already knew.
  t.mock.timers.tick(60_000);
  assert.equal((await auth.authenticate(cred('meter-1', 'pw1'))).kind, 'allow');
  assert.deepEqual({ find: calls.find, verify: calls.verify }, { find: before.find + 1, verify: before.verify }, 'the same hash: still no slow hash');
  // The first upgrade is over: the next login on an old hash starts its own.
  assert.equal((await auth.authenticate(cred('meter-3', 'pw3'))).kind, 'allow');
  assert.deepEqual(calls.upgrades, ['pk/d1 old:pw1 pw1', 'pk/d3 old:pw3 pw3']);
  release(undefined); // nothing to store (the hash was current after all): the cache stays as it was
  await new Promise((r) => setImmediate(r));
  const again = calls.verify;
  assert.equal((await auth.authenticate(cred('meter-3', 'pw3'))).kind, 'allow');
  assert.equal(calls.verify, again);
});

test('a cached row is trusted for cacheTtlMs, then read again; what verified before still counts if the hash is the same', { timeout: 5_000 }, async (t) => {
  t.mock.timers.enable({ apis: ['Date'], now: 1_000_000 });
  const rows = new Map<string, DeviceCredential>([['meter-1', { deviceName: 'd1', passwordHash: 'h:pw', disabled: false }]]);
  const { s, calls } = upgradingSource(rows);
  const auth = new ImportedAuthenticator('pk', s, { cacheTtlMs: 1_000 });
  await auth.authenticate(cred('meter-1', 'pw'));
  assert.deepEqual({ find: calls.find, verify: calls.verify }, { find: 1, verify: 1 });
  t.mock.timers.tick(999);
  await auth.authenticate(cred('meter-1', 'pw'));
  assert.deepEqual({ find: calls.find, verify: calls.verify }, { find: 1, verify: 1 }, 'within the TTL: the cache');
  t.mock.timers.tick(1);
  await auth.authenticate(cred('meter-1', 'pw'));
  assert.deepEqual({ find: calls.find, verify: calls.verify }, { find: 2, verify: 1 }, 'at the TTL: read again, the same hash keeps its digest');
  // The row changed without an event: after the TTL the new hash is what counts.
  rows.set('meter-1', { deviceName: 'd1', passwordHash: 'h:other', disabled: false });
  t.mock.timers.tick(1_000);
  assert.equal((await auth.authenticate(cred('meter-1', 'pw'))).kind, 'deny');
  assert.deepEqual({ find: calls.find, verify: calls.verify }, { find: 3, verify: 2 });
  // The default TTL is one minute.
  const byDefault = new ImportedAuthenticator('pk', s);
  await byDefault.authenticate(cred('meter-1', 'other'));
  t.mock.timers.tick(59_999);
  await byDefault.authenticate(cred('meter-1', 'other'));
  assert.equal(calls.find, 4);
  t.mock.timers.tick(1);
  await byDefault.authenticate(cred('meter-1', 'other'));
  assert.equal(calls.find, 5);
});

test('at most maxCached usernames are kept, the oldest read going first; invalidate(null) drops them all', { timeout: 5_000 }, async () => {
  const rows = new Map<string, DeviceCredential>(['a', 'b', 'c'].map((u) => [`meter-${u}`, { deviceName: u, passwordHash: `h:${u}`, disabled: false }]));
  const { s, calls } = upgradingSource(rows);
  const auth = new ImportedAuthenticator('pk', s, { maxCached: 2 });
  const finds = async (...usernames: string[]): Promise<number> => {
    const before = calls.find;
    for (const u of usernames) assert.equal((await auth.authenticate(cred(`meter-${u}`, u))).kind, 'allow');
    return calls.find - before;
  };
  assert.equal(await finds('a', 'b'), 2);
  assert.equal(await finds('a', 'b'), 0, 'two fit');
  assert.equal(await finds('c'), 1);
  assert.equal(await finds('b', 'c'), 0, 'the third pushed out the first read');
  assert.equal(await finds('a'), 1);
  auth.invalidate('meter-c');
  assert.equal(await finds('b', 'a'), 1, 'only the one named is dropped');
  auth.invalidate(null);
  assert.equal(await finds('a', 'b'), 2, 'both read again');
});

test('a row read again after its TTL counts as the newest read: eviction takes the one read longest ago', { timeout: 5_000 }, async (t) => {
  t.mock.timers.enable({ apis: ['Date'], now: 1_000_000 });
  const rows = new Map<string, DeviceCredential>(['a', 'b', 'c'].map((u) => [`meter-${u}`, { deviceName: u, passwordHash: `h:${u}`, disabled: false }]));
  const { s, calls } = upgradingSource(rows);
  const auth = new ImportedAuthenticator('pk', s, { maxCached: 2, cacheTtlMs: 1_000 });
  await auth.authenticate(cred('meter-a', 'a'));
  t.mock.timers.tick(500);
  await auth.authenticate(cred('meter-b', 'b'));
  t.mock.timers.tick(500);
  await auth.authenticate(cred('meter-a', 'a')); // a's TTL is up: read again, now the newest
  assert.equal(calls.find, 3);
  await auth.authenticate(cred('meter-c', 'c')); // pushes out b, not a
  await auth.authenticate(cred('meter-a', 'a'));
  assert.equal(calls.find, 4);
  await auth.authenticate(cred('meter-b', 'b'));
  assert.equal(calls.find, 5);
});
