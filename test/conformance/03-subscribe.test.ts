/**
 * SUBSCRIBE / UNSUBSCRIBE and topic matching (MQTT 5 §3.8–3.11, §4.7, §4.8): wildcards, `$` topics,
 * subscription options (No Local, Retain As Published), overlapping subscriptions, shared
 * subscriptions and the per-client subscription quota.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startTestBroker, type TestBroker } from '../harness/broker.ts';
import { Inbox, client, delay, expectDisconnect, isReference, rawClient, uniqueId, uniqueTopic } from './helpers.ts';

let broker: TestBroker;
before(async () => { broker = await startTestBroker(); }, { timeout: 60_000 });
after(async () => { await broker?.close(); }, { timeout: 30_000 });

/** Which of `topics` a subscription to `filter` receives (waits for `expected` of them, then a little more). */
async function matched(t: Parameters<typeof client>[0], filter: string, topics: string[], expected: number): Promise<string[]> {
  const sub = await client(t, broker);
  const inbox = new Inbox(sub);
  await sub.subscribeAsync(filter, { qos: 1 });
  const pub = await client(t, broker);
  for (const topic of topics) await pub.publishAsync(topic, topic, { qos: 1 });
  await inbox.waitForCount(expected);
  await delay(100);
  return inbox.messages.map((m) => m.topic).sort();
}

test('[MQTT-4.7.1-2] [MQTT-3.3.2-3] "+" matches exactly one level, including an empty one', { timeout: 5_000 }, async (t) => {
  const base = uniqueTopic('plus');
  const got = await matched(t, `${base}/+/temp`, [`${base}/a/temp`, `${base}/b/temp`, `${base}//temp`, `${base}/a/b/temp`, `${base}/temp`, `${base}/a/temp/x`], 3);
  assert.deepEqual(got, [`${base}//temp`, `${base}/a/temp`, `${base}/b/temp`]);
});

test('[MQTT-4.7.1-1] "#" matches the parent level and every level below', { timeout: 5_000 }, async (t) => {
  const base = uniqueTopic('hash');
  const got = await matched(t, `${base}/#`, [base, `${base}/a`, `${base}/a/b/c`, `${base}x/a`], 3);
  assert.deepEqual(got, [base, `${base}/a`, `${base}/a/b/c`].sort());
});

test('[MQTT-4.7.3-4] topic matching is exact and case-sensitive, with no normalisation', { timeout: 5_000 }, async (t) => {
  const base = uniqueTopic('case');
  const got = await matched(t, `${base}/Room`, [`${base}/room`, `${base}/Room`, `${base}/Room/`, `${base}//Room`, `${base}/Room `], 1);
  assert.deepEqual(got, [`${base}/Room`]);
});

test('[MQTT-4.7.2-1] filters starting with a wildcard do not match topics starting with "$"', { timeout: 5_000 }, async (t) => {
  const id = uniqueId('d');
  const dollar = `$gh${id}/x`;
  const hash = await client(t, broker);
  const hashInbox = new Inbox(hash);
  await hash.subscribeAsync('#', { qos: 1 });
  const plus = await client(t, broker);
  const plusInbox = new Inbox(plus);
  await plus.subscribeAsync('+/x', { qos: 1 });
  const exact = await client(t, broker);
  const exactInbox = new Inbox(exact);
  await exact.subscribeAsync(`$gh${id}/+`, { qos: 1 });

  const pub = await client(t, broker);
  await pub.publishAsync(dollar, 'dollar', { qos: 1 });
  await exactInbox.waitForCount(1);
  await delay(100);
  assert.equal(hashInbox.messages.filter((m) => m.topic === dollar).length, 0, '"#" does not match a $ topic');
  assert.equal(plusInbox.messages.filter((m) => m.topic === dollar).length, 0, '"+/x" does not match a $ topic');
});

test('[MQTT-3.8.4-1] [MQTT-3.8.4-2] [MQTT-3.8.4-5] [MQTT-3.8.4-6] [MQTT-3.9.3-1] one SUBACK per SUBSCRIBE, same packet id, one code per filter in order', { timeout: 5_000 }, async (t) => {
  const { raw } = await rawClient(t, broker);
  const base = uniqueTopic('multi');
  raw.send({
    cmd: 'subscribe', messageId: 4_321,
    subscriptions: [{ topic: `${base}/2`, qos: 2 }, { topic: `${base}/0`, qos: 0 }, { topic: `${base}/1`, qos: 1 }],
  });
  const suback = await raw.next('suback');
  assert.equal(suback.messageId, 4_321);
  assert.deepEqual(suback.granted, [2, 0, 1]);
});

