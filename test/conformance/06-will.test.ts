/**
 * Will messages and client DISCONNECT (MQTT 5 §3.1.2.5, §3.1.3.2, §3.14): when the Will is and is not
 * published, Will Retain, Will Delay, Will properties, and DISCONNECT reason codes from the client.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { IConnectPacket } from 'mqtt-packet';
import { startTestBroker, type TestBroker } from '../harness/broker.ts';
import { Inbox, RawClient, client, codeOf, delay, isReference, rawClient, uniqueId, uniqueTopic } from './helpers.ts';

let broker: TestBroker;
before(async () => { broker = await startTestBroker(); }, { timeout: 60_000 });
after(async () => { await broker?.close(); }, { timeout: 30_000 });

type Will = NonNullable<IConnectPacket['will']>;

/** A subscriber on the will topic and a raw client that has the will. */
async function setup(t: Parameters<typeof client>[0], will: Partial<Will> = {}, connect: Partial<IConnectPacket> = {}): Promise<{ inbox: Inbox; raw: RawClient; topic: string }> {
  const topic = will.topic ?? uniqueTopic('will');
  const watcher = await client(t, broker);
  const inbox = new Inbox(watcher);
  await watcher.subscribeAsync(topic, { qos: 2, rap: true });
  const { raw, connack } = await rawClient(t, broker, {
    will: { topic, payload: Buffer.from('last words'), qos: 1, retain: false, ...will },
    ...connect,
  });
  assert.equal(connack.reasonCode ?? connack.returnCode, 0);
  return { inbox, raw, topic };
}

for (const version of [4, 5] as const) {
  const v = version === 5 ? 'v5' : 'v3.1.1';

  test(`[MQTT-3.1.2-7] [MQTT-3.1.2-8] ${v}: the Will is published when the connection closes without DISCONNECT`, { timeout: 5_000 }, async (t) => {
    const { inbox, raw, topic } = await setup(t, { qos: 1 }, { protocolVersion: version });
    raw.close();
    const [will] = await inbox.waitForCount(1);
    assert.equal(will?.topic, topic);
    assert.equal(will?.payload.toString(), 'last words');
    assert.equal(will?.packet.qos, 1);
  });

  test(`[MQTT-3.14.4-3] [MQTT-3.1.2-10] ${v}: no Will after a normal DISCONNECT`, { timeout: 5_000 }, async (t) => {
    const { inbox, raw } = await setup(t, {}, { protocolVersion: version });
    raw.send(version === 5 ? { cmd: 'disconnect', reasonCode: 0 } : { cmd: 'disconnect' });
    await raw.expectClosed();
    await delay(300);
    assert.equal(inbox.messages.length, 0);
  });
}

test('[MQTT-3.14.2-1] [MQTT-3.1.2-8] DISCONNECT 0x04 (Disconnect with Will Message) publishes the Will', { timeout: 5_000 }, async (t) => {
  const { inbox, raw } = await setup(t);
  raw.send({ cmd: 'disconnect', reasonCode: 0x04 });
  await raw.expectClosed();
  const [will] = await inbox.waitForCount(1);
  assert.equal(will?.payload.toString(), 'last words', 'the Will itself');
});

test('[MQTT-3.14.2-1] [MQTT-3.1.2-8] a client DISCONNECT with an error code (0x80) publishes the Will', {
  timeout: 5_000,
  skip: isReference && 'mosquitto 2.0.11 discards the Will on a client DISCONNECT 0x80 (it publishes it only for 0x04)',
}, async (t) => {
  const { inbox, raw } = await setup(t);
  raw.send({ cmd: 'disconnect', reasonCode: 0x80, properties: { reasonString: 'sensor failed' } });
  await raw.expectClosed();
  const [will] = await inbox.waitForCount(1);
  assert.equal(will?.payload.toString(), 'last words', 'the Will itself');
});

test('[MQTT-3.1.2-14] [MQTT-3.1.2-15] Will Retain 0 is published non-retained; Will Retain 1 is stored as retained', { timeout: 5_000 }, async (t) => {
  const plain = await setup(t, { retain: false });
  plain.raw.close();
  const [notRetained] = await plain.inbox.waitForCount(1);
  assert.equal(notRetained?.packet.retain, false);

  const kept = await setup(t, { retain: true, payload: Buffer.from('retained will') });
  kept.raw.close();
  const [retained] = await kept.inbox.waitForCount(1);
  assert.equal(retained?.packet.retain, true, 'Retain As Published shows the RETAIN flag');
  const late = await client(t, broker);
  const lateInbox = new Inbox(late);
  await late.subscribeAsync(kept.topic, { qos: 1 });
  const [stored] = await lateInbox.waitForCount(1);
  assert.equal(stored?.payload.toString(), 'retained will');
  await late.publishAsync(kept.topic, '', { qos: 1, retain: true });
});

