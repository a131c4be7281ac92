/**
 * Issue 17: the platform's copy is as durable as the PUBACK. dist/main.mjs (what `npm start` runs)
 * with data parsing and a webhook on; two real MQTT.js devices publish QoS 1 and QoS 2 messages
 * without waiting for each other; the moment the last acknowledgement arrives the process is killed
 * with SIGKILL (no shutdown code runs). After a restart on the same data directory every acknowledged
 * message is in GET /api/v1/messages (parsed), its property update is on the device, and the webhook
 * receives every one of them (from the outbox, or replayed from the journal into it).
 * [MQTT-4.3.2-2] [MQTT-4.3.3-2]: once the PUBACK / PUBREC is sent the sender may forget the message.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import mqtt from 'mqtt';
import { getPki } from '../harness/pki.ts';
import { freePort, removeDataDir } from '../harness/gatehouse.ts';
import { startGatehouseProcess, type GatehouseProcess } from '../harness/gatehouse-process.ts';
import { waitFor, type GatewayJson, type MessageJson } from './platform-support.ts';

/** Every message becomes a property post with one property of its own, so lost updates show. */
const SCRIPT = `function transformPayload(topic, bytes) {
  const text = String.fromCharCode.apply(null, Array.from(bytes));
  const params = {};
  params['p_' + text.replace(/[^A-Za-z0-9]/g, '_')] = text;
  return { method: 'thing.event.property.post', params: params };
}`;

const PER_QOS = 40;

test('every QoS 1 and QoS 2 message acknowledged before a kill -9 is in the store, on the device and delivered to the webhook after restart', { timeout: 180_000 }, async (t) => {
  const pki = await getPki();
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'gh-crash-'));
  let gh: GatehouseProcess | undefined;
  t.after(async () => {
    await gh?.stop();
    await removeDataDir(dataDir);
  });

  // A receiver that refuses everything until the restart, so no delivery leaves the outbox before the kill.
  let accepting = false;
  const delivered = new Set<string>();
  const receiver = https.createServer({ cert: pki.server.chainPem, key: pki.server.keyPem }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (!accepting) return void res.writeHead(503).end();
      const body = JSON.parse(Buffer.concat(chunks).toString()) as { type: string; data: { payload: string } };
      if (body.type === 'message') delivered.add(Buffer.from(body.data.payload, 'base64').toString());
      res.writeHead(200).end();
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    receiver.closeAllConnections();
    receiver.close();
  });

  const first = await startGatehouseProcess(dataDir);
  gh = first;
  const created = await first.api<GatewayJson>('POST', '/gateways', {
    name: 'crash_fleet', port: await freePort(), authType: 'ONE_PARTY',
    certificates: { serverCertificateChain: pki.server.chainPem, serverPrivateKey: pki.server.keyPem },
    dataParsing: { enabled: true, script: SCRIPT },
  });
  assert.equal(created.status, 201, JSON.stringify(created.json));
  const gw = created.json;
  for (const name of ['dev-q1', 'dev-q2']) {
    const r = await first.api('POST', `/products/${gw.productKey}/devices`, { username: name, password: `pw-${name}` });
    assert.equal(r.status, 201, JSON.stringify(r.json));
  }
  const hook = await first.api('POST', '/webhooks', {
    url: `https://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`, caCertificate: pki.root.certPem, gatewayId: gw.id, eventTypes: ['message'],
  });
  assert.equal(hook.status, 201, JSON.stringify(hook.json));

  const connect = (name: string): Promise<mqtt.MqttClient> => new Promise((resolve, reject) => {
    const c = mqtt.connect({
      host: '127.0.0.1', port: gw.port, protocol: 'mqtts', ca: pki.root.certPem, servername: 'localhost', reconnectPeriod: 0,
      connectTimeout: 5000, protocolVersion: 4, clientId: `c-${name}`, username: name, password: `pw-${name}`,
    });
    c.once('connect', () => resolve(c));
    c.once('error', reject);
  });
  const [q1, q2] = await Promise.all([connect('dev-q1'), connect('dev-q2')]);
  const publish = (c: mqtt.MqttClient, qos: 1 | 2, payload: string): Promise<void> => new Promise((resolve, reject) => {
    c.publish(`crash/${qos}`, payload, { qos }, (err) => (err ? reject(err) : resolve()));
  });
  // Warm-up: sessions open, the script compiled, the store idle (a read writes what is buffered).
  await Promise.all([publish(q1, 1, 'warm-1'), publish(q2, 2, 'warm-2')]);
  await waitFor('the warm-up messages stored', async () => {
    const r = await first.api<{ items: MessageJson[] }>('GET', `/messages?gatewayId=${gw.id}&limit=10`);
    return r.json.items.length >= 2 ? true : undefined;
  });
  const expected: string[] = [];
  const acks: Promise<void>[] = [];
  for (let i = 0; i < PER_QOS; i++) {
    for (const [client, qos] of [[q1, 1], [q2, 2]] as const) {
      const payload = `q${qos}-${i}`;
      expected.push(payload);
      acks.push(publish(client, qos, payload));
    }
  }
  await Promise.all(acks); // PUBACK for QoS 1; PUBREC (then PUBCOMP) for QoS 2
  await first.kill9();
  q1.end(true);
  q2.end(true);

  accepting = true;
  gh = await startGatehouseProcess(dataDir);
  const proc = gh;
  const stored = await proc.api<{ items: MessageJson[] }>('GET', `/messages?gatewayId=${gw.id}&limit=1000`);
  assert.equal(stored.status, 200);
  const storedPayloads = stored.json.items.map((m) => Buffer.from(m.payload, 'base64').toString());
  assert.deepEqual(expected.filter((p) => !storedPayloads.includes(p)), [], 'acknowledged messages missing from the store');
  for (const m of stored.json.items) assert.equal(m.parseError, null, `${m.topic}: ${m.parseError}`);

  for (const [device, qos] of [['dev-q1', 1], ['dev-q2', 2]] as const) {
    const properties = await waitFor(`${device}'s properties`, async () => {
      const d = await proc.api<{ properties: Record<string, { value: unknown }> }>('GET', `/products/${gw.productKey}/devices/${device}`);
      return Object.keys(d.json.properties).length >= PER_QOS ? d.json.properties : undefined;
    }, 20_000).catch(async () => (await proc.api<{ properties: Record<string, unknown> }>('GET', `/products/${gw.productKey}/devices/${device}`)).json.properties);
    const missing = expected.filter((p) => p.startsWith(`q${qos}-`) && properties[`p_${p.replace(/-/g, '_')}`] === undefined);
    assert.deepEqual(missing, [], `property updates of ${device} missing`);
  }

  await waitFor('every acknowledged message at the webhook', () => (expected.every((p) => delivered.has(p)) ? true : undefined), 30_000)
    .catch(() => assert.deepEqual(expected.filter((p) => !delivered.has(p)), [], 'acknowledged messages never delivered to the webhook'));
});
