/**
 * Sessions (MQTT 5 §3.1.2.4, §3.1.2.11.2, §4.1, §4.4): Clean Start / Clean Session, Session Expiry,
 * queued messages for an offline session (bounded by maxQueued), re-delivery with DUP on resume and
 * session takeover.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startTestBroker, type TestBroker } from '../harness/broker.ts';
import { Inbox, RawClient, client, delay, expectDisconnect, isReference, rawClient, uniqueId, uniqueTopic } from './helpers.ts';

let broker: TestBroker;
before(async () => { broker = await startTestBroker(); }, { timeout: 60_000 });
after(async () => { await broker?.close(); }, { timeout: 30_000 });

const PERSIST = { clean: false, properties: { sessionExpiryInterval: 60 } } as const;

/** Sends DISCONNECT (normal) and waits until the broker has closed the socket. */
async function leave(raw: RawClient, sessionExpiryInterval?: number): Promise<void> {
  if (raw.protocolVersion === 5) {
    raw.send({ cmd: 'disconnect', reasonCode: 0, ...(sessionExpiryInterval !== undefined ? { properties: { sessionExpiryInterval } } : {}) });
  } else {
    raw.send({ cmd: 'disconnect' });
  }
  await raw.expectClosed();
}

test('[MQTT-3.1.2-5] [MQTT-3.2.2-3] [MQTT-3.1.2-23] Clean Start 0 resumes a stored session: Session Present 1, subscriptions kept', { timeout: 5_000 }, async (t) => {
  const clientId = uniqueId('resume');
  const topic = uniqueTopic('resume');
  const { raw: first } = await rawClient(t, broker, { clientId, ...PERSIST });
  await first.subscribe(topic, 1);
  await leave(first);
  const { raw: second, connack } = await rawClient(t, broker, { clientId, ...PERSIST });
  assert.equal(connack.sessionPresent, true);
  const pub = await client(t, broker);
  await pub.publishAsync(topic, 'still subscribed', { qos: 1 });
  const publish = await second.next('publish');
  assert.equal(publish.payload.toString(), 'still subscribed');
  await second.acknowledge(publish);
});

test('[MQTT-3.1.2-6] [MQTT-3.2.2-3] Clean Start 0 without a stored session creates one: Session Present 0', { timeout: 5_000 }, async (t) => {
  const { connack } = await rawClient(t, broker, { clientId: uniqueId('fresh'), ...PERSIST });
  assert.equal(connack.reasonCode, 0);
  assert.equal(connack.sessionPresent, false);
});

test('[MQTT-3.1.2-4] [MQTT-3.2.2-2] Clean Start 1 discards the stored session', { timeout: 5_000 }, async (t) => {
  const clientId = uniqueId('clean');
  const topic = uniqueTopic('clean');
  const { raw: first } = await rawClient(t, broker, { clientId, ...PERSIST });
  await first.subscribe(topic, 1);
  await leave(first);
  const { raw: second, connack } = await rawClient(t, broker, { clientId, clean: true, properties: { sessionExpiryInterval: 60 } });
  assert.equal(connack.sessionPresent, false);
  const pub = await client(t, broker);
  await pub.publishAsync(topic, 'x', { qos: 1 });
  assert.equal((await second.collect('publish', 200)).length, 0, 'the old subscription is gone');
});

test('[MQTT-3.1.2-23] [MQTT-3.1.2.11.2] with Session Expiry 0 the session ends when the connection closes', { timeout: 5_000 }, async (t) => {
  const clientId = uniqueId('zero');
  const { raw: first } = await rawClient(t, broker, { clientId, clean: false });
  await first.subscribe(uniqueTopic('zero'), 1);
  await leave(first);
  const { connack } = await rawClient(t, broker, { clientId, clean: false });
  assert.equal(connack.sessionPresent, false);
});

test('[MQTT-4.1.0-2] the session is discarded after the Session Expiry Interval', { timeout: 30_000 }, async (t) => {
  const clientId = uniqueId('expire');
  const { raw: first } = await rawClient(t, broker, { clientId, clean: false, properties: { sessionExpiryInterval: 1 } });
  await first.subscribe(uniqueTopic('expire'), 1);
  await leave(first);
  await delay(2_500);
  const { connack } = await rawClient(t, broker, { clientId, clean: false, properties: { sessionExpiryInterval: 1 } });
  assert.equal(connack.sessionPresent, false);
});

test('[MQTT-3.14.2.2.2] DISCONNECT can shorten the Session Expiry Interval to 0', { timeout: 5_000 }, async (t) => {
  const clientId = uniqueId('shorten');
  const { raw: first } = await rawClient(t, broker, { clientId, ...PERSIST });
  await first.subscribe(uniqueTopic('shorten'), 1);
  await leave(first, 0);
  const { connack } = await rawClient(t, broker, { clientId, ...PERSIST });
  assert.equal(connack.sessionPresent, false);
});

