/**
 * Issue 13: a change of a gateway's topic rules reaches what sessions already hold. A device's session
 * keeps QoS 1/2 messages queued (offline, or its inflight window full) and subscriptions made under the
 * old rules; once the operator narrows the rules, the device never receives a queued message it could
 * not subscribe to now, and its old subscriptions the new rules refuse are gone — whether the session
 * was connected, offline, or restored after a restart (its CONNECT facts unknown until it reconnects).
 * Dropped messages are counted (`gatehouse_gateway_acl_refusals_total{access="delivery"}`).
 * Real TLS gateway, MQTT.js v5 and mosquitto_sub 3.1.1.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import mqtt from 'mqtt';
import { getPki, type SharedPki } from '../harness/pki.ts';
import { freePort, removeDataDir, startTestGatehouse, type TestGatehouse } from '../harness/gatehouse.ts';
import { metricValue, scrapeMetrics } from '../harness/third-party.ts';
import { connackOf } from '../harness/mqtt-connack.ts';

const run = promisify(execFile);

interface GatewayJson { id: string; name: string; port: number; productKey: string }

const OPEN = { defaultAction: 'ALLOW', rules: [] };
const PER_DEVICE = { defaultAction: 'DENY', rules: [{ action: 'ALLOW', access: 'ALL', topic: 'devices/${deviceName}/#' }] };
const PERSISTENT = { clean: false, properties: { sessionExpiryInterval: 3600 } };

let pki: SharedPki;
let gh: TestGatehouse;
let gateway: GatewayJson;
const clients: mqtt.MqttClient[] = [];

/** Connects; `got` collects what the client receives from the first packet after CONNACK on. */
function connect(options: mqtt.IClientOptions): Promise<{ client: mqtt.MqttClient; connack: mqtt.IConnackPacket; got: string[] }> {
  const client = mqtt.connect({
    host: '127.0.0.1', port: gateway.port, protocol: 'mqtts', ca: pki.root.certPem, servername: 'localhost',
    reconnectPeriod: 0, connectTimeout: 5000, protocolVersion: 5, ...options,
  });
  clients.push(client);
  const got: string[] = [];
  client.on('message', (topic, payload) => got.push(`${topic} ${payload.toString()}`));
  return connackOf(client).then((connack) => ({ client, connack, got }));
}

const spy = (clientId: string, extra: mqtt.IClientOptions = {}) => connect({ clientId, username: 'dev-0001', password: 'pw-one', ...PERSISTENT, ...extra });
const other = async () => (await connect({ clientId: `d2-${Math.random().toString(36).slice(2, 8)}`, username: 'dev-0002', password: 'pw-two' })).client;

