/**
 * Issue 17: `gatehouse backup` of a running instance (dist/main.mjs, devices connected and
 * publishing QoS 1 while the backup runs), `gatehouse restore` into a new directory, and the restored
 * installation starting with its gateway, devices, stored messages and private key (the gateway is
 * RUNNING and a device connects over TLS). `gatehouse doctor` on both, and the refusals: a restore
 * over a running instance or a non-empty directory, and an archive carrying a path outside it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import mqtt from 'mqtt';
import { getPki } from '../harness/pki.ts';
import { freePort, removeDataDir } from '../harness/gatehouse.ts';
import { startGatehouseProcess, type GatehouseProcess } from '../harness/gatehouse-process.ts';
import { writeTar } from '../../src/cli/tar.ts';
import type { GatewayJson, MessageJson } from './platform-support.ts';

const run = promisify(execFile);

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, ['bin/gatehouse.mjs', ...args]);
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

test('backup of a running instance with devices publishing, restore into a new directory, and the restored installation runs', { timeout: 300_000 }, async (t) => {
  const pki = await getPki();
  const work = await mkdtemp(path.join(os.tmpdir(), 'gh-backup-'));
  const dir = path.join(work, 'data');
  const restored = path.join(work, 'restored');
  const archive = path.join(work, 'gatehouse.backup.tar');
  const procs: GatehouseProcess[] = [];
  const clients: mqtt.MqttClient[] = [];
  t.after(async () => {
    for (const c of clients) c.end(true);
    for (const p of procs) await p.stop();
    await removeDataDir(work);
  });

  const gh = await startGatehouseProcess(dir);
  procs.push(gh);
  const port = await freePort();
  const created = await gh.api<GatewayJson>('POST', '/gateways', {
    name: 'backed_up', port, authType: 'ONE_PARTY',
    certificates: { serverCertificateChain: pki.server.chainPem, serverPrivateKey: pki.server.keyPem },
  });
  assert.equal(created.status, 201, JSON.stringify(created.json));
  const gw = created.json;
  assert.equal((await gh.api('POST', `/products/${gw.productKey}/devices`, { username: 'meter-1', password: 'pw-meter-1' })).status, 201);
  const connect = (): Promise<mqtt.MqttClient> => new Promise((resolve, reject) => {
    const c = mqtt.connect({
      host: '127.0.0.1', port, protocol: 'mqtts', ca: pki.root.certPem, servername: 'localhost', reconnectPeriod: 0,
      connectTimeout: 5000, clientId: 'c-meter-1', username: 'meter-1', password: 'pw-meter-1',
    });
    clients.push(c);
    c.once('connect', () => resolve(c));
    c.once('error', reject);
  });
  const device = await connect();
  const publish = (payload: string): Promise<void> => new Promise((resolve, reject) => {
    device.publish('meters/1', payload, { qos: 1 }, (err) => (err ? reject(err) : resolve()));
  });
  for (let i = 0; i < 20; i++) await publish(`before-${i}`);
  assert.equal((await gh.api<{ items: unknown[] }>('GET', `/messages?gatewayId=${gw.id}&limit=100`)).json.items.length, 20);

  // The device keeps publishing while the backup runs.
  let publishing = true;
  let during = 0;
  const load = (async () => {
    // Bounded below the store's 100 messages per device, so the pre-backup ones are not pruned.
    while (publishing && during < 60) await publish(`during-${during++}`);
  })();
  const backup = await cli(['backup', archive, '--data-dir', dir]);
  publishing = false;
  await load;
  assert.equal(backup.code, 0, backup.stderr);
  assert.match(backup.stdout, /identity\.json, gatehouse\.db, mqtt-state\.db, uplink-journal\.db, master\.key\n/); // the token came from the environment
  assert.equal((await stat(archive)).mode & 0o777, 0o600);
  assert.ok(during > 0);

  // Refused: restoring over the running instance's directory, even with --replace.
  const over = await cli(['restore', archive, '--data-dir', dir, '--replace']);
  assert.equal(over.code, 1);
  assert.match(over.stderr, /GW_ERR_RESTORE_REFUSED: a Gatehouse \(pid \d+\) is running/);

  const restore = await cli(['restore', archive, '--data-dir', restored]);
  assert.equal(restore.code, 0, restore.stderr);
  assert.equal((await stat(restored)).mode & 0o777, 0o700);
  for (const f of await readdir(restored)) assert.equal((await stat(path.join(restored, f))).mode & 0o777, 0o600, f);
  const doctor = await cli(['doctor', '--data-dir', restored]);
  assert.equal(doctor.code, 0, doctor.stdout + doctor.stderr);
  assert.match(doctor.stdout, /gatehouse\.db: integrity check passed/);
  assert.match(doctor.stdout, /master key is well-formed and matches gatehouse\.db/);

  // Not a non-empty directory without --replace.
  const again = await cli(['restore', archive, '--data-dir', restored]);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /GW_ERR_RESTORE_REFUSED: .* is not empty/);

  await gh.stop();
  device.end(true);
  const back = await startGatehouseProcess(restored);
  procs.push(back);
  const gateway = await back.api<GatewayJson>('GET', `/gateways/${gw.id}`);
  assert.equal(gateway.json.status, 'RUNNING', JSON.stringify(gateway.json));
  const messages = await back.api<{ items: MessageJson[] }>('GET', `/messages?gatewayId=${gw.id}&limit=1000`);
  const payloads = new Set(messages.json.items.map((m) => Buffer.from(m.payload, 'base64').toString()));
  for (let i = 0; i < 20; i++) assert.ok(payloads.has(`before-${i}`), `before-${i} missing after restore`);
  const reconnected = await connect(); // the restored private key serves TLS; the device's password hash verifies
  reconnected.end(true);
});

test('restore refuses an archive with a name outside the known files, and doctor reports a damaged database and loose permissions', { timeout: 90_000 }, async (t) => {
  const work = await mkdtemp(path.join(os.tmpdir(), 'gh-backup-'));
  t.after(() => removeDataDir(work));
  const evilSource = path.join(work, 'x');
  await writeFile(evilSource, 'owned');
  const evil = path.join(work, 'evil.tar');
  await writeTar(evil, [{ name: '../escaped', path: evilSource }, { name: 'identity.json', path: evilSource }]);
  const r = await cli(['restore', evil, '--data-dir', path.join(work, 'target')]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /GW_ERR_RESTORE_REFUSED: .*"\.\.\/escaped"/);
  assert.deepEqual((await readdir(work)).sort(), ['evil.tar', 'x']);

  const dir = path.join(work, 'data');
  const gh = await startGatehouseProcess(dir);
  await gh.stop();
  await writeFile(path.join(dir, 'mqtt-state.db'), Buffer.alloc(8192, 0x41), { mode: 0o644 });
  const { chmod } = await import('node:fs/promises');
  await chmod(path.join(dir, 'mqtt-state.db'), 0o644);
  await writeFile(path.join(dir, 'notes.txt'), 'stray', { mode: 0o600 });
  const doctor = await cli(['doctor', '--data-dir', dir]);
  assert.equal(doctor.code, 1);
  assert.match(doctor.stdout, /PROBLEM {2}.*mqtt-state\.db is damaged or unreadable/);
  assert.match(doctor.stdout, /PROBLEM {2}.*mqtt-state\.db is mode 644/);
  assert.match(doctor.stdout, /warning {2}.*notes\.txt is not a file Gatehouse uses/);
  assert.match(doctor.stdout, /ok {7}.*gatehouse\.db: integrity check passed/);
});
