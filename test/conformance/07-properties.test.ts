/**
 * MQTT 5 properties (§3.3.2.3, §3.1.2.11, §3.2.2.3, §4.9): message properties passed through unchanged,
 * message expiry, payload format, topic aliases in both directions, Receive Maximum in both
 * directions, Maximum Packet Size in both directions, subscription identifiers, Request Problem
 * Information.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { Packet } from 'mqtt-packet';
import { startTestBroker, type TestBroker } from '../harness/broker.ts';
import { Inbox, client, codeOf, delay, expectDisconnect, isReference, rawClient, uniqueId, uniqueTopic } from './helpers.ts';

let broker: TestBroker;
before(async () => { broker = await startTestBroker(); }, { timeout: 60_000 });
after(async () => { await broker?.close(); }, { timeout: 30_000 });

const PERSIST = { clean: false, properties: { sessionExpiryInterval: 60 } } as const;

test('[MQTT-3.3.2-4] [MQTT-3.3.2-15] [MQTT-3.3.2-16] [MQTT-3.3.2-17] [MQTT-3.3.2-18] [MQTT-3.3.2-20] message properties reach subscribers unchanged', { timeout: 5_000 }, async (t) => {
  const topic = uniqueTopic('props');
  const { raw: sub } = await rawClient(t, broker);
  await sub.subscribe(topic, 1);
  const { raw: pub } = await rawClient(t, broker);
  const properties = {
    payloadFormatIndicator: true,
    contentType: 'text/plain; charset=utf-8',
    responseTopic: `${topic}/reply`,
    correlationData: Buffer.from([0, 1, 2, 255]),
    userProperties: { b: '2', a: ['1', 'one'], c: 'ü €' },
  };
  await pub.publish(topic, 'héllo', { qos: 1, properties });
  const publish = await sub.next('publish');
  await sub.acknowledge(publish);
  const p = publish.properties ?? {};
  assert.equal(p.payloadFormatIndicator, true);
  assert.equal(p.contentType, properties.contentType);
  assert.equal(p.responseTopic, properties.responseTopic);
  assert.deepEqual(p.correlationData, properties.correlationData);
  assert.deepEqual({ ...p.userProperties }, properties.userProperties);
  assert.deepEqual(Object.keys(p.userProperties ?? {}), ['b', 'a', 'c'], 'order kept');
  assert.equal(publish.payload.toString(), 'héllo');
});

test('[MQTT-3.3.2-6] the Message Expiry Interval is forwarded minus the time the message waited', { timeout: 30_000 }, async (t) => {
  const clientId = uniqueId('exp');
  const topic = uniqueTopic('exp');
  const { raw: first } = await rawClient(t, broker, { clientId, ...PERSIST });
  await first.subscribe(topic, 1);
  first.send({ cmd: 'disconnect', reasonCode: 0 });
  await first.expectClosed();
  const pub = await client(t, broker);
  await pub.publishAsync(topic, 'ttl', { qos: 1, properties: { messageExpiryInterval: 30 } });
  await delay(2_100);
  const { raw: second } = await rawClient(t, broker, { clientId, ...PERSIST });
  const publish = await second.next('publish');
  await second.acknowledge(publish);
  const left = publish.properties?.messageExpiryInterval;
  assert.ok(left !== undefined && left <= 28 && left >= 26, `remaining expiry ${left}`);
});

test('[MQTT-3.3.2-5] a message that expires while queued is not delivered', { timeout: 30_000 }, async (t) => {
  const clientId = uniqueId('gone');
  const topic = uniqueTopic('gone');
  const { raw: first } = await rawClient(t, broker, { clientId, ...PERSIST });
  await first.subscribe(topic, 1);
  first.send({ cmd: 'disconnect', reasonCode: 0 });
  await first.expectClosed();
  const pub = await client(t, broker);
  await pub.publishAsync(topic, 'short-lived', { qos: 1, properties: { messageExpiryInterval: 1 } });
  await pub.publishAsync(topic, 'forever', { qos: 1 });
  await delay(2_100);
  const { raw: second } = await rawClient(t, broker, { clientId, ...PERSIST });
  const got = await second.collect('publish', 300);
  for (const p of got) await second.acknowledge(p);
  assert.deepEqual(got.map((p) => p.payload.toString()), ['forever']);
});

test('[MQTT-3.3.2-5] an expired retained message is not sent to new subscribers', { timeout: 30_000 }, async (t) => {
  const topic = uniqueTopic('rexp');
  const pub = await client(t, broker);
  await pub.publishAsync(topic, 'stale', { qos: 1, retain: true, properties: { messageExpiryInterval: 1 } });
  await delay(2_100);
  const sub = await client(t, broker);
  const inbox = new Inbox(sub);
  await sub.subscribeAsync(topic, { qos: 1 });
  await delay(200);
  assert.equal(inbox.messages.length, 0);
});

test('[MQTT-3.3.2.3.2] a payload that is not UTF-8 with Payload Format Indicator 1 is refused with 0x99 and not forwarded', {
  timeout: 5_000,
  skip: isReference && 'mosquitto 2.0.11 does not check the payload format (the check is a MAY)',
}, async (t) => {
  const topic = uniqueTopic('pfi');
  const sub = await client(t, broker);
  const inbox = new Inbox(sub);
  await sub.subscribeAsync(topic, { qos: 1 });
  const { raw: pub } = await rawClient(t, broker);
  pub.send({ cmd: 'publish', topic, payload: Buffer.from([0xc3, 0x28]), qos: 1, dup: false, retain: false, messageId: 1, properties: { payloadFormatIndicator: true } });
  const outcome = await Promise.race([pub.next('puback'), pub.closedWith()]);
  assert.equal(outcome?.reasonCode, 0x99, `PUBACK or DISCONNECT 0x99 (got ${outcome?.cmd ?? 'a bare close'})`);
  await delay(200);
  assert.equal(inbox.messages.length, 0);
});

test('[MQTT-3.3.2-14] a Response Topic with a wildcard is a Protocol Error (DISCONNECT 0x82)', {
  timeout: 5_000,
  skip: isReference && 'mosquitto 2.0.11 keeps the connection open',
}, async (t) => {
  const { raw } = await rawClient(t, broker);
  raw.send({ cmd: 'publish', topic: uniqueTopic('rt'), payload: 'x', qos: 0, dup: false, retain: false, properties: { responseTopic: 'replies/#' } });
  await expectDisconnect(t, raw, 0x82);
});

// -- Topic aliases, client to server ------------------------------------------------------------

test('[MQTT-3.3.2-12] the server accepts Topic Aliases up to the Topic Alias Maximum it sent, and remapping', { timeout: 5_000 }, async (t) => {
  const aliased = await startTestBroker({ topicAliasMaximum: 3 });
  t.after(() => aliased.close());
  const base = uniqueTopic('alias');
  const sub = await client(t, aliased);
  const inbox = new Inbox(sub);
  await sub.subscribeAsync(`${base}/#`, { qos: 1 });
  const { raw: pub, connack } = await rawClient(t, aliased);
  assert.equal(connack.properties?.topicAliasMaximum, 3);
  await pub.publish(`${base}/one`, '1', { qos: 1, properties: { topicAlias: 3 } });
  await pub.publish('', '2', { qos: 1, properties: { topicAlias: 3 } });
  await pub.publish(`${base}/two`, '3', { qos: 1, properties: { topicAlias: 3 } });
  await pub.publish('', '4', { qos: 1, properties: { topicAlias: 3 } });
  await inbox.waitForCount(4);
  assert.deepEqual(inbox.messages.map((m) => [m.topic, m.payload.toString()]), [
    [`${base}/one`, '1'], [`${base}/one`, '2'], [`${base}/two`, '3'], [`${base}/two`, '4'],
  ]);
});

test('[MQTT-3.3.2.3.4] [MQTT-3.2.2-17] a Topic Alias above the Topic Alias Maximum gets DISCONNECT 0x94', { timeout: 5_000 }, async (t) => {
  const aliased = await startTestBroker({ topicAliasMaximum: 2 });
  t.after(() => aliased.close());
  const { raw } = await rawClient(t, aliased);
  raw.send({ cmd: 'publish', topic: uniqueTopic('a'), payload: 'x', qos: 0, dup: false, retain: false, properties: { topicAlias: 3 } });
  await expectDisconnect(t, raw, 0x94);
});

test('[MQTT-3.3.2-8] Topic Alias 0 gets DISCONNECT 0x94 (Topic Alias invalid)', { timeout: 5_000 }, async (t) => {
  const { raw } = await rawClient(t, broker);
  // mqtt-packet will not encode alias 0: PUBLISH QoS 0, topic "a", properties: Topic Alias (0x23) = 0.
  raw.sendBytes([0x30, 0x07, 0x00, 0x01, 0x61, 0x03, 0x23, 0x00, 0x00]);
  await expectDisconnect(t, raw, 0x94, { mosquitto: 0x81 });
});

test('[MQTT-3.2.2-18] with Topic Alias Maximum 0 any Topic Alias gets DISCONNECT 0x94', { timeout: 5_000 }, async (t) => {
  const none = await startTestBroker({ topicAliasMaximum: 0 });
  t.after(() => none.close());
  const { raw, connack } = await rawClient(t, none);
  assert.ok((connack.properties?.topicAliasMaximum ?? 0) === 0);
  raw.send({ cmd: 'publish', topic: uniqueTopic('a'), payload: 'x', qos: 0, dup: false, retain: false, properties: { topicAlias: 1 } });
  await expectDisconnect(t, raw, 0x94);
});

test('[MQTT-3.3.2.3.4] an empty topic with an alias that was never set is a Protocol Error (DISCONNECT 0x82)', { timeout: 5_000 }, async (t) => {
  const { raw } = await rawClient(t, broker);
  raw.send({ cmd: 'publish', topic: '', payload: 'x', qos: 0, dup: false, retain: false, properties: { topicAlias: 1 } });
  await expectDisconnect(t, raw, 0x82);
});

test('[MQTT-3.3.2-7] topic aliases do not carry over to a new connection', { timeout: 5_000 }, async (t) => {
  const clientId = uniqueId('carry');
  const { raw: first } = await rawClient(t, broker, { clientId, ...PERSIST });
  await first.publish(uniqueTopic('carry'), 'set', { qos: 1, properties: { topicAlias: 1 } });
  first.send({ cmd: 'disconnect', reasonCode: 0 });
  await first.expectClosed();
  const { raw: second } = await rawClient(t, broker, { clientId, ...PERSIST });
  second.send({ cmd: 'publish', topic: '', payload: 'x', qos: 0, dup: false, retain: false, properties: { topicAlias: 1 } });
  await expectDisconnect(t, second, 0x82);
});

// -- Topic aliases, server to client ------------------------------------------------------------

/** Resolves the topics of PUBLISHes that may use aliases; fails on an alias outside 1…max. */
function resolveAliases(packets: Packet[], max: number): string[] {
  const aliases = new Map<number, string>();
  const topics: string[] = [];
  for (const p of packets) {
    if (p.cmd !== 'publish') continue;
    const alias = p.properties?.topicAlias;
    if (alias === undefined) { topics.push(p.topic); continue; }
    assert.ok(alias >= 1 && alias <= max, `alias ${alias} within 1…${max}`);
    if (p.topic.length > 0) aliases.set(alias, p.topic);
    const topic = aliases.get(alias);
    assert.ok(topic !== undefined, `alias ${alias} was set before use`);
    topics.push(topic);
  }
  return topics;
}

