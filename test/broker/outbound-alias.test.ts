/**
 * [MQTT-3.1.2-24] [MQTT-3.3.2-?] A message dropped because it is larger than the client's Maximum Packet
 * Size must not leave behind an outbound topic alias the client never saw.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import mqtt from 'mqtt';
import { startEngine } from '../harness/engine.ts';

test('an oversized message does not establish a topic alias; the next one on that topic arrives whole', { timeout: 10_000 }, async (t) => {
  const server = await startEngine({});
  t.after(() => server.close());
  const broker = server.engine!;
  const url = `mqtt://127.0.0.1:${server.port}`;
  const sub = await mqtt.connectAsync(url, {
    protocolVersion: 5, reconnectPeriod: 0, properties: { topicAliasMaximum: 5, maximumPacketSize: 200 },
  });
  t.after(() => sub.end(true));
  const got: string[] = [];
  const errors: string[] = [];
  sub.on('message', (topic, payload) => got.push(`${topic}=${payload.length}`));
  sub.on('error', (e) => errors.push(e.message));
  await sub.subscribeAsync('big/#');
  const pub = await mqtt.connectAsync(url, { protocolVersion: 5, reconnectPeriod: 0 });
  t.after(() => pub.end(true));
  await pub.publishAsync('big/one', Buffer.alloc(500), { qos: 1 }); // too large for the subscriber: dropped
  await pub.publishAsync('big/one', Buffer.alloc(10), { qos: 1 });
  await pub.publishAsync('big/one', Buffer.alloc(11), { qos: 1 }); // now through the alias
  const deadline = Date.now() + 3000;
  while (got.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(got, ['big/one=10', 'big/one=11']);
  assert.deepEqual(errors, []);
  assert.equal(sub.connected, true);
  assert.equal(broker.stats.droppedTooLarge, 1);
});
