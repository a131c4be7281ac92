/**
 * `Broker.deliverTo`: a message from outside MQTT to ONE client, through its matching subscription
 * at the lower of the asked and granted QoS, with the client's PUBACK of that very packet reported.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import mqtt from 'mqtt';
import mqttPacket from 'mqtt-packet';
import type { Broker } from '../../src/broker/index.ts';
import { startEngine } from '../harness/engine.ts';
import type { TestBroker } from '../harness/broker.ts';

let server: TestBroker;
let engine: Broker;
const clients: mqtt.MqttClient[] = [];

before(async () => {
  server = await startEngine({});
  engine = server.engine!;
}, { timeout: 60_000 });

after(async () => {
  for (const c of clients) c.end(true);
  await server.close();
}, { timeout: 30_000 });

async function connect(clientId: string, options: mqtt.IClientOptions = {}): Promise<mqtt.MqttClient> {
  const c = await mqtt.connectAsync(`mqtt://127.0.0.1:${server.port}`, { clientId, reconnectPeriod: 0, protocolVersion: 5, ...options });
  clients.push(c);
  return c;
}

test('QoS 1 resolves "acked" (reason code 0) on the PUBACK; only the addressed client gets it, not other subscribers', { timeout: 5_000 }, async () => {
  const target = await connect('target');
  const other = await connect('other');
  await target.subscribeAsync('cmd/#', { qos: 1 });
  await other.subscribeAsync('cmd/#', { qos: 1 });
  const heardByOther: string[] = [];
  other.on('message', (t) => heardByOther.push(t));
  const got = new Promise<mqtt.IPublishPacket>((resolve) => target.once('message', (_t, _p, packet) => resolve(packet)));
  assert.deepEqual(await engine.deliverTo('target', { topic: 'cmd/reboot', payload: Buffer.from('now'), qos: 1 }), { outcome: 'acked', reasonCode: 0 });
  const packet = await got;
  assert.equal(packet.qos, 1);
  assert.equal(packet.payload.toString(), 'now');
  await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(heardByOther, []);
});

test('granted QoS 0 downgrades the delivery ("sent"); no matching subscription, unknown or offline client are reported', { timeout: 5_000 }, async () => {
  const c = await connect('qos0-only');
  await c.subscribeAsync('low/+', { qos: 0 });
  const got = new Promise<number>((resolve) => c.once('message', (_t, _p, packet) => resolve(packet.qos)));
  assert.deepEqual(await engine.deliverTo('qos0-only', { topic: 'low/x', payload: Buffer.alloc(0), qos: 1 }), { outcome: 'sent' });
  assert.equal(await got, 0);
  assert.deepEqual(await engine.deliverTo('qos0-only', { topic: 'elsewhere', payload: Buffer.alloc(0), qos: 1 }), { outcome: 'not_subscribed' });
  assert.deepEqual(await engine.deliverTo('nobody', { topic: 'low/x', payload: Buffer.alloc(0), qos: 0 }), { outcome: 'offline' });
  const kept = await connect('kept', { clean: false, properties: { sessionExpiryInterval: 60 } });
  await kept.subscribeAsync('low/+', { qos: 1 });
  await kept.endAsync();
  assert.deepEqual(await engine.deliverTo('kept', { topic: 'low/x', payload: Buffer.alloc(0), qos: 1 }), { outcome: 'offline' });
});

test('a client that never acknowledges: "timeout"', { timeout: 5_000 }, async () => {
  // A raw MQTT client (mqtt-packet over a socket) that subscribes and then never sends PUBACK.
  const socket = net.connect(server.port, '127.0.0.1');
  after(() => socket.destroy(), { timeout: 30_000 });
  const parser = mqttPacket.parser({ protocolVersion: 4 });
  const seen: string[] = [];
  parser.on('packet', (p: mqttPacket.Packet) => seen.push(p.cmd));
  socket.on('data', (d) => parser.parse(d));
  socket.write(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: 'mute', clean: true, keepalive: 60 }));
  socket.write(mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'mute/#', qos: 1 }] }));
  while (!seen.includes('suback')) await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(await engine.deliverTo('mute', { topic: 'mute/x', payload: Buffer.from('?'), qos: 1 }, 200), { outcome: 'timeout' });
  assert.ok(seen.includes('publish'), 'the PUBLISH was sent; only its PUBACK is missing');
});

test('a v5 client that refuses the message (PUBACK 0x87, PUBREC 0x80): "refused" with its reason code, not "acked" or a timeout', { timeout: 5_000 }, async () => {
  // MQTT.js answers with the code we give it; the engine must tell the platform the device said no (MQTT 5 §3.4.2.1).
  const refusing = await connect('refusing', { customHandleAcks: (_topic, _message, packet: { qos: number }, done) => done(packet.qos === 1 ? 0x87 : 0x80) });
  await refusing.subscribeAsync('deny/#', { qos: 2 });
  assert.deepEqual(await engine.deliverTo('refusing', { topic: 'deny/a', payload: Buffer.from('x'), qos: 1 }, 3_000), { outcome: 'refused', reasonCode: 0x87 });
  // QoS 2: a PUBREC of 0x80 or above ends the flow there, no PUBREL [MQTT-4.3.3-4]; whoever waits hears it.
  assert.deepEqual(await engine.deliverTo('refusing', { topic: 'deny/b', payload: Buffer.from('y'), qos: 2 }, 3_000), { outcome: 'refused', reasonCode: 0x80 });
  // The refused flows freed their packet ids: an accepted one still goes through on the same session.
  const accepting = await connect('accepting');
  await accepting.subscribeAsync('ok/#', { qos: 2 });
  assert.deepEqual(await engine.deliverTo('accepting', { topic: 'ok/c', payload: Buffer.from('z'), qos: 2 }, 3_000), { outcome: 'acked', reasonCode: 0 });
});

test('a 3.1.1 client has no reason codes: its PUBACK is "acked" with code 0', { timeout: 5_000 }, async () => {
  const old = await connect('old-311', { protocolVersion: 4 });
  await old.subscribeAsync('v4/#', { qos: 1 });
  assert.deepEqual(await engine.deliverTo('old-311', { topic: 'v4/x', payload: Buffer.from('1'), qos: 1 }, 3_000), { outcome: 'acked', reasonCode: 0 });
});

test('a clean-start client that goes away before its PUBACK: "dropped" when its session ends, not a wait for the timeout', { timeout: 10_000 }, async () => {
  const socket = net.connect(server.port, '127.0.0.1');
  const parser = mqttPacket.parser({ protocolVersion: 4 });
  const seen: string[] = [];
  parser.on('packet', (p: mqttPacket.Packet) => {
    seen.push(p.cmd);
    if (p.cmd === 'publish') socket.destroy(); // gone with the message, never acknowledged
  });
  socket.on('data', (d) => parser.parse(d));
  socket.write(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: 'vanishing', clean: true, keepalive: 60 }));
  socket.write(mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'gone/#', qos: 1 }] }));
  while (!seen.includes('suback')) await new Promise((r) => setTimeout(r, 10));
  // 'timeout' (what it said before) only comes after the 8 s; the session's end answers first.
  assert.deepEqual(await engine.deliverTo('vanishing', { topic: 'gone/x', payload: Buffer.from('?'), qos: 1 }, 8_000), { outcome: 'dropped' });
});