test('[MQTT-3.3.2-11] [MQTT-3.1.2-26] Topic Aliases the server sends stay within the client\'s Topic Alias Maximum and resolve correctly', { timeout: 5_000 }, async (t) => {
  const base = uniqueTopic('out');
  const { raw: sub } = await rawClient(t, broker, { properties: { topicAliasMaximum: 2 } });
  await sub.subscribe(`${base}/#`, 0);
  const pub = await client(t, broker);
  const expected: string[] = [];
  for (let round = 0; round < 3; round += 1) {
    for (const leaf of ['a', 'b', 'c', 'd']) {
      expected.push(`${base}/${leaf}`);
      await pub.publishAsync(`${base}/${leaf}`, `${base}/${leaf}`, { qos: 1 });
    }
  }
  const got = [];
  for (let i = 0; i < expected.length; i += 1) got.push(await sub.next('publish'));
  assert.deepEqual(resolveAliases(got, 2), expected, 'resolved topics, in publish order');
  assert.deepEqual(got.map((p) => p.payload.toString()), expected, 'each payload names its own topic');
});

test('[MQTT-3.1.2-27] without a Topic Alias Maximum from the client the server sends no Topic Alias', { timeout: 5_000 }, async (t) => {
  const topic = uniqueTopic('noalias');
  const { raw: sub } = await rawClient(t, broker);
  await sub.subscribe(topic, 0);
  const pub = await client(t, broker);
  for (let i = 0; i < 5; i += 1) await pub.publishAsync(topic, `n${i}`, { qos: 1 });
  for (let i = 0; i < 5; i += 1) {
    const p = await sub.next('publish');
    assert.equal(p.properties?.topicAlias, undefined);
    assert.equal(p.topic, topic);
  }
});