test('[MQTT-3.1.3-10] [MQTT-3.3.2-4] [MQTT-3.3.2-15] [MQTT-3.3.2-16] [MQTT-3.3.2-17] [MQTT-3.3.2-18] [MQTT-3.3.2-20] Will properties reach subscribers unchanged', { timeout: 5_000 }, async (t) => {
  const { inbox, raw } = await setup(t, {
    payload: Buffer.from('{"state":"offline"}'),
    properties: {
      payloadFormatIndicator: true,
      messageExpiryInterval: 3_600,
      contentType: 'application/json',
      responseTopic: 'replies/here',
      correlationData: Buffer.from([0xde, 0xad, 0xbe, 0xef]),
      userProperties: { zeta: '1', alpha: '2', mid: ['x', 'y'] },
    },
  });
  raw.close();
  const [will] = await inbox.waitForCount(1);
  const p = will?.packet.properties ?? {};
  assert.equal(p.payloadFormatIndicator, true);
  assert.equal(p.contentType, 'application/json');
  assert.equal(p.responseTopic, 'replies/here');
  assert.deepEqual(p.correlationData, Buffer.from([0xde, 0xad, 0xbe, 0xef]));
  assert.deepEqual({ ...p.userProperties }, { zeta: '1', alpha: '2', mid: ['x', 'y'] });
  assert.deepEqual(Object.keys(p.userProperties ?? {}), ['zeta', 'alpha', 'mid'], 'order kept');
  assert.ok(p.messageExpiryInterval !== undefined && p.messageExpiryInterval <= 3_600 && p.messageExpiryInterval >= 3_590);
});

test('[MQTT-3.1.2-8] the Will is published after the Will Delay Interval, not before', { timeout: 6_000 }, async (t) => {
  const { inbox, raw } = await setup(t, { properties: { willDelayInterval: 1 } }, { clean: true, properties: { sessionExpiryInterval: 30 } });
  raw.close();
  const closedAt = Date.now();
  await delay(500);
  assert.equal(inbox.messages.length, 0, 'not yet');
  await inbox.waitForCount(1, 3_000);
  assert.ok(Date.now() - closedAt >= 900, 'after about one second');
});

test('[MQTT-3.1.3-9] the Will is not published when the client reconnects within the Will Delay Interval', { timeout: 30_000 }, async (t) => {
  const clientId = uniqueId('back');
  const { inbox, raw } = await setup(t, { properties: { willDelayInterval: 2 } }, { clientId, clean: true, properties: { sessionExpiryInterval: 30 } });
  raw.close();
  await delay(300);
  await rawClient(t, broker, { clientId, clean: false, properties: { sessionExpiryInterval: 30 } });
  await delay(2_500);
  assert.equal(inbox.messages.length, 0);
});

test('[MQTT-3.1.2-8] the Will is published when the session ends before the Will Delay Interval', { timeout: 8_000 }, async (t) => {
  const { inbox, raw } = await setup(t, { properties: { willDelayInterval: 60 } }, { clean: true, properties: { sessionExpiryInterval: 1 } });
  raw.close();
  const [will] = await inbox.waitForCount(1, 4_000);
  assert.equal(will?.payload.toString(), 'last words', 'the Will itself');
});

test('[MQTT-3.1.2-8] the Will is published when the server closes the connection for a protocol error', { timeout: 5_000 }, async (t) => {
  const { inbox, raw } = await setup(t);
  raw.sendBytes([0x00, 0x00]); // packet type 0 is reserved
  await raw.expectClosed();
  const [will] = await inbox.waitForCount(1);
  assert.equal(will?.payload.toString(), 'last words', 'the Will itself');
});

test('[MQTT-3.1.2-8] [MQTT-3.1.2-22] the Will is published when the keep alive expires', { timeout: 10_000 }, async (t) => {
  const { inbox } = await setup(t, {}, { keepalive: 1 });
  const [will] = await inbox.waitForCount(1, isReference ? 7_000 : 3_000);
  assert.equal(will?.payload.toString(), 'last words', 'the Will itself');
});

test('[MQTT-3.1.3.3] a Will Topic with a wildcard is refused (CONNACK ≥ 0x80 or closed)', { timeout: 5_000 }, async (t) => {
  const raw = await RawClient.open(broker);
  t.after(() => raw.close());
  raw.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clean: true, clientId: uniqueId('wt'), keepalive: 0, will: { topic: 'a/#', payload: Buffer.from('x'), qos: 0, retain: false } });
  await raw.expectClosed();
  const connack = raw.received.find((p) => p.cmd === 'connack');
  if (connack) assert.ok((codeOf(connack) ?? 0) >= 0x80);
});
