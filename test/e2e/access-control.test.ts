/**
 * Issue 13, topic access control end to end: a gateway created over HTTP, devices imported, real TLS
 * clients (MQTT.js v5, mosquitto_pub/_sub 3.1.1). Under the per-device template a device publishes and
 * subscribes under its own topic and nowhere else; an edit applies to connected devices at once.
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

interface GatewayJson { id: string; name: string; port: number; productKey: string; accessControl: unknown }
interface ErrorJson { error: { code: string; field: string } }

const TEMPLATE = { defaultAction: 'DENY', rules: [{ action: 'ALLOW', access: 'ALL', topic: 'devices/${deviceName}/#' }] };

let pki: SharedPki;
let gh: TestGatehouse;
let gateway: GatewayJson;
const clients: mqtt.MqttClient[] = [];

function connect(options: mqtt.IClientOptions): Promise<mqtt.MqttClient> {
  const client = mqtt.connect({
    host: '127.0.0.1', port: gateway.port, protocol: 'mqtts', ca: pki.root.certPem, servername: 'localhost',
    reconnectPeriod: 0, connectTimeout: 5000, protocolVersion: 5, ...options,
  });
  clients.push(client);
  return connackOf(client).then(() => client);
}

/** Messages a client receives, as `topic payload`. */
function inbox(client: mqtt.MqttClient): string[] {
  const got: string[] = [];
  client.on('message', (topic, payload) => got.push(`${topic} ${payload.toString()}`));
  return got;
}

async function granted(client: mqtt.MqttClient, filters: string[]): Promise<number[]> {
  // MQTT.js rejects when any filter failed; the SUBACK's codes are on the error.
  const codes = await client.subscribeAsync(filters, { qos: 1 }).then(
    (answer) => answer.map((g) => g.qos),
    (err: { packet?: { granted?: number[] } }) => {
      if (err.packet?.granted === undefined) throw err;
      return err.packet.granted;
    },
  );
  return codes;
}

async function pubackCode(client: mqtt.MqttClient, topic: string, payload: string, retain = false): Promise<number> {
  try {
    await client.publishAsync(topic, payload, { qos: 1, retain });
    return 0;
  } catch (err) {
    return (err as { code?: number }).code ?? -1;
  }
}

/** Resolves once `got` holds `line`: the sentinel that proves everything published before it was routed. */
async function received(got: string[], line: string): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!got.includes(line)) {
    if (Date.now() > deadline) throw new Error(`never received ${line}; got ${JSON.stringify(got)}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const tlsArgs = (): string[] => ['-h', 'localhost', '-p', String(gateway.port), '--cafile', pki.root.certPath, '-V', 'mqttv311'];

before(async () => {
  pki = await getPki();
  gh = await startTestGatehouse();
  const created = await gh.api<GatewayJson>('POST', '/gateways', {
    name: 'room_per_device', port: await freePort(), accessControl: TEMPLATE,
    certificates: { serverCertificateChain: pki.server.chainPem, serverPrivateKey: pki.server.keyPem },
  });
  assert.equal(created.status, 201, JSON.stringify(created.json));
  gateway = created.json;
  assert.deepEqual(gateway.accessControl, TEMPLATE);
  const csv = 'sn,username,password\nSN-1,dev-0001,pw-one\nSN-2,dev-0002,pw-two\n';
  const imported = await gh.api<{ created: number }>('POST', `/products/${gateway.productKey}/devices/import`, csv, 'text/csv');
  assert.equal(imported.json.created, 2);
}, { timeout: 60_000 });

after(async () => {
  for (const c of clients) c.end(true);
  await gh.stop();
  await removeDataDir(gh.dataDir);
}, { timeout: 30_000 });

test('rules are checked when saved: codes name the field and the rule', { timeout: 90_000 }, async () => {
  const bad = async (accessControl: unknown): Promise<[number, string, string]> => {
    const r = await gh.api<ErrorJson>('PATCH', `/gateways/${gateway.id}`, { accessControl });
    return [r.status, r.json.error.code, r.json.error.field];
  };
  assert.deepEqual(await bad({ rules: [{ action: 'ALLOW', access: 'ALL', topic: 'devices/x${deviceName}/#' }] }), [400, 'GW_ERR_ACL_TOPIC_INVALID', 'accessControl.rules[0].topic']);
  assert.deepEqual(await bad({ rules: [TEMPLATE.rules[0], { action: 'ALLOW', access: 'ALL', topic: 'a/${password}' }] }), [400, 'GW_ERR_ACL_PLACEHOLDER_UNKNOWN', 'accessControl.rules[1].topic']);
  assert.deepEqual(await bad({ rules: [{ action: 'ALLOW', access: 'ALL', topic: 'a/#/b' }] }), [400, 'GW_ERR_ACL_TOPIC_INVALID', 'accessControl.rules[0].topic']);
  // Nothing was saved by the refused edits.
  assert.deepEqual((await gh.api<GatewayJson>('GET', `/gateways/${gateway.id}`)).json.accessControl, TEMPLATE);
});

test('[MQTT-3.9.3-1] v5: SUBACK 0x87 per refused filter, PUBACK 0x87, nothing delivered to others; retained and shared obey the rules', { timeout: 15_000 }, async () => {
  const d2 = await connect({ clientId: 'd2-v5', username: 'dev-0002', password: 'pw-two' });
  const d2Got = inbox(d2);
  assert.deepEqual(await granted(d2, ['devices/dev-0002/#']), [1]);
  assert.equal(await pubackCode(d2, 'devices/dev-0002/state', 'd2-state', true), 0);

  const d1 = await connect({ clientId: 'd1-v5', username: 'dev-0001', password: 'pw-one' });
  const d1Got = inbox(d1);
  assert.deepEqual(
    await granted(d1, ['devices/dev-0001/#', 'devices/dev-0001/+/t', 'devices/+/state', '#', 'devices/dev-0002/state', '$share/g/devices/#', '$share/g/devices/dev-0001/x']),
    [1, 1, 0x87, 0x87, 0x87, 0x87, 1],
  );
  assert.equal(await pubackCode(d1, 'devices/dev-0002/cmd', 'from-d1'), 0x87);
  assert.equal(await pubackCode(d1, 'elsewhere', 'from-d1'), 0x87);
  assert.equal(await pubackCode(d1, 'devices/dev-0001/up', 'mine'), 0);
  // d2's own message after d1's refused one: once it arrives, d1's would have been routed before it.
  assert.equal(await pubackCode(d2, 'devices/dev-0002/sentinel', 's'), 0);
  await received(d2Got, 'devices/dev-0002/sentinel s');
  assert.deepEqual(d2Got, ['devices/dev-0002/state d2-state', 'devices/dev-0002/sentinel s']);
  await received(d1Got, 'devices/dev-0001/up mine');
  assert.ok(!d1Got.some((m) => m.includes('d2-state')), `d1 got another device's retained message: ${JSON.stringify(d1Got)}`);

  const metrics = await scrapeMetrics(gh);
  assert.ok((metricValue(metrics, 'gatehouse_gateway_acl_refusals_total', { gateway: gateway.name, access: 'subscribe' }) ?? 0) >= 4);
  assert.ok((metricValue(metrics, 'gatehouse_gateway_acl_refusals_total', { gateway: gateway.name, access: 'publish' }) ?? 0) >= 2);
  await d1.endAsync();
  await d2.endAsync();
});