test('[MQTT-3.14.2.2.2] a non-zero Session Expiry in DISCONNECT after CONNECT with 0 is a Protocol Error (0x82)', { timeout: 5_000 }, async (t) => {
  const { raw } = await rawClient(t, broker, { clientId: uniqueId('lengthen'), clean: true });
  raw.send({ cmd: 'disconnect', reasonCode: 0, properties: { sessionExpiryInterval: 60 } });
  await expectDisconnect(t, raw, 0x82);
});

test('[MQTT-3.1.2-4 v3.1.1] [MQTT-3.1.2-6 v3.1.1] [MQTT-3.2.2-2 v3.1.1] v3.1.1 Clean Session 0 keeps the session; Clean Session 1 discards it', { timeout: 5_000 }, async (t) => {
  const clientId = uniqueId('v3s');
  const topic = uniqueTopic('v3s');
  const { raw: first } = await rawClient(t, broker, { clientId, clean: false, protocolVersion: 4 });
  await first.subscribe(topic, 1);
  await leave(first);
  const pub = await client(t, broker);
  await pub.publishAsync(topic, 'queued', { qos: 1 });
  const { raw: second, connack } = await rawClient(t, broker, { clientId, clean: false, protocolVersion: 4 });
  assert.equal(connack.sessionPresent, true);
  const publish = await second.next('publish');
  assert.equal(publish.payload.toString(), 'queued');
  await second.acknowledge(publish);
  await leave(second);
  const { connack: cleaned } = await rawClient(t, broker, { clientId, clean: true, protocolVersion: 4 });
  assert.equal(cleaned.sessionPresent, false);
});

test('[MQTT-3.1.2-23] [MQTT-4.5.0-1] QoS 1 and 2 messages published while the client is offline are delivered on resume', { timeout: 5_000 }, async (t) => {
  const clientId = uniqueId('offline');
  const topic = uniqueTopic('offline');
  const { raw: first } = await rawClient(t, broker, { clientId, ...PERSIST });
  await first.subscribe(topic, 2);
  await leave(first);
  const pub = await client(t, broker);
  await pub.publishAsync(topic, 'one', { qos: 1 });
  await pub.publishAsync(topic, 'two', { qos: 2 });
  const { raw: second } = await rawClient(t, broker, { clientId, ...PERSIST });
  const got = [await second.next('publish'), await second.next('publish')];
  for (const p of got) await second.acknowledge(p);
  assert.deepEqual(got.map((p) => [p.payload.toString(), p.qos]), [['one', 1], ['two', 2]]);
});

test('[MQTT-4.1] an offline session queues at most maxQueued messages', { timeout: 5_000 }, async (t) => {
  const small = await startTestBroker({ maxQueued: 5 });
  t.after(() => small.close());
  const clientId = uniqueId('bound');
  const topic = uniqueTopic('bound');
  const { raw: first } = await rawClient(t, small, { clientId, ...PERSIST });
  await first.subscribe(topic, 1);
  await leave(first);
  const pub = await client(t, small);
  for (let i = 0; i < 12; i += 1) await pub.publishAsync(topic, `q${i}`, { qos: 1 });
  const { raw: second } = await rawClient(t, small, { clientId, ...PERSIST });
  const got = await second.collect('publish', 400);
  for (const p of got) await second.acknowledge(p);
  assert.equal(got.length, 5);
});

test('[MQTT-4.1] when an offline session\'s queue is full the oldest message is dropped', {
  timeout: 5_000,
  skip: isReference && 'mosquitto drops the newest message when the queue is full',
}, async (t) => {
  const small = await startTestBroker({ maxQueued: 3, queueOverflow: 'drop-oldest' });
  t.after(() => small.close());
  const clientId = uniqueId('oldest');
  const topic = uniqueTopic('oldest');
  const { raw: first } = await rawClient(t, small, { clientId, ...PERSIST });
  await first.subscribe(topic, 1);
  await leave(first);
  const pub = await client(t, small);
  for (let i = 0; i < 6; i += 1) await pub.publishAsync(topic, `q${i}`, { qos: 1 });
  const { raw: second } = await rawClient(t, small, { clientId, ...PERSIST });
  const got = await second.collect('publish', 400);
  for (const p of got) await second.acknowledge(p);
  assert.deepEqual(got.map((p) => p.payload.toString()), ['q3', 'q4', 'q5']);
});