// -- Receive Maximum ------------------------------------------------------------------------------

test('[MQTT-3.3.4-9] [MQTT-4.9.0-2] [MQTT-3.3.4-10] [MQTT-4.9.0-3] the server never has more unacknowledged QoS 1/2 PUBLISHes than the client\'s Receive Maximum', {
  timeout: 20_000,
  skip: isReference && 'mosquitto 2.0.11 refills two slots after one acknowledgement (three in flight with Receive Maximum 2)',
}, async (t) => {
  const topic = uniqueTopic('rm');
  const { raw: sub } = await rawClient(t, broker, { properties: { receiveMaximum: 2 } });
  await sub.subscribe(topic, 2);
  const pub = await client(t, broker);
  for (let i = 0; i < 4; i += 1) await pub.publishAsync(topic, `one${i}`, { qos: 1 });
  for (let i = 0; i < 2; i += 1) await pub.publishAsync(topic, `two${i}`, { qos: 2 });

  const first = await sub.collect('publish', 300);
  assert.deepEqual(first.map((p) => p.payload.toString()), ['one0', 'one1'], 'two in flight');
  sub.send({ cmd: 'pingreq' });
  await sub.next('pingresp');
  assert.ok((await sub.subscribe(uniqueTopic('rm-other'), 0)).length === 1, 'SUBACK while the quota is zero');

  sub.send({ cmd: 'puback', messageId: first[0]?.messageId ?? 0 });
  assert.deepEqual((await sub.collect('publish', 300)).map((p) => p.payload.toString()), ['one2'], 'one PUBACK, one more');
  sub.send({ cmd: 'puback', messageId: first[1]?.messageId ?? 0 });
  const [one3] = await sub.collect('publish', 300);
  assert.equal(one3?.payload.toString(), 'one3');
  sub.send({ cmd: 'puback', messageId: one3?.messageId ?? 0 });
  const [two0] = await sub.collect('publish', 300);
  assert.equal(two0?.payload.toString(), 'two0');
  assert.equal(two0?.qos, 2);
  sub.send({ cmd: 'pubrec', messageId: two0?.messageId ?? 0 });
  await sub.next('pubrel');
  assert.equal((await sub.collect('publish', 300)).length, 0, 'PUBREC does not free a slot; one2 and two0 still count');
});

