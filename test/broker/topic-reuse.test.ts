/**
 * A connection keeps the topic name of its previous PUBLISH and reuses it when the next one carries the
 * same bytes. Whatever the sequence of topics, every message must arrive under its own topic, and a new
 * topic is still checked: [MQTT-1.5.4-1] ill-formed UTF-8 in a topic name is a malformed packet.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import mqtt from 'mqtt';
import mqttPacket from 'mqtt-packet';
import { startEngine } from '../harness/engine.ts';

test('repeated, alternating, multi-byte and aliased topics all arrive under their own names', { timeout: 10_000 }, async (t) => {
  const server = await startEngine({});
  t.after(() => server.close());
  const url = `mqtt://127.0.0.1:${server.port}`;
  const sub = await mqtt.connectAsync(url, { protocolVersion: 5, reconnectPeriod: 0 });
  t.after(() => sub.end(true));
  const got: string[] = [];
  sub.on('message', (topic, payload) => got.push(`${topic}=${payload.toString()}`));
  await sub.subscribeAsync('#');
  const pub = await mqtt.connectAsync(url, { protocolVersion: 5, reconnectPeriod: 0, properties: { topicAliasMaximum: 0 } });
  t.after(() => pub.end(true));
  const sent: string[] = [];
  const send = async (topic: string, payload: string, opts: mqtt.IClientPublishOptions = {}) => {
    sent.push(`${topic}=${payload}`);
    await pub.publishAsync(topic, payload, { qos: 1, ...opts });
  };
  await send('a/b', '1');
  await send('a/b', '2');
  await send('a/c', '3'); // same length, one byte differs
  await send('a/b', '4');
  await send('a/bb', '5'); // longer, same prefix
  await send('zähler/°C', '6');
  await send('zähler/°C', '7');
  await send('a/b', '8', { properties: { topicAlias: 1 } }); // sets alias 1 (with the name)
  // Alias only, empty name: resolved by the alias table, never taken for the previous topic.
  sent.push('a/b=9');
  await pub.publishAsync('', '9', { qos: 1, properties: { topicAlias: 1 } });
  await send('a/b', '10', { properties: { contentType: 'text/plain' } }); // v5 properties: generic decoder
  const deadline = Date.now() + 3000;
  while (got.length < sent.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(got, sent);
});

test('[MQTT-1.5.4-1] a topic with ill-formed UTF-8 after a valid one is still refused', { timeout: 10_000 }, async (t) => {
  const server = await startEngine({});
  t.after(() => server.close());
  const broker = server.engine!;
  const socket = net.connect(server.port, '127.0.0.1');
  t.after(() => socket.destroy());
  await once(socket, 'connect');
  socket.resume(); // read (and drop) the CONNACK, so the broker's FIN is seen
  const frame = (p: mqttPacket.Packet) => mqttPacket.generate(p, { protocolVersion: 4 });
  socket.write(frame({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: 'utf8-check', clean: true, keepalive: 30 }));
  socket.write(frame({ cmd: 'publish', topic: 'ok/é', payload: Buffer.from('x'), qos: 0, retain: false, dup: false }));
  // Same length as 'ok/é' (5 bytes), last two bytes an invalid sequence.
  const bad = frame({ cmd: 'publish', topic: 'ok/ab', payload: Buffer.from('y'), qos: 0, retain: false, dup: false });
  bad[2 + 2 + 3] = 0xc3;
  bad[2 + 2 + 4] = 0x28;
  socket.write(bad);
  const closed = once(socket, 'close');
  const deadline = setTimeout(() => socket.destroy(new Error('not closed')), 3000);
  await closed;
  clearTimeout(deadline);
  assert.equal(broker.stats.protocolErrors, 1);
});
