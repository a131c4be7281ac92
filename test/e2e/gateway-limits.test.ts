/**
 * Issue 13 item 7, per-gateway limits end to end: a gateway created over HTTP, devices imported, real
 * TLS clients (MQTT.js v5 and v3.1.1, mosquitto_pub 3.1.1). Each limit refuses or paces as the API
 * documents, is counted in /metrics as use against the limit, and an edit applies without a restart
 * (the test waits until /metrics shows the limit the running gateway applies).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import mqtt from 'mqtt';
import { getPki, type SharedPki } from '../harness/pki.ts';
import { freePort, removeDataDir, startTestGatehouse, type TestGatehouse } from '../harness/gatehouse.ts';
import { metricValue, scrapeMetrics, waitFor } from '../harness/third-party.ts';
import { connackOf } from '../harness/mqtt-connack.ts';

const run = promisify(execFile);

interface GatewayJson {
  id: string; name: string; port: number; productKey: string;
  limits: Record<string, number | null>;
  limitsUsage: Record<string, { current: number | null; hits: number }> | null;
}
interface ErrorJson { error: { code: string; field: string; message: string } }

let pki: SharedPki;
let gh: TestGatehouse;
let gateway: GatewayJson;
const clients: mqtt.MqttClient[] = [];

const DEVICES = { 'dev-0001': 'pw-one', 'dev-0002': 'pw-two', 'dev-0003': 'pw-three' } as const;
type DeviceName = keyof typeof DEVICES;

function clientFor(device: DeviceName, options: mqtt.IClientOptions): mqtt.MqttClient {
  const client = mqtt.connect({
    host: '127.0.0.1', port: gateway.port, protocol: 'mqtts', ca: pki.root.certPem, servername: 'localhost',
    reconnectPeriod: 0, connectTimeout: 5000, protocolVersion: 5, username: device, password: DEVICES[device], ...options,
  });
  clients.push(client);
  return client;
}

/** Connects; resolves with the client and its CONNACK, rejects with the refusal (its `code` is the reason / return code). */
function connect(device: DeviceName, options: mqtt.IClientOptions): Promise<{ client: mqtt.MqttClient; connack: mqtt.IConnackPacket }> {
  const client = clientFor(device, options);
  return connackOf(client).then((connack) => ({ client, connack }));
}

async function refusalCode(device: DeviceName, options: mqtt.IClientOptions): Promise<number> {
  return connect(device, options).then(() => 0, (err: { code?: number }) => err.code ?? -1);
}

async function granted(client: mqtt.MqttClient, filters: string[]): Promise<number[]> {
  return client.subscribeAsync(filters, { qos: 1 }).then(
    (answer) => answer.map((g) => g.qos),
    (err: { packet?: { granted?: number[] } }) => {
      if (err.packet?.granted === undefined) throw err;
      return err.packet.granted;
    },
  );
}

async function pubackCode(client: mqtt.MqttClient, topic: string, payload: string | Buffer, retain = false): Promise<number> {
  return client.publishAsync(topic, payload, { qos: 1, retain }).then(() => 0, (err: { code?: number }) => err.code ?? -1);
}

/** Edits the limits and waits until the running gateway applies them (its /metrics show the new values). */
async function setLimits(limits: Record<string, number | null>): Promise<void> {
  const r = await gh.api<GatewayJson>('PATCH', `/gateways/${gateway.id}`, { limits });
  assert.equal(r.status, 200, JSON.stringify(r.json));
  await waitFor(async () => {
    const text = await scrapeMetrics(gh);
    const applied = Object.entries(limits).every(([limit, value]) => metricValue(text, 'gatehouse_gateway_limit', { gateway: gateway.name, limit }) === (value ?? undefined));
    return applied ? true : undefined;
  });
}

/** Resolves once `condition` holds (polled; the timeout of the test bounds it). */
function until(condition: () => boolean, ms = 5000): Promise<boolean> {
  return waitFor(() => Promise.resolve(condition() ? true : undefined), ms);
}