test('[MQTT-3.3.4-7] [MQTT-3.2.2.3.3] a client that exceeds the server\'s Receive Maximum gets DISCONNECT 0x93', {
  timeout: 5_000,
  skip: isReference && 'mosquitto 2.0.11 answers PUBREC 0x97 and keeps the connection open',
}, async (t) => {
  const small = await startTestBroker({ receiveMaximum: 2 });
  t.after(() => small.close());
  const topic = uniqueTopic('over');
  const { raw, connack } = await rawClient(t, small);
  assert.equal(connack.properties?.receiveMaximum, 2);
  for (const messageId of [1, 2]) {
    raw.send({ cmd: 'publish', topic, payload: 'x', qos: 2, dup: false, retain: false, messageId });
    await raw.next('pubrec', (p) => p.messageId === messageId);
  }
  raw.send({ cmd: 'publish', topic, payload: 'x', qos: 2, dup: false, retain: false, messageId: 3 });
  await expectDisconnect(t, raw, 0x93);
});

// -- Maximum Packet Size ----------------------------------------------------------------------------

test('[MQTT-3.1.2-24] [MQTT-3.1.2-25] a message larger than the client\'s Maximum Packet Size is not sent to it; others get it', { timeout: 5_000 }, async (t) => {
  const topic = uniqueTopic('mps');
  const { raw: small } = await rawClient(t, broker, { properties: { maximumPacketSize: 256 } });
  await small.subscribe(topic, 1);
  const big = await client(t, broker);
  const bigInbox = new Inbox(big);
  await big.subscribeAsync(topic, { qos: 1 });
  const pub = await client(t, broker);
  await pub.publishAsync(topic, 'before', { qos: 1 });
  await pub.publishAsync(topic, Buffer.alloc(1_000, 0x61), { qos: 1 });
  await pub.publishAsync(topic, 'after', { qos: 1 });
  await bigInbox.waitForCount(3);
  const got = await small.collect('publish', 300);
  for (const p of got) await small.acknowledge(p);
  assert.deepEqual(got.map((p) => p.payload.toString()), ['before', 'after']);
  assert.ok(small.bytes.length < 1_000, 'the large packet was never written');
  assert.equal(small.closed, false);
});

const PACKET_LIMIT = 512;
const LIMIT_TOPIC = 'mps/in';
// PUBLISH QoS 1: 1 (type) + 2 (remaining length) + 2 + topic + 2 (packet id) + 1 (no properties) + payload.
const LIMIT_PAYLOAD = PACKET_LIMIT - (1 + 2 + 2 + LIMIT_TOPIC.length + 2 + 1);

