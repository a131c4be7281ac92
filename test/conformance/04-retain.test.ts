/**
 * Retained messages (MQTT 5 §3.3.1.3, §3.8.3.1): store, replace, clear with an empty payload, the
 * RETAIN flag on deliveries, Retain Handling 0/1/2, Retain Available and the retained-message limit.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startTestBroker, type TestBroker } from '../harness/broker.ts';
import { Inbox, client, codeOf, delay, expectDisconnect, isReference, rawClient, uniqueId, uniqueTopic } from './helpers.ts';

let broker: TestBroker;
before(async () => { broker = await startTestBroker(); }, { timeout: 60_000 });
after(async () => { await broker?.close(); }, { timeout: 30_000 });

test('[MQTT-3.3.1-5] [MQTT-3.3.1-9] a retained message is stored and sent with RETAIN 1 to a new subscriber', { timeout: 5_000 }, async (t) => {
  const topic = uniqueTopic('keep');
  const pub = await client(t, broker);
  await pub.publishAsync(topic, 'stored', { qos: 1, retain: true });
  const { raw: sub } = await rawClient(t, broker);
  await sub.subscribe(topic, 1);
  const publish = await sub.next('publish');
  assert.equal(publish.payload.toString(), 'stored');
  assert.equal(publish.retain, true);
  await sub.acknowledge(publish);
  await pub.publishAsync(topic, '', { qos: 1, retain: true });
});

test('[MQTT-3.3.1-8 v3.1.1] [MQTT-3.3.1-9 v3.1.1] v3.1.1: RETAIN 1 on a delivery caused by subscribing, 0 on live deliveries', { timeout: 5_000 }, async (t) => {
  const topic = uniqueTopic('v3');
  const { raw: pub } = await rawClient(t, broker, { protocolVersion: 4 });
  await pub.publish(topic, 'old', { qos: 1, retain: true });
  const { raw: sub } = await rawClient(t, broker, { protocolVersion: 4 });
  await sub.subscribe(topic, 1);
  const retained = await sub.next('publish');
  assert.equal(retained.retain, true);
  await sub.acknowledge(retained);
  await pub.publish(topic, 'live', { qos: 1, retain: true });
  const live = await sub.next('publish');
  assert.equal(live.payload.toString(), 'live');
  assert.equal(live.retain, false, 'matches an established subscription');
  await sub.acknowledge(live);
  await pub.publish(topic, '', { qos: 1, retain: true });
});

test('[MQTT-3.3.1-5] a new retained message replaces the previous one', { timeout: 5_000 }, async (t) => {
  const topic = uniqueTopic('replace');
  const pub = await client(t, broker);
  await pub.publishAsync(topic, 'first', { qos: 1, retain: true });
  await pub.publishAsync(topic, 'second', { qos: 1, retain: true });
  const sub = await client(t, broker);
  const inbox = new Inbox(sub);
  await sub.subscribeAsync(topic, { qos: 1 });
  await inbox.waitForCount(1);
  await delay(100);
  assert.deepEqual(inbox.payloads(), ['second']);
  await pub.publishAsync(topic, '', { qos: 1, retain: true });
});

test('[MQTT-3.3.1-6] [MQTT-3.3.1-7] an empty retained payload clears the topic and is still delivered to current subscribers', { timeout: 5_000 }, async (t) => {
  const topic = uniqueTopic('clear');
  const pub = await client(t, broker);
  await pub.publishAsync(topic, 'gone soon', { qos: 1, retain: true });
  const current = await client(t, broker);
  const currentInbox = new Inbox(current);
  await current.subscribeAsync(topic, { qos: 1 });
  await currentInbox.waitForCount(1);
  await pub.publishAsync(topic, '', { qos: 1, retain: true });
  const [, cleared] = await currentInbox.waitForCount(2);
  assert.equal(cleared?.payload.length, 0, 'the empty message is processed normally');

  const late = await client(t, broker);
  const lateInbox = new Inbox(late);
  await late.subscribeAsync(topic, { qos: 1 });
  await delay(200);
  assert.equal(lateInbox.messages.length, 0, 'no retained message after clearing');
});

test('[MQTT-3.3.1-8] a non-retained PUBLISH neither stores nor replaces the retained message', { timeout: 5_000 }, async (t) => {
  const topic = uniqueTopic('plain');
  const pub = await client(t, broker);
  await pub.publishAsync(topic, 'retained', { qos: 1, retain: true });
  await pub.publishAsync(topic, 'not retained', { qos: 1, retain: false });
  const sub = await client(t, broker);
  const inbox = new Inbox(sub);
  await sub.subscribeAsync(topic, { qos: 1 });
  await inbox.waitForCount(1);
  await delay(100);
  assert.deepEqual(inbox.payloads(), ['retained']);
  await pub.publishAsync(topic, '', { qos: 1, retain: true });
});

test('[MQTT-3.3.1-9] [MQTT-3.8.4-8] a wildcard subscription gets every matching retained message, at the lower of the two QoS', { timeout: 5_000 }, async (t) => {
  const base = uniqueTopic('many');
  const pub = await client(t, broker);
  await pub.publishAsync(`${base}/a`, 'a', { qos: 2, retain: true });
  await pub.publishAsync(`${base}/b/c`, 'c', { qos: 0, retain: true });
  await pub.publishAsync(`${base}x`, 'x', { qos: 1, retain: true });
  const { raw: sub } = await rawClient(t, broker);
  await sub.subscribe(`${base}/#`, 1);
  const got = [await sub.next('publish'), await sub.next('publish')];
  for (const p of got) await sub.acknowledge(p);
  assert.deepEqual(got.map((p) => [p.topic, p.qos]).sort(), [[`${base}/a`, 1], [`${base}/b/c`, 0]]);
  assert.equal((await sub.collect('publish', 200)).length, 0);
  for (const topic of [`${base}/a`, `${base}/b/c`, `${base}x`]) await pub.publishAsync(topic, '', { qos: 1, retain: true });
});

test('[MQTT-4.7.2-1] a retained message on a "$" topic is not sent to a "#" subscription', { timeout: 5_000 }, async (t) => {
  const topic = `$gh${uniqueId('r')}/state`;
  const pub = await client(t, broker);
  await pub.publishAsync(topic, 'dollar', { qos: 1, retain: true });
  const sub = await client(t, broker);
  const inbox = new Inbox(sub);
  await sub.subscribeAsync('#', { qos: 1, rh: 0 });
  await delay(200);
  assert.equal(inbox.messages.filter((m) => m.topic === topic).length, 0);
  await pub.publishAsync(topic, '', { qos: 1, retain: true });
});

test('[MQTT-3.3.1-9] [MQTT-3.3.1-10] [MQTT-3.3.1-11] [MQTT-3.8.4-4] Retain Handling 0 sends on every SUBSCRIBE, 1 only for a new subscription, 2 never', { timeout: 5_000 }, async (t) => {
  const topic = uniqueTopic('rh');
  const pub = await client(t, broker);
  await pub.publishAsync(topic, 'kept', { qos: 1, retain: true });
  const { raw: sub } = await rawClient(t, broker);
  const retainedAfter = async (rh: number): Promise<number> => {
    await sub.subscribe({ topic, qos: 0, rh });
    return (await sub.collect('publish', 150)).length;
  };
  assert.equal(await retainedAfter(2), 0, 'RH 2, new subscription: not sent');
  assert.equal(await retainedAfter(0), 1, 'RH 0, existing subscription: sent again');
  assert.equal(await retainedAfter(0), 1, 'RH 0 again: sent again');
  assert.equal(await retainedAfter(1), 0, 'RH 1, existing subscription: not sent');
  sub.send({ cmd: 'unsubscribe', messageId: sub.nextId(), unsubscriptions: [topic] });
  await sub.next('unsuback');
  assert.equal(await retainedAfter(1), 1, 'RH 1, new subscription: sent');
  await pub.publishAsync(topic, '', { qos: 1, retain: true });
});

test('[MQTT-3.2.2-14] with retain unavailable, CONNACK says so and a retained PUBLISH gets DISCONNECT 0x9A', { timeout: 5_000 }, async (t) => {
  const noRetain = await startTestBroker({ retainAvailable: false });
  t.after(() => noRetain.close());
  const { raw, connack } = await rawClient(t, noRetain);
  assert.equal(connack.properties?.retainAvailable, false);
  raw.send({ cmd: 'publish', topic: uniqueTopic('r'), payload: 'x', qos: 0, dup: false, retain: true });
  await expectDisconnect(t, raw, 0x9a);
});

test('[MQTT-3.3.1-5] [MQTT-3.4.2-1] retained messages beyond maxRetained are refused (PUBACK 0x97) and not stored', {
  timeout: 5_000,
  skip: isReference && 'mosquitto has no limit on the number of retained messages',
}, async (t) => {
  const small = await startTestBroker({ maxRetained: 2 });
  t.after(() => small.close());
  const base = uniqueTopic('cap');
  const { raw: pub } = await rawClient(t, small);
  assert.equal(codeOf((await pub.publish(`${base}/1`, '1', { qos: 1, retain: true })) as { reasonCode?: number }), 0);
  assert.equal(codeOf((await pub.publish(`${base}/2`, '2', { qos: 1, retain: true })) as { reasonCode?: number }), 0);
  assert.equal(codeOf((await pub.publish(`${base}/3`, '3', { qos: 1, retain: true })) as { reasonCode?: number }), 0x97);
  assert.equal(codeOf((await pub.publish(`${base}/1`, '1b', { qos: 1, retain: true })) as { reasonCode?: number }), 0, 'replacing an existing topic is allowed');
  const sub = await client(t, small);
  const inbox = new Inbox(sub);
  await sub.subscribeAsync(`${base}/#`, { qos: 1 });
  await inbox.waitForCount(2);
  await delay(100);
  assert.deepEqual(inbox.payloads().sort(), ['1b', '2']);
});