test('[MQTT-3.8.4-3] subscribing again to the same filter replaces the subscription (one copy, new QoS)', { timeout: 5_000 }, async (t) => {
  const topic = uniqueTopic('replace');
  const { raw: sub } = await rawClient(t, broker);
  await sub.subscribe(topic, 0);
  await sub.subscribe(topic, 2);
  const pub = await client(t, broker);
  await pub.publishAsync(topic, 'x', { qos: 2 });
  const publish = await sub.next('publish');
  assert.equal(publish.qos, 2, 'the replacing subscription\'s QoS');
  await sub.acknowledge(publish);
  assert.equal((await sub.collect('publish', 200)).length, 0, 'a single copy');
});

test('[MQTT-3.8.4-3] [MQTT-3.8.3-3] [MQTT-3.3.1-12] subscribing again replaces every option: No Local, Retain As Published and QoS take the new values', { timeout: 5_000 }, async (t) => {
  const topic = uniqueTopic('replace-options');
  const self = await client(t, broker);
  const inbox = new Inbox(self);
  await self.subscribeAsync(topic, { qos: 1, nl: true, rap: false });
  await self.publishAsync(topic, 'own, not for me', { qos: 1 });
  await self.subscribeAsync(topic, { qos: 0, nl: false, rap: true, rh: 2 });
  await self.publishAsync(topic, 'own, for me now', { qos: 1, retain: true });
  const [m] = await inbox.waitForCount(1);
  await delay(100);
  assert.deepEqual(inbox.payloads(), ['own, for me now'], 'No Local off: the client gets its own message; once');
  assert.equal(m?.packet.qos, 0, 'the new QoS');
  assert.equal(m?.packet.retain, true, 'Retain As Published: the flag kept on a live delivery');
  await self.publishAsync(topic, '', { qos: 1, retain: true });
});

test('[MQTT-3.3.4-2] [MQTT-3.3.4-3] [MQTT-3.3.4-4] overlapping subscriptions: one copy at the highest QoS with every subscription identifier', {
  timeout: 5_000,
  skip: isReference && 'mosquitto 2.0.11 sends one copy per matching subscription (the spec allows it; Gatehouse sends one)',
}, async (t) => {
  const base = uniqueTopic('overlap');
  const { raw: sub } = await rawClient(t, broker);
  await sub.subscribe({ topic: `${base}/#`, qos: 0 }, 0, { subscriptionIdentifier: 11 });
  await sub.subscribe({ topic: `${base}/+`, qos: 1 }, 0, { subscriptionIdentifier: 22 });
  await sub.subscribe({ topic: `${base}/x`, qos: 0 });
  const pub = await client(t, broker);
  await pub.publishAsync(`${base}/x`, 'x', { qos: 1 });
  const publish = await sub.next('publish');
  await sub.acknowledge(publish);
  assert.equal(publish.qos, 1, 'the maximum QoS of the matching subscriptions');
  const ids = publish.properties?.subscriptionIdentifier;
  assert.deepEqual((Array.isArray(ids) ? ids : [ids]).sort(), [11, 22]);
  assert.equal((await sub.collect('publish', 200)).length, 0, 'a single copy');
});

test('[MQTT-3.8.3-3] No Local: a client does not receive its own messages on that subscription', { timeout: 5_000 }, async (t) => {
  const topic = uniqueTopic('nl');
  const self = await client(t, broker);
  const inbox = new Inbox(self);
  await self.subscribeAsync(topic, { qos: 1, nl: true });
  const other = await client(t, broker);
  await self.publishAsync(topic, 'mine', { qos: 1 });
  await other.publishAsync(topic, 'theirs', { qos: 1 });
  await inbox.waitForCount(1);
  await delay(100);
  assert.deepEqual(inbox.payloads(), ['theirs']);
});

test('[MQTT-3.3.1-12] [MQTT-3.3.1-13] Retain As Published keeps the RETAIN flag on live deliveries; without it the flag is 0', { timeout: 5_000 }, async (t) => {
  const topic = uniqueTopic('rap');
  const keep = await client(t, broker);
  const keepInbox = new Inbox(keep);
  await keep.subscribeAsync(topic, { qos: 1, rap: true });
  const clear = await client(t, broker);
  const clearInbox = new Inbox(clear);
  await clear.subscribeAsync(topic, { qos: 1, rap: false });
  const pub = await client(t, broker);
  await pub.publishAsync(topic, 'r', { qos: 1, retain: true });
  const [kept] = await keepInbox.waitForCount(1);
  const [cleared] = await clearInbox.waitForCount(1);
  assert.equal(kept?.packet.retain, true);
  assert.equal(cleared?.packet.retain, false);
  await pub.publishAsync(topic, '', { qos: 1, retain: true });
});