test('[MQTT-4.4.0-1] [MQTT-3.3.1-1] an unacknowledged QoS 1 PUBLISH is re-sent on resume with DUP 1 and the same packet id', { timeout: 5_000 }, async (t) => {
  const clientId = uniqueId('dup1');
  const topic = uniqueTopic('dup1');
  const { raw: first } = await rawClient(t, broker, { clientId, ...PERSIST });
  await first.subscribe(topic, 1);
  const pub = await client(t, broker);
  await pub.publishAsync(topic, 'unacked', { qos: 1 });
  const original = await first.next('publish');
  assert.equal(original.dup, false);
  first.close();
  await first.whenClosed;

  const { raw: second, connack } = await rawClient(t, broker, { clientId, ...PERSIST });
  assert.equal(connack.sessionPresent, true);
  const again = await second.next('publish');
  assert.equal(again.payload.toString(), 'unacked');
  assert.equal(again.dup, true);
  assert.equal(again.messageId, original.messageId);
  await second.acknowledge(again);
  assert.equal((await second.collect('publish', 200)).length, 0, 're-sent once');
});

test('[MQTT-4.4.0-1] [MQTT-4.3.3-6] QoS 2 on resume: an unacknowledged PUBLISH is re-sent with DUP; after PUBREC only PUBREL is re-sent', { timeout: 6_000 }, async (t) => {
  const clientId = uniqueId('dup2');
  const topic = uniqueTopic('dup2');
  const { raw: first } = await rawClient(t, broker, { clientId, ...PERSIST });
  await first.subscribe(topic, 2);
  const pub = await client(t, broker);
  await pub.publishAsync(topic, 'a', { qos: 2 });
  await pub.publishAsync(topic, 'b', { qos: 2 });
  const a = await first.next('publish', (p) => p.payload.toString() === 'a');
  const b = await first.next('publish', (p) => p.payload.toString() === 'b');
  first.send({ cmd: 'pubrec', messageId: a.messageId ?? 0 });
  await first.next('pubrel', (p) => p.messageId === a.messageId);
  first.close();
  await first.whenClosed;

  const { raw: second } = await rawClient(t, broker, { clientId, ...PERSIST });
  const pubrel = await second.next('pubrel');
  assert.equal(pubrel.messageId, a.messageId, 'PUBREL re-sent for the message already received');
  const againB = await second.next('publish');
  assert.equal(againB.payload.toString(), 'b');
  assert.equal(againB.dup, true);
  assert.equal(againB.messageId, b.messageId);
  assert.equal(second.received.filter((p) => p.cmd === 'publish' && p.payload.toString() === 'a').length, 0, 'PUBLISH not re-sent after PUBREC');
  second.send({ cmd: 'pubcomp', messageId: pubrel.messageId ?? 0 });
  await second.acknowledge(againB);
});

test('[MQTT-4.3.3-10] [MQTT-4.4.0-1] inbound QoS 2 state survives a reconnect: PUBREL after resume completes it, delivered once', { timeout: 5_000 }, async (t) => {
  const clientId = uniqueId('in2');
  const topic = uniqueTopic('in2');
  const sub = await client(t, broker);
  const inbox = new Inbox(sub);
  await sub.subscribeAsync(topic, { qos: 2 });
  const { raw: first } = await rawClient(t, broker, { clientId, ...PERSIST });
  first.send({ cmd: 'publish', topic, payload: 'exactly once', qos: 2, dup: false, retain: false, messageId: 12 });
  await first.next('pubrec');
  first.close();
  await first.whenClosed;

  const { raw: second } = await rawClient(t, broker, { clientId, ...PERSIST });
  second.send({ cmd: 'publish', topic, payload: 'exactly once', qos: 2, dup: true, retain: false, messageId: 12 });
  assert.equal((await second.next('pubrec')).messageId, 12);
  second.send({ cmd: 'pubrel', messageId: 12 });
  const pubcomp = await second.next('pubcomp');
  assert.equal(pubcomp.reasonCode ?? 0, 0);
  await inbox.waitForCount(1);
  await delay(200);
  assert.deepEqual(inbox.payloads(), ['exactly once']);
});

test('[MQTT-3.1.4-3] [MQTT-3.1.2-5] a takeover with Clean Start 0 continues the session on the new connection', { timeout: 5_000 }, async (t) => {
  const clientId = uniqueId('cont');
  const topic = uniqueTopic('cont');
  const { raw: first } = await rawClient(t, broker, { clientId, ...PERSIST });
  await first.subscribe(topic, 1);
  const { raw: second, connack } = await rawClient(t, broker, { clientId, ...PERSIST });
  assert.equal(connack.sessionPresent, true);
  await first.expectClosed();
  const pub = await client(t, broker);
  await pub.publishAsync(topic, 'to the new connection', { qos: 1 });
  const publish = await second.next('publish');
  assert.equal(publish.payload.toString(), 'to the new connection');
  await second.acknowledge(publish);
});