async function metric(name: string, labels: Record<string, string> = {}): Promise<number> {
  return metricValue(await scrapeMetrics(gh), name, { gateway: gateway.name, ...labels }) ?? 0;
}

const tlsArgs = (): string[] => ['-h', 'localhost', '-p', String(gateway.port), '--cafile', pki.root.certPath, '-V', 'mqttv311'];

async function endAll(): Promise<void> {
  await Promise.all(clients.splice(0).map((c) => c.endAsync(true)));
}

before(async () => {
  pki = await getPki();
  gh = await startTestGatehouse();
  const created = await gh.api<GatewayJson>('POST', '/gateways', {
    name: 'limited_fleet', port: await freePort(),
    certificates: { serverCertificateChain: pki.server.chainPem, serverPrivateKey: pki.server.keyPem },
  });
  assert.equal(created.status, 201, JSON.stringify(created.json));
  gateway = created.json;
  const csv = `sn,username,password\n${Object.entries(DEVICES).map(([u, p], i) => `SN-${i},${u},${p}`).join('\n')}\n`;
  const imported = await gh.api<{ created: number }>('POST', `/products/${gateway.productKey}/devices/import`, csv, 'text/csv');
  assert.equal(imported.json.created, 3);
}, { timeout: 60_000 });

after(async () => {
  for (const c of clients) c.end(true);
  await gh.stop();
  await removeDataDir(gh.dataDir);
}, { timeout: 30_000 });

test('defaults are the limits gateways always had; edits are checked, codes name the field and the rule', { timeout: 45_000 }, async () => {
  assert.deepEqual(gateway.limits, {
    maxConnections: null, messagesPerSecondPerDevice: null, bytesPerSecondPerDevice: null, maxSubscriptionsPerDevice: 1000,
    maxRetainedMessages: 100_000, maxPacketSize: 1_048_576, maxQueuedMessagesPerDevice: 1000, maxSessionExpirySeconds: 604_800,
    maxSessionsPerDevice: null, maxConnectionsPerAddress: 1000, connectionRatePerAddress: 200,
    maxRetainedBytes: 128 * 1024 * 1024, maxQueuedBytesPerDevice: 16 * 1024 * 1024, maxTopicLevels: 128, maxTopicLength: 4096,
    maxClientIdLength: 256, maxUserPropertiesPerPacket: 128, maxFiltersPerSubscribe: 1000,
  });
  const bad = async (limits: unknown): Promise<[number, string, string]> => {
    const r = await gh.api<ErrorJson>('PATCH', `/gateways/${gateway.id}`, { limits });
    return [r.status, r.json.error.code, r.json.error.field];
  };
  assert.deepEqual(await bad({ maxConnections: 0 }), [400, 'GW_ERR_LIMIT_OUT_OF_RANGE', 'limits.maxConnections']);
  assert.deepEqual(await bad({ maxPacketSize: 100 }), [400, 'GW_ERR_LIMIT_OUT_OF_RANGE', 'limits.maxPacketSize']);
  assert.deepEqual(await bad({ maxPacketSize: 300_000_000 }), [400, 'GW_ERR_LIMIT_OUT_OF_RANGE', 'limits.maxPacketSize']);
  assert.deepEqual(await bad({ messagesPerSecondPerDevice: 2.5 }), [400, 'GW_ERR_LIMIT_NOT_INTEGER', 'limits.messagesPerSecondPerDevice']);
  assert.deepEqual(await bad({ maxSessionsPerDevice: -1 }), [400, 'GW_ERR_LIMIT_OUT_OF_RANGE', 'limits.maxSessionsPerDevice']);
  // The router is built for 1,000 levels: no limit may let a deeper topic through to it.
  assert.deepEqual(await bad({ maxTopicLevels: 1001 }), [400, 'GW_ERR_LIMIT_OUT_OF_RANGE', 'limits.maxTopicLevels']);
  assert.equal((await gh.api<ErrorJson>('PATCH', `/gateways/${gateway.id}`, { limits: { maxConnection: 5 } })).status, 400);
  // Nothing was saved by the refused edits; null (no limit) is a value of its own.
  const current = await gh.api<GatewayJson>('GET', `/gateways/${gateway.id}`);
  assert.equal(current.json.limits.maxConnections, null);
  assert.equal(current.json.limits.maxPacketSize, 1_048_576);
  assert.deepEqual(current.json.limitsUsage?.maxConnections, { current: 0, hits: 0 });
  const lifted = await gh.api<GatewayJson>('PATCH', `/gateways/${gateway.id}`, { limits: { maxQueuedMessagesPerDevice: null } });
  assert.equal(lifted.json.limits.maxQueuedMessagesPerDevice, null);
  assert.equal(lifted.json.limits.maxSubscriptionsPerDevice, 1000, 'an edit changes only the limits it names');
});