test('[MQTT-3.10.4-1] [MQTT-3.10.4-2] [MQTT-3.10.4-4] [MQTT-3.10.4-5] [MQTT-3.10.4-6] [MQTT-3.11.3-1] UNSUBSCRIBE matches filters exactly and stops delivery', { timeout: 5_000 }, async (t) => {
  const base = uniqueTopic('unsub');
  const { raw: sub } = await rawClient(t, broker);
  await sub.subscribe([`${base}/a`, `${base}/+`], 1);
  sub.send({ cmd: 'unsubscribe', messageId: 999, unsubscriptions: [`${base}/a`, `${base}/nothing`] });
  const unsuback = await sub.next('unsuback');
  assert.equal(unsuback.messageId, 999);
  assert.deepEqual(unsuback.granted, [0x00, 0x11], 'Success, then No subscription existed');

  const pub = await client(t, broker);
  await pub.publishAsync(`${base}/a`, 'via plus', { qos: 1 });
  const publish = await sub.next('publish');
  assert.equal(publish.payload.toString(), 'via plus', '"+" still matches: UNSUBSCRIBE compared filters literally');
  await sub.acknowledge(publish);

  sub.send({ cmd: 'unsubscribe', messageId: 1_000, unsubscriptions: [`${base}/+`] });
  assert.deepEqual((await sub.next('unsuback')).granted, [0x00]);
  await pub.publishAsync(`${base}/a`, 'after', { qos: 1 });
  assert.equal((await sub.collect('publish', 200)).length, 0, 'nothing after the last UNSUBSCRIBE');
});

test('[MQTT-3.10.4-5 v3.1.1] a v3.1.1 UNSUBSCRIBE gets UNSUBACK with the same packet id even when nothing was subscribed', { timeout: 5_000 }, async (t) => {
  const { raw } = await rawClient(t, broker, { protocolVersion: 4 });
  raw.send({ cmd: 'unsubscribe', messageId: 77, unsubscriptions: [uniqueTopic('none')] });
  assert.equal((await raw.next('unsuback')).messageId, 77);
});

test('[MQTT-4.7.1-1] [MQTT-4.7.1-2] an invalid filter is refused: SUBACK 0x8F (or 0x80), or the connection is closed', { timeout: 5_000 }, async (t) => {
  for (const filter of ['a/#/b', 'a/b#', 'a+/b']) {
    const { raw } = await rawClient(t, broker);
    raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: filter, qos: 0 }] });
    const outcome = await Promise.race([raw.next('suback').then((s) => s.granted[0]), raw.whenClosed.then(() => 'closed' as const)]);
    assert.ok(outcome === 'closed' || outcome === 0x8f || outcome === 0x80, `${filter}: ${JSON.stringify(outcome)}`);
  }
});

test('[MQTT-4.8.2] a shared subscription delivers each message to one member of each group', { timeout: 8_000 }, async (t) => {
  const topic = uniqueTopic('share');
  const group = uniqueId('g');
  const members: Inbox[] = [];
  for (let i = 0; i < 2; i += 1) {
    const member = await client(t, broker);
    members.push(new Inbox(member));
    assert.deepEqual((await member.subscribeAsync(`$share/${group}/${topic}`, { qos: 1 })).map((g) => g.qos), [1]);
  }
  const other = await client(t, broker);
  const otherInbox = new Inbox(other);
  await other.subscribeAsync(`$share/${group}x/${topic}`, { qos: 1 });
  const plain = await client(t, broker);
  const plainInbox = new Inbox(plain);
  await plain.subscribeAsync(topic, { qos: 1 });

  const pub = await client(t, broker);
  const count = 20;
  for (let i = 0; i < count; i += 1) await pub.publishAsync(topic, `s${i}`, { qos: 1 });
  await plainInbox.waitForCount(count);
  await otherInbox.waitForCount(count);
  const deadline = Date.now() + 2_000;
  while (members.reduce((n, m) => n + m.messages.length, 0) < count && Date.now() < deadline) await delay(10);
  await delay(100);
  const groupPayloads = members.flatMap((m) => m.payloads()).sort();
  assert.deepEqual(groupPayloads, Array.from({ length: count }, (_, i) => `s${i}`).sort(), 'each message exactly once within the group');
  assert.equal(otherInbox.messages.length, count, 'the single member of another group gets every message');
  assert.equal(plainInbox.messages.length, count, 'a non-shared subscription gets every message');
});