test('v3.1.1 with mosquitto_sub/_pub: SUBACK 0x80, a refused QoS 1 PUBLISH is acknowledged, dropped and counted (QoS 0 dropped and counted)', { timeout: 20_000 }, async () => {
  // All filters refused: mosquitto_sub reports it and exits non-zero.
  const denied = await run('mosquitto_sub', [...tlsArgs(), '-u', 'dev-0001', '-P', 'pw-one', '-i', 'd1-v3', '-t', '#', '-t', 'devices/dev-0002/#', '-C', '1', '-W', '5'])
    .then((r) => ({ ...r, code: 0 }), (err: { stdout: string; stderr: string; code: number }) => err);
  assert.match(denied.stderr, /All subscription requests were denied/, JSON.stringify(denied));
  assert.equal(denied.stdout, '');

  const d2 = await connect({ protocolVersion: 4, clientId: 'd2-v3', username: 'dev-0002', password: 'pw-two' });
  const d2Got = inbox(d2);
  assert.deepEqual(await granted(d2, ['devices/dev-0002/cmd', 'devices/+/cmd']), [1, 0x80]);
  const before = metricValue(await scrapeMetrics(gh), 'gatehouse_gateway_dropped_unauthorized_total', { gateway: gateway.name }) ?? 0;
  // mosquitto_pub gets its PUBACK (v3.1.1 cannot refuse a PUBLISH) and exits 0.
  await run('mosquitto_pub', [...tlsArgs(), '-u', 'dev-0001', '-P', 'pw-one', '-i', 'd1-pub', '-t', 'devices/dev-0002/cmd', '-m', 'forged', '-q', '1']);
  const after = metricValue(await scrapeMetrics(gh), 'gatehouse_gateway_dropped_unauthorized_total', { gateway: gateway.name }) ?? 0;
  assert.equal(after, before + 1);
  // At QoS 0 there is nothing to acknowledge: dropped and counted all the same.
  await run('mosquitto_pub', [...tlsArgs(), '-u', 'dev-0001', '-P', 'pw-one', '-i', 'd1-pub0', '-t', 'devices/dev-0002/cmd', '-m', 'forged-qos0', '-q', '0']);
  await waitFor(async () => ((metricValue(await scrapeMetrics(gh), 'gatehouse_gateway_dropped_unauthorized_total', { gateway: gateway.name }) ?? 0) === after + 1 ? true : undefined));
  // Its own topic passes, to a subscriber on the same gateway; d2 never saw the forged command.
  const sub = run('mosquitto_sub', [...tlsArgs(), '-u', 'dev-0001', '-P', 'pw-one', '-i', 'd1-sub', '-t', 'devices/dev-0001/#', '-C', '1', '-W', '8', '-v', '-q', '1']);
  const d1 = await connect({ protocolVersion: 5, clientId: 'd1-watch', username: 'dev-0001', password: 'pw-one' });
  // The subscriber is ready once a retained message published to it comes back to it.
  await d1.publishAsync('devices/dev-0001/hello', 'hi', { qos: 1, retain: true });
  const out = await sub;
  assert.equal(out.stdout.trim(), 'devices/dev-0001/hello hi');
  await d2.publishAsync('devices/dev-0002/cmd', 'real', { qos: 1 });
  await received(d2Got, 'devices/dev-0002/cmd real');
  assert.deepEqual(d2Got, ['devices/dev-0002/cmd real']);
  await d1.endAsync();
  await d2.endAsync();
});