test('maxConnections: one more is refused (v5 0x97, v3.1.1 3) before verification, counted; a takeover still passes; lifting it applies live', { timeout: 30_000 }, async () => {
  await setLimits({ maxConnections: 2 });
  const { client: first } = await connect('dev-0001', { clientId: 'conn-1' });
  await connect('dev-0002', { clientId: 'conn-2' });
  assert.equal(await refusalCode('dev-0003', { clientId: 'conn-3' }), 0x97);
  // mosquitto_pub 3.1.1 hears return code 3 (server unavailable).
  const v3 = await run('mosquitto_pub', [...tlsArgs(), '-u', 'dev-0003', '-P', DEVICES['dev-0003'], '-i', 'conn-3-v3', '-t', 'devices/dev-0003/x', '-m', 'x'])
    .then(() => '', (err: { stderr: string }) => err.stderr);
  assert.match(v3, /unavailable/i);
  // The same device taking its own session over frees the place it takes.
  const takenOver = new Promise((resolve) => first.once('disconnect', resolve));
  const { client: again } = await connect('dev-0001', { clientId: 'conn-1' });
  await takenOver;
  assert.equal(await metric('gatehouse_gateway_limit_use', { limit: 'maxConnections' }), 2);
  assert.equal(await metric('gatehouse_gateway_limit_hits_total', { limit: 'maxConnections' }), 2);
  const usage = (await gh.api<GatewayJson>('GET', `/gateways/${gateway.id}`)).json.limitsUsage;
  assert.deepEqual(usage?.maxConnections, { current: 2, hits: 2 });

  await setLimits({ maxConnections: null });
  await connect('dev-0003', { clientId: 'conn-3' });
  assert.equal(await metric('gatehouse_gateway_limit_use', { limit: 'maxConnections' }), 3);
  assert.ok(again.connected);
  await endAll();
});

test('maxSessionsPerDevice: a device opening one client-id session too many is refused 0x97 / v3.1.1 3; its own sessions still resume', { timeout: 30_000 }, async () => {
  await setLimits({ maxSessionsPerDevice: 2 });
  const kept = { clean: false, properties: { sessionExpiryInterval: 300 } };
  const { client: a } = await connect('dev-0001', { clientId: 'sess-a', ...kept });
  await connect('dev-0001', { clientId: 'sess-b', ...kept });
  await a.endAsync();
  assert.equal(await refusalCode('dev-0001', { clientId: 'sess-c', ...kept }), 0x97);
  const v3 = await run('mosquitto_pub', [...tlsArgs(), '-u', 'dev-0001', '-P', DEVICES['dev-0001'], '-i', 'sess-c-v3', '-t', 'devices/dev-0001/x', '-m', 'x'])
    .then(() => '', (err: { stderr: string }) => err.stderr);
  assert.match(v3, /unavailable/i);
  // The session kept after its connection closed resumes; another device is not affected.
  const { connack } = await connect('dev-0001', { clientId: 'sess-a', ...kept });
  assert.equal(connack.sessionPresent, true);
  await connect('dev-0002', { clientId: 'sess-other', ...kept });
  assert.equal(await metric('gatehouse_gateway_limit_use', { limit: 'maxSessionsPerDevice' }), 2);
  assert.equal(await metric('gatehouse_gateway_limit_hits_total', { limit: 'maxSessionsPerDevice' }), 2);
  await setLimits({ maxSessionsPerDevice: null });
  await connect('dev-0001', { clientId: 'sess-c', ...kept });
  await endAll();
});