test('[MQTT-3.2.2.3.6] a packet of exactly the server\'s Maximum Packet Size is accepted', { timeout: 5_000 }, async (t) => {
  const small = await startTestBroker({ maxPacketSize: PACKET_LIMIT });
  t.after(() => small.close());
  const { raw, connack } = await rawClient(t, small);
  assert.equal(connack.properties?.maximumPacketSize, PACKET_LIMIT);
  const fits = await raw.publish(LIMIT_TOPIC, Buffer.alloc(LIMIT_PAYLOAD, 0x62), { qos: 1 });
  assert.ok([0x00, 0x10].includes(codeOf(fits as { reasonCode?: number }) ?? 0), 'accepted (0x10: no matching subscribers)');
});

test('[MQTT-3.2.2-15] [MQTT-3.2.2.3.6] a packet one byte over the server\'s Maximum Packet Size gets DISCONNECT 0x95', {
  timeout: 5_000,
  skip: isReference && 'mosquitto 2.0.11 accepts packets up to two bytes over max_packet_size',
}, async (t) => {
  const small = await startTestBroker({ maxPacketSize: PACKET_LIMIT });
  t.after(() => small.close());
  const { raw } = await rawClient(t, small);
  raw.send({ cmd: 'publish', topic: LIMIT_TOPIC, payload: Buffer.alloc(LIMIT_PAYLOAD + 1, 0x62), qos: 1, dup: false, retain: false, messageId: 99 });
  await expectDisconnect(t, raw, 0x95);
});

// -- Subscription identifiers -------------------------------------------------------------------------

test('[MQTT-3.3.4-3] [MQTT-3.8.4-3] messages carry the Subscription Identifier of their subscription; re-subscribing replaces it', { timeout: 5_000 }, async (t) => {
  const topic = uniqueTopic('sid');
  const { raw: sub, connack } = await rawClient(t, broker);
  assert.notEqual(connack.properties?.subscriptionIdentifiersAvailable, false);
  await sub.subscribe(topic, 1, { subscriptionIdentifier: 268_435_455 });
  const pub = await client(t, broker);
  const deliver = async (payload: string) => {
    await pub.publishAsync(topic, payload, { qos: 1 });
    const p = await sub.next('publish');
    await sub.acknowledge(p);
    return p.properties?.subscriptionIdentifier;
  };
  assert.deepEqual([await deliver('max')].flat(), [268_435_455], 'largest identifier');
  await sub.subscribe(topic, 1, { subscriptionIdentifier: 7 });
  assert.deepEqual([await deliver('seven')].flat(), [7]);
  await sub.subscribe(topic, 1);
  assert.equal(await deliver('none'), undefined, 'a subscription without an identifier carries none');
});

test('[MQTT-3.3.4-6] a PUBLISH from a client with a Subscription Identifier is a Protocol Error (DISCONNECT 0x82)', {
  timeout: 5_000,
  skip: isReference && 'mosquitto 2.0.11 keeps the connection open',
}, async (t) => {
  const { raw } = await rawClient(t, broker);
  raw.send({ cmd: 'publish', topic: uniqueTopic('sidp'), payload: 'x', qos: 0, dup: false, retain: false, properties: { subscriptionIdentifier: 5 } });
  await expectDisconnect(t, raw, 0x82);
});

test('[MQTT-3.8.2.1.2] Subscription Identifier 0 is a Protocol Error (DISCONNECT 0x82)', { timeout: 5_000 }, async (t) => {
  const { raw } = await rawClient(t, broker);
  // SUBSCRIBE id 1, properties: Subscription Identifier (0x0B) = 0, filter "a" QoS 0.
  raw.sendBytes([0x82, 0x08, 0x00, 0x01, 0x02, 0x0b, 0x00, 0x00, 0x01, 0x61, 0x00]);
  await expectDisconnect(t, raw, 0x82, { mosquitto: 0x81 });
});

// -- Request Problem Information ------------------------------------------------------------------

test('[MQTT-3.1.2-29] with Request Problem Information 0 no Reason String or User Property on acknowledgements', { timeout: 5_000 }, async (t) => {
  const { raw } = await rawClient(t, broker, { properties: { requestProblemInformation: false } });
  raw.send({ cmd: 'unsubscribe', messageId: 1, unsubscriptions: [uniqueTopic('never')] });
  const unsuback = await raw.next('unsuback');
  raw.send({ cmd: 'pubrel', messageId: 404 });
  const pubcomp = await raw.next('pubcomp');
  for (const packet of [unsuback, pubcomp]) {
    assert.equal(packet.properties?.reasonString, undefined, `${packet.cmd} without Reason String`);
    assert.equal(packet.properties?.userProperties, undefined, `${packet.cmd} without User Property`);
  }
});
