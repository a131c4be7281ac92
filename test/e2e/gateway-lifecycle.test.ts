/**
 * Issue 3 end to end through real parts: a gateway created over HTTP with generated certificates,
 * devices imported from CSV, real TLS clients (MQTT.js, mosquitto_pub/sub) with right and wrong
 * credentials, device state in the API, certificate rotation and port moves with a client connected,
 * operator disable, separate topic spaces, and a restart that keeps retained messages and sessions.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import tls from 'node:tls';
import { promisify } from 'node:util';
import mqtt from 'mqtt';
import { getPki, type SharedPki } from '../harness/pki.ts';
import { freePort, removeDataDir, startTestGatehouse, type TestGatehouse } from '../harness/gatehouse.ts';
import { connackOf } from '../harness/mqtt-connack.ts';

const run = promisify(execFile);

interface GatewayJson { id: string; name: string; port: number; url: string; status: string; statusReason: string | null; productKey: string }
interface DeviceJson { deviceName: string; status: string; clientAddress: string | null; lastOnlineAt: string | null }

let pki: SharedPki;
let gh: TestGatehouse;
let gateway: GatewayJson;
const clients: mqtt.MqttClient[] = [];

function connect(port: number, options: mqtt.IClientOptions): Promise<mqtt.MqttClient> {
  const client = mqtt.connect({
    host: '127.0.0.1', port, protocol: 'mqtts', ca: pki.root.certPem, servername: 'localhost', reconnectPeriod: 0, connectTimeout: 5000, ...options,
  });
  clients.push(client);
  return connackOf(client).then(() => client);
}

async function connectError(port: number, options: mqtt.IClientOptions): Promise<{ code?: number }> {
  try {
    await connect(port, options);
  } catch (err) {
    return err as { code?: number };
  }
  throw new Error('connection was accepted');
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, ms = 5000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

function serverSerialAt(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ca: pki.root.certPem, servername: 'localhost' }, () => {
      const serial = new X509Certificate(socket.getPeerCertificate().raw).serialNumber;
      socket.destroy();
      resolve(serial);
    });
    socket.once('error', reject);
  });
}

before(async () => {
  pki = await getPki();
  gh = await startTestGatehouse();
  const port = await freePort();
  const created = await gh.api<GatewayJson>('POST', '/gateways', {
    name: 'legacy_fleet',
    port,
    authType: 'ONE_PARTY',
    certificates: { serverCertificateChain: pki.server.chainPem, serverPrivateKey: pki.server.keyPem },
  });
  assert.equal(created.status, 201, JSON.stringify(created.json));
  gateway = created.json;
  assert.equal(gateway.url, `mqtts://localhost:${port}`);
  const csv = 'sn,username,password\nSN-1,meter-0001,pw-one\nSN-2,meter-0002,pw-two\nSN-3,x,short-user\n';
  const imported = await gh.api<{ created: number; failed: number }>('POST', `/products/${gateway.productKey}/devices/import`, csv, 'text/csv');
  assert.equal(imported.status, 200, JSON.stringify(imported.json));
  assert.equal(imported.json.created, 2);
  assert.equal(imported.json.failed, 1);
}, { timeout: 60_000 });

after(async () => {
  for (const c of clients) c.end(true);
  await gh.stop();
  await removeDataDir(gh.dataDir);
}, { timeout: 30_000 });

test('the created gateway is RUNNING on its own TLS port with the uploaded chain', { timeout: 60_000 }, async () => {
  const got = await gh.api<GatewayJson>('GET', `/gateways/${gateway.id}`);
  assert.equal(got.json.status, 'RUNNING');
  assert.equal(await serverSerialAt(gateway.port), pki.server.serial);
});

test('imported devices connect over TLS with MQTT.js (v3.1.1 and v5) and show ONLINE in the API', { timeout: 10_000 }, async () => {
  const c5 = await connect(gateway.port, { protocolVersion: 5, clientId: 'm1', username: 'meter-0001', password: 'pw-one' });
  const device = await waitFor('device online', async () => {
    const r = await gh.api<DeviceJson>('GET', `/products/${gateway.productKey}/devices/meter-0001`);
    return r.json.status === 'ONLINE' ? r.json : undefined;
  });
  assert.equal(device.clientAddress, '127.0.0.1');
  assert.ok(device.lastOnlineAt);
  const c3 = await connect(gateway.port, { protocolVersion: 4, clientId: 'm2', username: 'meter-0002', password: 'pw-two' });
  await c3.endAsync();
  await c5.endAsync();
  await waitFor('device offline', async () => {
    const r = await gh.api<DeviceJson>('GET', `/products/${gateway.productKey}/devices/meter-0001`);
    return r.json.status === 'OFFLINE' ? true : undefined;
  });
});

test('[MQTT-3.2.2-?] a wrong password or unknown username gets CONNACK 0x86 (v5) / 4 (v3.1.1)', { timeout: 5_000 }, async () => {
  assert.equal((await connectError(gateway.port, { protocolVersion: 5, username: 'meter-0001', password: 'nope' })).code, 0x86);
  assert.equal((await connectError(gateway.port, { protocolVersion: 5, username: 'ghost-user', password: 'pw-one' })).code, 0x86);
  assert.equal((await connectError(gateway.port, { protocolVersion: 4, username: 'meter-0001', password: 'nope' })).code, 4);
});

test('mosquitto_pub and mosquitto_sub pass messages through the gateway over TLS', { timeout: 15_000 }, async () => {
  const common = ['-h', 'localhost', '-p', String(gateway.port), '--cafile', pki.root.certPath];
  const sub = run('mosquitto_sub', [...common, '-u', 'meter-0002', '-P', 'pw-two', '-t', 'meters/#', '-C', '1', '-W', '8', '-v', '-q', '1', '-i', 'sub-cli']);
  await waitFor('subscriber online', async () => {
    const r = await gh.api<DeviceJson>('GET', `/products/${gateway.productKey}/devices/meter-0002`);
    return r.json.status === 'ONLINE' ? true : undefined;
  });
  await new Promise((r) => setTimeout(r, 200)); // the SUBSCRIBE follows the CONNACK
  await run('mosquitto_pub', [...common, '-u', 'meter-0001', '-P', 'pw-one', '-t', 'meters/1/kwh', '-m', '42.5', '-q', '1', '-V', 'mqttv5']);
  const { stdout } = await sub;
  assert.equal(stdout.trim(), 'meters/1/kwh 42.5');
  await assert.rejects(run('mosquitto_pub', [...common, '-u', 'meter-0001', '-P', 'bad', '-t', 'x', '-m', 'y']));
});

test('a new certificate swaps in while a connected device stays connected', { timeout: 15_000 }, async () => {
  const stay = await connect(gateway.port, { protocolVersion: 5, clientId: 'stayer', username: 'meter-0001', password: 'pw-one' });
  const patched = await gh.api('PATCH', `/gateways/${gateway.id}`, {
    certificates: { serverCertificateChain: pki.serverRotated.chainPem, serverPrivateKey: pki.serverRotated.keyPem },
  });
  assert.equal(patched.status, 200, JSON.stringify(patched.json));
  await waitFor('new certificate served', async () => ((await serverSerialAt(gateway.port)) === pki.serverRotated.serial ? true : undefined));
  // The old connection still works end to end.
  const got = new Promise<string>((resolve) => stay.on('message', (_t, p) => resolve(p.toString())));
  await stay.subscribeAsync('rotation/check');
  await stay.publishAsync('rotation/check', 'still here', { qos: 1 });
  assert.equal(await got, 'still here');
  assert.equal(stay.connected, true);
  await stay.endAsync();
});

test('a new port moves the listener; a connected device stays on its socket', { timeout: 15_000 }, async () => {
  const stay = await connect(gateway.port, { protocolVersion: 4, clientId: 'mover', username: 'meter-0002', password: 'pw-two' });
  const oldPort = gateway.port;
  const newPort = await freePort();
  const patched = await gh.api<GatewayJson>('PATCH', `/gateways/${gateway.id}`, { port: newPort });
  assert.equal(patched.status, 200, JSON.stringify(patched.json));
  const next = patched.json;
  assert.equal(next.url, `mqtts://localhost:${newPort}`);
  const fresh = await waitFor('listener on the new port', async () => {
    try {
      return await connect(newPort, { protocolVersion: 5, username: 'meter-0001', password: 'pw-one' });
    } catch {
      return undefined;
    }
  });
  await fresh.endAsync();
  await assert.rejects(connect(oldPort, { protocolVersion: 5, username: 'meter-0001', password: 'pw-one' }));
  await stay.publishAsync('moved', 'ok', { qos: 1 });
  assert.equal(stay.connected, true);
  await stay.endAsync();
  gateway = next;
});

test('disabling a device disconnects it (0x98) and refuses it afterwards (0x87)', { timeout: 15_000 }, async () => {
  const victim = await connect(gateway.port, { protocolVersion: 5, clientId: 'victim', username: 'meter-0002', password: 'pw-two' });
  const kicked = new Promise<number | undefined>((resolve) => victim.once('disconnect', (p) => resolve(p.reasonCode)));
  const r = await gh.api('PATCH', `/products/${gateway.productKey}/devices/meter-0002`, { disabled: true });
  assert.equal(r.status, 200, JSON.stringify(r.json));
  assert.equal(await kicked, 0x98);
  assert.equal((await connectError(gateway.port, { protocolVersion: 5, username: 'meter-0002', password: 'pw-two' })).code, 0x87);
  await gh.api('PATCH', `/products/${gateway.productKey}/devices/meter-0002`, { disabled: false });
});

test('each gateway is its own topic space', { timeout: 15_000 }, async () => {
  const port = await freePort();
  const other = await gh.api<GatewayJson>('POST', '/gateways', {
    name: 'other_fleet', port, certificates: { serverCertificateChain: pki.server.chainPem, serverPrivateKey: pki.server.keyPem },
  });
  assert.equal(other.status, 201, JSON.stringify(other.json));
  const og = other.json;
  await gh.api('POST', `/products/${og.productKey}/devices`, { username: 'meter-0001', password: 'other-pw' });
  const spy = await connect(og.port, { protocolVersion: 5, username: 'meter-0001', password: 'other-pw' });
  const leaked: string[] = [];
  spy.on('message', (t) => leaked.push(t));
  await spy.subscribeAsync('#');
  const own = await connect(gateway.port, { protocolVersion: 5, username: 'meter-0001', password: 'pw-one' });
  await own.publishAsync('meters/secret', 'x', { qos: 1 });
  await spy.publishAsync('ping/self', 'x', { qos: 1 });
  await waitFor('own message on the other gateway', () => (leaked.includes('ping/self') ? true : undefined));
  assert.deepEqual(leaked, ['ping/self']);
  await Promise.all([spy.endAsync(), own.endAsync()]);
  assert.equal((await gh.api('DELETE', `/gateways/${og.id}`)).status, 204);
  await assert.rejects(connect(og.port, { protocolVersion: 5, username: 'meter-0001', password: 'other-pw' }));
});

test('a restart keeps retained messages and persistent sessions with their queued messages', { timeout: 20_000 }, async () => {
  const keeper = await connect(gateway.port, {
    protocolVersion: 5, clientId: 'keeper', clean: false, properties: { sessionExpiryInterval: 3600 }, username: 'meter-0002', password: 'pw-two',
  });
  await keeper.subscribeAsync('orders/#', { qos: 1 });
  await keeper.endAsync();
  const pub = await connect(gateway.port, { protocolVersion: 4, username: 'meter-0001', password: 'pw-one' });
  await pub.publishAsync('orders/1', 'queued-while-offline', { qos: 1 });
  await pub.publishAsync('config/version', 'v9', { qos: 1, retain: true });
  await pub.endAsync();

  await gh.stop();
  const dataDir = gh.dataDir;
  gh = await startTestGatehouse({ dataDir });
  const status = await waitFor('gateway running again', async () => {
    const r = await gh.api<GatewayJson>('GET', `/gateways/${gateway.id}`);
    return r.json.status === 'RUNNING' ? r.json.status : undefined;
  });
  assert.equal(status, 'RUNNING');

  const got: string[] = [];
  const back = mqtt.connect({
    host: '127.0.0.1', port: gateway.port, protocol: 'mqtts', ca: pki.root.certPem, servername: 'localhost', reconnectPeriod: 0,
    protocolVersion: 5, clientId: 'keeper', clean: false, properties: { sessionExpiryInterval: 3600 }, username: 'meter-0002', password: 'pw-two',
  });
  clients.push(back);
  back.on('message', (t, p) => got.push(`${t}=${p.toString()}`));
  const connack = await connackOf(back);
  assert.equal(connack.sessionPresent, true);
  await waitFor('queued message', () => (got.length > 0 ? true : undefined));
  assert.deepEqual(got, ['orders/1=queued-while-offline']);

  const fresh = await connect(gateway.port, { protocolVersion: 4, username: 'meter-0001', password: 'pw-one' });
  const retained = new Promise<string>((resolve) => fresh.on('message', (_t, p, packet) => packet.retain && resolve(p.toString())));
  await fresh.subscribeAsync('config/version');
  assert.equal(await retained, 'v9');
  await Promise.all([back.endAsync(), fresh.endAsync()]);
});