test('maxSubscriptionsPerDevice: filters over the cap get 0x97 each (v3.1.1 0x80)', { timeout: 20_000 }, async () => {
  await setLimits({ maxSubscriptionsPerDevice: 2 });
  const { client: v5 } = await connect('dev-0001', { clientId: 'subs-v5' });
  assert.deepEqual(await granted(v5, ['a/1', 'a/2', 'a/3', 'a/4']), [1, 1, 0x97, 0x97]);
  // Re-subscribing to a filter it holds is not one more.
  assert.deepEqual(await granted(v5, ['a/1']), [1]);
  const { client: v3 } = await connect('dev-0002', { clientId: 'subs-v3', protocolVersion: 4 });
  assert.deepEqual(await granted(v3, ['b/1', 'b/2', 'b/3']), [1, 1, 0x80]);
  assert.equal(await metric('gatehouse_gateway_limit_use', { limit: 'maxSubscriptionsPerDevice' }), 2);
  assert.equal(await metric('gatehouse_gateway_limit_hits_total', { limit: 'maxSubscriptionsPerDevice' }), 3);
  await setLimits({ maxSubscriptionsPerDevice: 3 });
  assert.deepEqual(await granted(v5, ['a/3']), [1]);
  await endAll();
});

test('maxRetainedMessages: a retained message over the cap is not stored (v5 PUBACK 0x97); replacing a kept one still works', { timeout: 20_000 }, async () => {
  await setLimits({ maxRetainedMessages: 1 });
  const { client } = await connect('dev-0001', { clientId: 'retain-v5' });
  assert.equal(await pubackCode(client, 'r/one', 'first', true), 0);
  assert.equal(await pubackCode(client, 'r/two', 'refused', true), 0x97);
  assert.equal(await pubackCode(client, 'r/one', 'replaced', true), 0);
  // A new subscriber to both gets the one kept message only; a sentinel proves nothing else is coming.
  const { client: reader } = await connect('dev-0002', { clientId: 'retain-reader' });
  const got: string[] = [];
  reader.on('message', (topic, payload) => got.push(`${topic} ${payload.toString()}`));
  await granted(reader, ['r/#']);
  await pubackCode(client, 'r/sentinel', 's');
  await until(() => got.includes('r/sentinel s'));
  assert.deepEqual(got, ['r/one replaced', 'r/sentinel s']);
  assert.equal(await metric('gatehouse_gateway_limit_use', { limit: 'maxRetainedMessages' }), 1);
  assert.equal(await metric('gatehouse_gateway_limit_hits_total', { limit: 'maxRetainedMessages' }), 1);
  await endAll();
});

test('maxPacketSize and maxSessionExpirySeconds: v5 CONNACK carries both; a larger packet ends the connection (0x95), counted', { timeout: 20_000 }, async () => {
  await setLimits({ maxPacketSize: 2048, maxSessionExpirySeconds: 60 });
  const { connack } = await connect('dev-0001', { clientId: 'size-v5', clean: false, properties: { sessionExpiryInterval: 3600 } });
  assert.equal(connack.properties?.maximumPacketSize, 2048);
  assert.equal(connack.properties?.sessionExpiryInterval, 60); // the interval granted (§3.2.2.3.2)
  // A v3.1.1 client is told nothing and sends 4 KB: the gateway closes its connection.
  const { client: v3 } = await connect('dev-0002', { clientId: 'size-v3', protocolVersion: 4 });
  const closed = new Promise<void>((resolve) => v3.once('close', () => resolve()));
  v3.publish('devices/dev-0002/big', Buffer.alloc(4096, 1), { qos: 1 });
  await closed;
  assert.equal(await metric('gatehouse_gateway_limit_hits_total', { limit: 'maxPacketSize' }), 1);
  assert.ok(await metric('gatehouse_gateway_limit_hits_total', { limit: 'maxSessionExpirySeconds' }) >= 1);
  await setLimits({ maxPacketSize: 1_048_576, maxSessionExpirySeconds: 604_800 });
  await endAll();
});