test('an edit applies to connected devices: a subscription the new rules refuse stops delivering', { timeout: 15_000 }, async () => {
  const opened = await gh.api<GatewayJson>('PATCH', `/gateways/${gateway.id}`, { accessControl: { defaultAction: 'ALLOW', rules: [] } });
  assert.equal(opened.status, 200, JSON.stringify(opened.json));
  const spy = await connect({ clientId: 'd1-spy', username: 'dev-0001', password: 'pw-one' });
  const spyGot = inbox(spy);
  assert.deepEqual(await granted(spy, ['#']), [1]);
  const d2 = await connect({ clientId: 'd2-live', username: 'dev-0002', password: 'pw-two' });
  const d2Got = inbox(d2);
  await granted(d2, ['devices/dev-0002/#']);
  await d2.publishAsync('devices/dev-0002/a', 'open', { qos: 1 });
  await received(spyGot, 'devices/dev-0002/a open');

  const closed = await gh.api<GatewayJson>('PATCH', `/gateways/${gateway.id}`, { accessControl: TEMPLATE });
  assert.equal(closed.status, 200, JSON.stringify(closed.json));
  // The spy's '#' is gone and its next PUBLISH elsewhere is refused, without reconnecting.
  assert.equal(await pubackCode(spy, 'devices/dev-0002/cmd', 'forged'), 0x87);
  await d2.publishAsync('devices/dev-0002/b', 'closed', { qos: 1 });
  await received(d2Got, 'devices/dev-0002/b closed');
  await spy.publishAsync('devices/dev-0001/sentinel', 's', { qos: 1 });
  assert.ok(!spyGot.includes('devices/dev-0002/b closed'), JSON.stringify(spyGot));
  assert.ok(!d2Got.includes('devices/dev-0002/cmd forged'));
  await spy.endAsync();
  await d2.endAsync();
});

test('a will is checked against the publish rules when it is published: one to a denied topic is not delivered, and counted (v3.1.1 and v5)', { timeout: 20_000 }, async () => {
  const opened = await gh.api<GatewayJson>('PATCH', `/gateways/${gateway.id}`, { accessControl: TEMPLATE });
  assert.equal(opened.status, 200, JSON.stringify(opened.json));
  const d2 = await connect({ clientId: 'd2-will-target', username: 'dev-0002', password: 'pw-two' });
  const d2Got = inbox(d2);
  assert.deepEqual(await granted(d2, ['devices/dev-0002/#']), [1]);
  const watcher = await connect({ clientId: 'd1-will-watch', username: 'dev-0001', password: 'pw-one' });
  const watcherGot = inbox(watcher);
  assert.deepEqual(await granted(watcher, ['devices/dev-0001/#']), [1]);
  const refusedBefore = metricValue(await scrapeMetrics(gh), 'gatehouse_gateway_acl_refusals_total', { gateway: gateway.name, access: 'publish' }) ?? 0;

  // dev-0001's will names dev-0002's command topic: the CONNECT passes, the will is refused when sent.
  const forger = await connect({
    protocolVersion: 4, clientId: 'd1-will-forger', username: 'dev-0001', password: 'pw-one',
    will: { topic: 'devices/dev-0002/cmd', payload: Buffer.from('forged-will'), qos: 1, retain: false },
  });
  forger.stream.destroy(); // not a DISCONNECT: the will is due [MQTT-3.1.2-8]
  await waitFor(async () => ((metricValue(await scrapeMetrics(gh), 'gatehouse_gateway_acl_refusals_total', { gateway: gateway.name, access: 'publish' }) ?? 0) > refusedBefore ? true : undefined));
  // Its will under its own topic is delivered (v5).
  const honest = await connect({
    clientId: 'd1-will-honest', username: 'dev-0001', password: 'pw-one',
    will: { topic: 'devices/dev-0001/status', payload: Buffer.from('gone'), qos: 1, retain: false },
  });
  honest.stream.destroy();
  await received(watcherGot, 'devices/dev-0001/status gone');
  // d2's own message after the refused will: once it arrives, the will would have been routed before it.
  await d2.publishAsync('devices/dev-0002/sentinel', 'w', { qos: 1 });
  await received(d2Got, 'devices/dev-0002/sentinel w');
  assert.ok(!d2Got.some((m) => m.includes('forged-will')), `the refused will was delivered: ${JSON.stringify(d2Got)}`);
  await d2.endAsync();
  await watcher.endAsync();
});