test('[MQTT-4.8.2] QoS 1 messages a shared member never acknowledged go to another member once its session ends; QoS 2 ones do not [MQTT-4.8.2-5]', { timeout: 10_000 }, async (t) => {
  // MQTT 5 §4.8.2: "If the Client's Session terminates before the Client reconnects, the Server SHOULD send the
  // Application Message to another Client that is subscribed to the same Shared Subscription" (QoS 1); a QoS 2
  // one MUST NOT go to another Client [MQTT-4.8.2-5].
  const topic = uniqueTopic('share-end');
  const group = uniqueId('g');
  // The member that takes messages and never acknowledges them: a clean start without session expiry.
  const { raw: silent } = await rawClient(t, broker, { clientId: uniqueId('silent'), clean: true });
  assert.deepEqual(await silent.subscribe(`$share/${group}/${topic}`, 2), [2]);
  const other = await client(t, broker);
  const inbox = new Inbox(other);
  assert.deepEqual((await other.subscribeAsync(`$share/${group}/${topic}`, { qos: 2 })).map((g) => g.qos), [2]);
  const pub = await client(t, broker);
  const count = 6;
  for (let i = 0; i < count; i += 1) await pub.publishAsync(topic, `q1-${i}`, { qos: 1 });
  for (let i = 0; i < count; i += 1) await pub.publishAsync(topic, `q2-${i}`, { qos: 2 });
  // Round robin: the silent member got some of each and acknowledged none.
  const held = async (qos: number): Promise<string[]> => {
    const deadline = Date.now() + 3_000;
    for (;;) {
      const got = silent.received.filter((p) => p.cmd === 'publish' && p.qos === qos).map((p) => (p as { payload: Buffer }).payload.toString());
      if (got.length + inbox.payloads().filter((x) => x.startsWith(`q${qos}-`)).length >= count || Date.now() > deadline) return got;
      await delay(20);
    }
  };
  const heldQos1 = await held(1);
  const heldQos2 = await held(2);
  assert.ok(heldQos1.length > 0 && heldQos2.length > 0, `the silent member holds some of each: ${heldQos1.join()} / ${heldQos2.join()}`);
  silent.close(); // its session ends with the connection
  await inbox.waitForCount(2 * count - heldQos2.length);
  await delay(100);
  const payloads = inbox.payloads();
  assert.deepEqual(payloads.filter((x) => x.startsWith('q1-')).sort(), Array.from({ length: count }, (_, i) => `q1-${i}`).sort(),
    'every QoS 1 message reached the group, those the silent member held included');
  assert.deepEqual(payloads.filter((x) => heldQos2.includes(x)), [], 'no QoS 2 message the silent member held went to another member');
});

test('[MQTT-4.8.2-1] [MQTT-4.8.2-2] a malformed shared subscription filter is refused (SUBACK ≥ 0x80 or closed)', { timeout: 5_000 }, async (t) => {
  // mosquitto 2.0.11 accepts "$share/g" and "$share//a" as SUBACK 0x00.
  const filters = isReference ? ['$share/g+/a'] : ['$share/g', '$share//a', '$share/g+/a', '$share/g#/a'];
  for (const filter of filters) {
    const { raw } = await rawClient(t, broker);
    raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: filter, qos: 0 }] });
    const outcome = await Promise.race([raw.next('suback').then((s) => s.granted[0]), raw.whenClosed.then(() => 'closed' as const)]);
    assert.ok(outcome === 'closed' || (typeof outcome === 'number' && outcome >= 0x80), `${filter}: ${JSON.stringify(outcome)}`);
  }
});

test('[MQTT-3.8.3-4] No Local on a shared subscription is a Protocol Error (DISCONNECT 0x82)', {
  timeout: 5_000,
  skip: isReference && 'mosquitto 2.0.11 grants No Local on a shared subscription',
}, async (t) => {
  const { raw } = await rawClient(t, broker);
  raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: `$share/g/${uniqueTopic('nl')}`, qos: 0, nl: true }] });
  await expectDisconnect(t, raw, 0x82);
});

test('[MQTT-3.9.3] subscriptions beyond maxSubscriptionsPerClient are refused: SUBACK 0x97 (v5) / 0x80 (v3.1.1)', {
  timeout: 5_000,
  skip: isReference && 'mosquitto has no per-client subscription limit',
}, async (t) => {
  const small = await startTestBroker({ maxSubscriptionsPerClient: 2 });
  t.after(() => small.close());
  const base = uniqueTopic('quota');
  const { raw: v5 } = await rawClient(t, small);
  assert.deepEqual(await v5.subscribe([`${base}/1`, `${base}/2`, `${base}/3`], 1), [1, 1, 0x97]);
  assert.deepEqual(await v5.subscribe(`${base}/1`, 0), [0], 'replacing an existing subscription is within the quota');
  const { raw: v3 } = await rawClient(t, small, { protocolVersion: 4 });
  assert.deepEqual(await v3.subscribe([`${base}/1`, `${base}/2`, `${base}/3`], 1), [1, 1, 0x80]);
});