test('maxQueuedMessagesPerDevice: an offline session keeps the newest N, the oldest are dropped and counted', { timeout: 20_000 }, async () => {
  await setLimits({ maxQueuedMessagesPerDevice: 3 });
  const kept = { clean: false, properties: { sessionExpiryInterval: 300 } };
  const { client: away } = await connect('dev-0002', { clientId: 'queue-v5', ...kept });
  await granted(away, ['devices/dev-0002/cmd']);
  await away.endAsync();
  const { client: sender } = await connect('dev-0001', { clientId: 'queue-sender' });
  for (let i = 1; i <= 5; i++) assert.equal(await pubackCode(sender, 'devices/dev-0002/cmd', `m${i}`), 0);
  assert.equal(await metric('gatehouse_gateway_limit_use', { limit: 'maxQueuedMessagesPerDevice' }), 3);
  const got: string[] = [];
  const back = clientFor('dev-0002', { clientId: 'queue-v5', ...kept });
  back.on('message', (_topic, payload) => got.push(payload.toString()));
  await until(() => got.length >= 3);
  await sender.publishAsync('devices/dev-0002/cmd', 'after', { qos: 1 });
  await until(() => got.includes('after'));
  assert.deepEqual(got, ['m3', 'm4', 'm5', 'after']);
  assert.equal(await metric('gatehouse_gateway_limit_hits_total', { limit: 'maxQueuedMessagesPerDevice' }), 2);
  await setLimits({ maxQueuedMessagesPerDevice: 1000 });
  await endAll();
});

test('messagesPerSecondPerDevice and bytesPerSecondPerDevice: a faster device is paced, never dropped (MQTT.js v5, mosquitto_pub 3.1.1)', { timeout: 60_000 }, async () => {
  await setLimits({ messagesPerSecondPerDevice: 20 });
  const { client: reader } = await connect('dev-0002', { clientId: 'rate-reader' });
  const got: string[] = [];
  reader.on('message', (_topic, payload) => got.push(payload.toString()));
  await granted(reader, ['devices/+/rate']);
  const { client: fast } = await connect('dev-0001', { clientId: 'rate-v5' });
  const sent = Array.from({ length: 50 }, (_, i) => `m${i}`);
  // QoS 0 as fast as the client writes: what the gateway does not read waits in TCP, it is not lost.
  for (const m of sent) fast.publish('devices/dev-0001/rate', m, { qos: 0 });
  await until(() => got.length >= sent.length, 20_000);
  assert.deepEqual(got, sent);
  const pacedByMessages = await metric('gatehouse_gateway_limit_hits_total', { limit: 'messagesPerSecondPerDevice' });
  assert.ok(pacedByMessages > 0, 'the device was paced');

  await setLimits({ messagesPerSecondPerDevice: null, bytesPerSecondPerDevice: 4096 });
  got.length = 0;
  // mosquitto_pub 3.1.1 sends 30 lines of ~500 bytes at QoS 1 and exits once each is acknowledged.
  const lines = Array.from({ length: 30 }, (_, i) => `l${i}-${'x'.repeat(500)}`);
  const pub = run('mosquitto_pub', [...tlsArgs(), '-u', 'dev-0003', '-P', DEVICES['dev-0003'], '-i', 'rate-v3', '-t', 'devices/dev-0003/rate', '-q', '1', '-l']);
  pub.child.stdin?.end(`${lines.join('\n')}\n`);
  await pub;
  await until(() => got.length >= lines.length, 20_000);
  assert.deepEqual(got, lines);
  assert.ok(await metric('gatehouse_gateway_limit_hits_total', { limit: 'bytesPerSecondPerDevice' }) > pacedByMessages, 'the 3.1.1 device was paced too');
  await setLimits({ bytesPerSecondPerDevice: null });
  await endAll();
});

