/**
 * Issue 13: sessions belong to devices. Another device presenting a client id whose session belongs to
 * someone else is refused (v5 CONNACK 0x85, v3.1.1 return code 2) and never sees that session's queued
 * messages; the device that owns the session resumes it and keeps takeover semantics.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import mqtt from 'mqtt';
import { getPki, type SharedPki } from '../harness/pki.ts';
import { freePort, removeDataDir, startTestGatehouse, type TestGatehouse } from '../harness/gatehouse.ts';
import { connackOf } from '../harness/mqtt-connack.ts';

const run = promisify(execFile);

interface GatewayJson { id: string; port: number; productKey: string }

let pki: SharedPki;
let gh: TestGatehouse;
let gateway: GatewayJson;
const clients: mqtt.MqttClient[] = [];

function open(options: mqtt.IClientOptions): { client: mqtt.MqttClient; connack: Promise<mqtt.IConnackPacket> } {
  const client = mqtt.connect({
    host: '127.0.0.1', port: gateway.port, protocol: 'mqtts', ca: pki.root.certPem, servername: 'localhost',
    reconnectPeriod: 0, connectTimeout: 5000, protocolVersion: 5, ...options,
  });
  clients.push(client);
  const connack = connackOf(client);
  return { client, connack };
}

before(async () => {
  pki = await getPki();
  gh = await startTestGatehouse();
  const created = await gh.api<GatewayJson>('POST', '/gateways', {
    name: 'owned_sessions', port: await freePort(),
    certificates: { serverCertificateChain: pki.server.chainPem, serverPrivateKey: pki.server.keyPem },
  });
  assert.equal(created.status, 201, JSON.stringify(created.json));
  gateway = created.json;
  const csv = 'sn,username,password\nA,dev-a001,pw-a\nB,dev-b001,pw-b\nC,dev-c001,pw-c\n';
  assert.equal((await gh.api<{ created: number }>('POST', `/products/${gateway.productKey}/devices/import`, csv, 'text/csv')).json.created, 3);
}, { timeout: 60_000 });

after(async () => {
  for (const c of clients) c.end(true);
  await gh.stop();
  await removeDataDir(gh.dataDir);
}, { timeout: 30_000 });

test('[MQTT-3.1.4-3] another device cannot resume or take over a session by presenting its client id', { timeout: 60_000 }, async () => {
  const persistent = { clean: false, properties: { sessionExpiryInterval: 600 } };
  // devB subscribes with a persistent session and goes away.
  const b = open({ clientId: 'devB-client', username: 'dev-b001', password: 'pw-b', ...persistent });
  await b.connack;
  await b.client.subscribeAsync('cmd/devB0001', { qos: 1 });
  await b.client.endAsync();
  // A command is queued for it at QoS 1.
  const c = open({ clientId: 'devC', username: 'dev-c001', password: 'pw-c' });
  await c.connack;
  await c.client.publishAsync('cmd/devB0001', 'open-the-valve', { qos: 1 });

  // devA, with its own valid credentials, presents devB's client id: refused, nothing delivered.
  const a = open({ clientId: 'devB-client', username: 'dev-a001', password: 'pw-a', ...persistent });
  const got: string[] = [];
  a.client.on('message', (topic, payload) => got.push(`${topic} ${payload.toString()}`));
  await assert.rejects(a.connack, (err: { code?: number }) => err.code === 0x85);
  // Clean start does not help either: it would wipe devB's session.
  const a2 = open({ clientId: 'devB-client', username: 'dev-a001', password: 'pw-a', clean: true });
  await assert.rejects(a2.connack, (err: { code?: number }) => err.code === 0x85);
  // v3.1.1 (mosquitto_sub, clean session off): CONNACK return code 2, identifier rejected.
  const v3 = await run('mosquitto_sub', ['-h', 'localhost', '-p', String(gateway.port), '--cafile', pki.root.certPath, '-V', 'mqttv311',
    '-u', 'dev-a001', '-P', 'pw-a', '-i', 'devB-client', '-c', '-q', '1', '-t', 'cmd/devB0001', '-C', '1', '-W', '5'])
    .then((r) => ({ ...r, code: 0 }), (err: { stdout: string; stderr: string; code: number }) => err);
  assert.notEqual(v3.code, 0);
  assert.match(v3.stderr, /identifier rejected/i, JSON.stringify(v3));
  assert.equal(v3.stdout, '');

  // devB comes back: its session is there with the command.
  const b2 = open({ clientId: 'devB-client', username: 'dev-b001', password: 'pw-b', ...persistent });
  const bGot = new Promise<string>((resolve) => b2.client.once('message', (topic, payload) => resolve(`${topic} ${payload.toString()}`)));
  assert.equal((await b2.connack).sessionPresent, true);
  assert.equal(await bGot, 'cmd/devB0001 open-the-valve');
  assert.deepEqual(got, []);

  // The same device reconnecting still takes its session over (the old connection hears 0x8E).
  const kicked = new Promise<number | undefined>((resolve) => b2.client.once('disconnect', (p) => resolve(p.reasonCode)));
  const b3 = open({ clientId: 'devB-client', username: 'dev-b001', password: 'pw-b', ...persistent });
  assert.equal((await b3.connack).sessionPresent, true);
  assert.equal(await kicked, 0x8e);
  await b3.client.endAsync();
  await c.client.endAsync();
});

test('the owner is stored with the session: after a restart another device is still refused', { timeout: 20_000 }, async () => {
  await gh.stop();
  gh = await startTestGatehouse({ dataDir: gh.dataDir });
  const a = open({ clientId: 'devB-client', username: 'dev-a001', password: 'pw-a', clean: false, properties: { sessionExpiryInterval: 600 } });
  await assert.rejects(a.connack, (err: { code?: number }) => err.code === 0x85);
  const b = open({ clientId: 'devB-client', username: 'dev-b001', password: 'pw-b', clean: false, properties: { sessionExpiryInterval: 600 } });
  assert.equal((await b.connack).sessionPresent, true);
  await b.client.endAsync();
});