/** Resolves once `got` holds `line` `times` times. */
async function received(got: string[], line: string, times = 1): Promise<void> {
  const deadline = Date.now() + 5000;
  while (got.filter((m) => m === line).length < times) {
    if (Date.now() > deadline) throw new Error(`never received ${line}; got ${JSON.stringify(got)}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function setRules(accessControl: unknown): Promise<void> {
  const r = await gh.api('PATCH', `/gateways/${gateway.id}`, { accessControl });
  assert.equal(r.status, 200, JSON.stringify(r.json));
}

async function droppedOnDelivery(): Promise<number> {
  return metricValue(await scrapeMetrics(gh), 'gatehouse_gateway_acl_refusals_total', { gateway: gateway.name, access: 'delivery' }) ?? 0;
}

/**
 * Everything the spy was owed has arrived once its own message, published after its reconnect through
 * a subscription it may hold, comes back: queued messages are sent right after CONNACK, before it.
 */
async function settle(client: mqtt.MqttClient, got: string[]): Promise<void> {
  assert.deepEqual((await client.subscribeAsync('devices/dev-0001/#', { qos: 1 })).map((g) => g.qos), [1]);
  await client.publishAsync('devices/dev-0001/sentinel', 's', { qos: 1 });
  await received(got, 'devices/dev-0001/sentinel s');
}

before(async () => {
  pki = await getPki();
  gh = await startTestGatehouse();
  const created = await gh.api<GatewayJson>('POST', '/gateways', {
    name: 'rules_change', port: await freePort(), accessControl: OPEN,
    certificates: { serverCertificateChain: pki.server.chainPem, serverPrivateKey: pki.server.keyPem },
  });
  assert.equal(created.status, 201, JSON.stringify(created.json));
  gateway = created.json;
  const csv = 'sn,username,password\nSN-1,dev-0001,pw-one\nSN-2,dev-0002,pw-two\n';
  assert.equal((await gh.api<{ created: number }>('POST', `/products/${gateway.productKey}/devices/import`, csv, 'text/csv')).json.created, 2);
}, { timeout: 60_000 });

after(async () => {
  for (const c of clients) c.end(true);
  await gh.stop();
  await removeDataDir(gh.dataDir);
}, { timeout: 30_000 });

test('v5, offline session: messages queued before the change are dropped and counted; its "#" stops queueing at once', { timeout: 20_000 }, async () => {
  await setRules(OPEN);
  const first = await spy('spy-offline');
  assert.deepEqual((await first.client.subscribeAsync('#', { qos: 1 })).map((g) => g.qos), [1]);
  await first.client.endAsync();

  const d2 = await other();
  await d2.publishAsync('devices/dev-0002/secret', 's1', { qos: 1 });
  await d2.publishAsync('devices/dev-0001/cmd', 'mine1', { qos: 1 });
  const droppedBefore = await droppedOnDelivery();
  await setRules(PER_DEVICE);
  // After the change: the offline session's '#' is gone, so neither of these is queued for it.
  await d2.publishAsync('devices/dev-0002/secret', 's2', { qos: 1 });
  await d2.publishAsync('devices/dev-0002/other', 'x', { qos: 1 });

  const again = await spy('spy-offline');
  assert.equal(again.connack.sessionPresent, true);
  const got = again.got;
  await settle(again.client, got);
  assert.deepEqual(got, ['devices/dev-0001/cmd mine1', 'devices/dev-0001/sentinel s']);
  assert.equal(await droppedOnDelivery(), droppedBefore + 1);
  await again.client.endAsync();
  await d2.endAsync();
});

test('v5, connected session with a full inflight window: what is still queued on a refused topic is dropped', { timeout: 20_000 }, async () => {
  await setRules(OPEN);
  // Receive Maximum 1 and PUBACKs held: the first message stays in flight, the rest wait in the queue.
  const { client, got } = await spy('spy-live', { properties: { sessionExpiryInterval: 3600, receiveMaximum: 1 } });
  assert.deepEqual((await client.subscribeAsync('#', { qos: 1 })).map((g) => g.qos), [1]);
  const held: (() => void)[] = [];
  let holding = true;
  client.handleMessage = (_packet, done) => {
    if (holding) held.push(() => done());
    else done();
  };
  const d2 = await other();
  await d2.publishAsync('devices/dev-0002/secret', 's1', { qos: 1 });
  await d2.publishAsync('devices/dev-0002/secret', 's2', { qos: 1 });
  await d2.publishAsync('devices/dev-0001/cmd', 'mine1', { qos: 1 });
  await received(got, 'devices/dev-0002/secret s1');
  const droppedBefore = await droppedOnDelivery();

  await setRules(PER_DEVICE);
  holding = false;
  for (const release of held.splice(0)) release();
  await settle(client, got);
  // s1 reached the client before the change; s2 was still queued.
  assert.deepEqual(got, ['devices/dev-0002/secret s1', 'devices/dev-0001/cmd mine1', 'devices/dev-0001/sentinel s']);
  assert.equal(await droppedOnDelivery(), droppedBefore + 1);
  await client.endAsync();
  await d2.endAsync();
});

test('v3.1.1 with mosquitto_sub: a persistent session reconnecting after the change gets only what it may read', { timeout: 30_000 }, async () => {
  await setRules(OPEN);
  const d2 = await other();
  // The first mosquitto_sub leaves as soon as '#' brings it this retained message: its subscription exists.
  await d2.publishAsync('devices/dev-0002/ready', 'r', { qos: 1, retain: true });
  const args = ['-h', 'localhost', '-p', String(gateway.port), '--cafile', pki.root.certPath, '-V', 'mqttv311', '-u', 'dev-0001', '-P', 'pw-one', '-i', 'spy-v3', '-c', '-q', '1', '-v'];
  const first = await run('mosquitto_sub', [...args, '-t', '#', '-C', '1', '-W', '10']);
  assert.equal(first.stdout.trim(), 'devices/dev-0002/ready r');

  await d2.publishAsync('devices/dev-0002/secret', 's3', { qos: 1 });
  await d2.publishAsync('devices/dev-0001/cmd', 'mine3', { qos: 1 });
  await setRules(PER_DEVICE);
  // Queued messages follow the CONNACK, in order: the first one it may read is the first it hears.
  const second = await run('mosquitto_sub', [...args, '-t', 'devices/dev-0001/#', '-C', '1', '-W', '10']);
  assert.equal(second.stdout.trim(), 'devices/dev-0001/cmd mine3');
  await d2.publishAsync('devices/dev-0002/ready', '', { qos: 1, retain: true });
  await d2.endAsync();
});

test('a session restored after a restart is judged when it reconnects: refused queued messages dropped, refused subscriptions removed', { timeout: 40_000 }, async () => {
  await setRules(OPEN);
  const first = await spy('spy-restart');
  assert.deepEqual((await first.client.subscribeAsync('#', { qos: 1 })).map((g) => g.qos), [1]);
  await first.client.endAsync();
  const d2 = await other();
  await d2.publishAsync('devices/dev-0002/secret', 's4', { qos: 1 });
  await d2.publishAsync('devices/dev-0001/cmd', 'mine4', { qos: 1 });
  await d2.endAsync();

  // The restart forgets who the session's device was (its CONNECT facts): the change cannot judge it then.
  await gh.stop();
  gh = await startTestGatehouse({ dataDir: gh.dataDir });
  await setRules(PER_DEVICE);
  const droppedBefore = await droppedOnDelivery();

  const again = await spy('spy-restart');
  assert.equal(again.connack.sessionPresent, true);
  const got = again.got;
  await settle(again.client, got);
  const d2b = await other();
  await d2b.publishAsync('devices/dev-0002/after', 'a', { qos: 1 }); // its '#' is gone: not delivered
  await again.client.publishAsync('devices/dev-0001/sentinel', 's', { qos: 1 });
  await received(got, 'devices/dev-0001/sentinel s', 2);
  assert.deepEqual(got, ['devices/dev-0001/cmd mine4', 'devices/dev-0001/sentinel s', 'devices/dev-0001/sentinel s']);
  assert.equal(await droppedOnDelivery(), droppedBefore + 1);
  await again.client.endAsync();
  await d2b.endAsync();
});