/** Resolves with the reason code of the DISCONNECT the gateway sends (v5), or -1 when it just closes. */
function serverDisconnect(client: mqtt.MqttClient): Promise<number> {
  return new Promise((resolve) => {
    client.once('disconnect', (packet) => resolve(packet.reasonCode ?? 0));
    client.once('close', () => resolve(-1));
  });
}

test('maxRetainedBytes: a retained message that would pass the bytes of all retained messages is not stored (0x97); use is in bytes', { timeout: 20_000 }, async () => {
  await setLimits({ maxRetainedBytes: 2000, maxRetainedMessages: 100_000 });
  const { client } = await connect('dev-0001', { clientId: 'retain-bytes' });
  assert.equal(await pubackCode(client, 'r/one', Buffer.alloc(0), true), 0); // what the test before kept
  assert.equal(await pubackCode(client, 'rb/a', Buffer.alloc(1500, 1), true), 0);
  assert.equal(await pubackCode(client, 'rb/b', Buffer.alloc(1000, 2), true), 0x97);
  // Replacing the kept one frees its bytes first: a smaller one fits, and then the second topic too.
  assert.equal(await pubackCode(client, 'rb/a', Buffer.alloc(500, 3), true), 0);
  assert.equal(await pubackCode(client, 'rb/b', Buffer.alloc(1000, 2), true), 0);
  assert.equal(await metric('gatehouse_gateway_limit_use', { limit: 'maxRetainedBytes' }), 500 + 4 + 1000 + 4);
  assert.equal(await metric('gatehouse_gateway_limit_hits_total', { limit: 'maxRetainedBytes' }), 1);
  // Cleared, so the tests after this one start from an empty retained store.
  for (const topic of ['rb/a', 'rb/b']) assert.equal(await pubackCode(client, topic, Buffer.alloc(0), true), 0);
  await setLimits({ maxRetainedBytes: 128 * 1024 * 1024 });
  await endAll();
});

test('maxQueuedBytesPerDevice: an offline session keeps the newest messages that fit in its bytes, the oldest are dropped and counted', { timeout: 20_000 }, async () => {
  await setLimits({ maxQueuedBytesPerDevice: 2500 });
  const kept = { clean: false, properties: { sessionExpiryInterval: 300 } };
  const { client: away } = await connect('dev-0002', { clientId: 'qbytes-v5', ...kept });
  await granted(away, ['devices/dev-0002/bulk']);
  await away.endAsync();
  const { client: sender } = await connect('dev-0001', { clientId: 'qbytes-sender' });
  for (let i = 1; i <= 4; i++) assert.equal(await pubackCode(sender, 'devices/dev-0002/bulk', `${i}`.repeat(1000)), 0);
  const usage = (await gh.api<GatewayJson>('GET', `/gateways/${gateway.id}`)).json.limitsUsage!.maxQueuedBytesPerDevice!;
  assert.ok(usage.current! <= 2500 && usage.current! >= 2000, `queued bytes ${usage.current}`);
  const got: string[] = [];
  const back = clientFor('dev-0002', { clientId: 'qbytes-v5', ...kept });
  back.on('message', (_topic, payload) => got.push(payload.toString()[0]!));
  await until(() => got.length >= 2);
  await sender.publishAsync('devices/dev-0002/bulk', '5', { qos: 1 });
  await until(() => got.includes('5'));
  assert.deepEqual(got, ['3', '4', '5']);
  assert.equal(await metric('gatehouse_gateway_limit_hits_total', { limit: 'maxQueuedBytesPerDevice' }), 2);
  await setLimits({ maxQueuedBytesPerDevice: 16 * 1024 * 1024 });
  await endAll();
});

test('maxTopicLevels and maxTopicLength: deeper or longer topics are refused (filter 0x8F, PUBLISH 0x90), counted; raised live past the old router depth, they route', { timeout: 30_000 }, async () => {
  await setLimits({ maxTopicLevels: 3, maxTopicLength: 4096 });
  const { client } = await connect('dev-0001', { clientId: 'levels-v5' });
  assert.deepEqual(await granted(client, ['t/1/2', 't/1/2/3']), [1, 0x8f]);
  const closed = serverDisconnect(client);
  client.publish('t/1/2/3', 'deep', { qos: 1 });
  assert.equal(await closed, 0x90);
  assert.equal(await metric('gatehouse_gateway_limit_hits_total', { limit: 'maxTopicLevels' }), 2);

  // 300 levels: past the 128 + 1 the engine's router was once built for, which threw on such a topic.
  await setLimits({ maxTopicLevels: null, maxTopicLength: 20 });
  const deep = Array.from({ length: 300 }, () => 'd').join('/');
  const { client: reader } = await connect('dev-0002', { clientId: 'levels-reader' });
  assert.deepEqual(await granted(reader, ['d/#', `x/${'y'.repeat(30)}`]), [1, 0x8f]);
  assert.equal(await metric('gatehouse_gateway_limit_hits_total', { limit: 'maxTopicLength' }), 1);
  await setLimits({ maxTopicLength: 4096 });
  const got: string[] = [];
  reader.on('message', (topic) => got.push(topic));
  const { client: writer } = await connect('dev-0001', { clientId: 'levels-writer' });
  assert.equal(await pubackCode(writer, deep, 'x'), 0);
  await until(() => got.length === 1);
  assert.equal(got[0], deep);
  await setLimits({ maxTopicLevels: 128 });
  await endAll();
});

test('maxClientIdLength: a longer client id is refused (v5 0x85, v3.1.1 2) and counted; at least 23 bytes [MQTT-3.1.3-5]', { timeout: 20_000 }, async () => {
  const r = await gh.api<ErrorJson>('PATCH', `/gateways/${gateway.id}`, { limits: { maxClientIdLength: 22 } });
  assert.deepEqual([r.status, r.json.error.code, r.json.error.field], [400, 'GW_ERR_LIMIT_OUT_OF_RANGE', 'limits.maxClientIdLength']);
  await setLimits({ maxClientIdLength: 30 });
  assert.equal(await refusalCode('dev-0001', { clientId: 'c'.repeat(31) }), 0x85);
  assert.equal(await refusalCode('dev-0001', { clientId: 'c'.repeat(31), protocolVersion: 4 }), 2);
  await connect('dev-0001', { clientId: 'c'.repeat(30) });
  assert.equal(await metric('gatehouse_gateway_limit_hits_total', { limit: 'maxClientIdLength' }), 2);
  await setLimits({ maxClientIdLength: 256 });
  await endAll();
});

test('maxUserPropertiesPerPacket and maxFiltersPerSubscribe: a packet with more ends the connection with 0x97, counted', { timeout: 20_000 }, async () => {
  await setLimits({ maxUserPropertiesPerPacket: 2, maxFiltersPerSubscribe: 2 });
  const { client: props } = await connect('dev-0001', { clientId: 'props-v5' });
  const closedProps = serverDisconnect(props);
  props.publish('devices/dev-0001/p', 'x', { qos: 0, properties: { userProperties: { a: '1', b: '2', c: '3' } } });
  assert.equal(await closedProps, 0x97);
  const { client: filters } = await connect('dev-0002', { clientId: 'filters-v5' });
  assert.deepEqual(await granted(filters, ['f/1', 'f/2']), [1, 1]);
  const closedFilters = serverDisconnect(filters);
  filters.subscribe(['f/1', 'f/2', 'f/3'], { qos: 1 });
  assert.equal(await closedFilters, 0x97);
  assert.equal(await metric('gatehouse_gateway_limit_hits_total', { limit: 'maxUserPropertiesPerPacket' }), 1);
  assert.equal(await metric('gatehouse_gateway_limit_hits_total', { limit: 'maxFiltersPerSubscribe' }), 1);
  await setLimits({ maxUserPropertiesPerPacket: 128, maxFiltersPerSubscribe: 1000 });
  await endAll();
});
