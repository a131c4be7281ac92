/**
 * CONNECT and CONNACK (MQTT 5 §3.1, §3.2; v3.1.1 where it differs): acceptance, advertised limits,
 * client identifiers, refusals, keep alive, session takeover and the AUTH packet without enhanced auth.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { generate, type IConnectPacket } from 'mqtt-packet';
import { startTestBroker, type TestBroker } from '../harness/broker.ts';
import { RawClient, closeAfter, codeOf, delay, expectDisconnect, isReference, rawClient, uniqueId } from './helpers.ts';

let broker: TestBroker;
/** A broker with every advertised limit set away from its default. */
let limited: TestBroker;
const LIMITS = { maxPacketSize: 4096, topicAliasMaximum: 7, maximumQoS: 1, retainAvailable: false, receiveMaximum: 3 } as const;

before(async () => {
  broker = await startTestBroker();
  limited = await startTestBroker(LIMITS);
}, { timeout: 60_000 });
after(async () => {
  await broker?.close();
  await limited?.close();
}, { timeout: 30_000 });

/** CONNECT bytes (one-byte remaining length): [8] is the protocol level, [9] the connect flags. */
function connectBytes(packet: Partial<IConnectPacket> = {}, protocolVersion: 4 | 5 = 4): Buffer {
  return generate({
    cmd: 'connect', protocolId: 'MQTT', protocolVersion, clean: true, clientId: uniqueId('b'), keepalive: 0, ...packet,
  }, { protocolVersion });
}

test('[MQTT-3.1.4-5] [MQTT-3.2.2-2] [MQTT-3.2.0-1] a v5 CONNECT with Clean Start gets CONNACK Success, Session Present 0', { timeout: 5_000 }, async (t) => {
  const { raw, connack } = await rawClient(t, broker, { clean: true });
  assert.equal(raw.received[0]?.cmd, 'connack', 'CONNACK is the first packet the server sends');
  assert.equal(connack.reasonCode, 0);
  assert.equal(connack.sessionPresent, false);
});

test('[MQTT-3.1.4-5 v3.1.1: MQTT-3.1.4-4] a v3.1.1 CONNECT gets CONNACK return code 0', { timeout: 5_000 }, async (t) => {
  const { connack } = await rawClient(t, broker, { protocolVersion: 4 });
  assert.equal(connack.returnCode, 0);
  assert.equal(connack.sessionPresent, false);
});

test('[MQTT-3.1.3-5] client ids of 1 to 23 alphanumeric characters are accepted', { timeout: 5_000 }, async (t) => {
  for (const clientId of ['a', `Z${uniqueId('').slice(0, 8)}`, '0123456789abcdefghijKLM']) {
    const { connack } = await rawClient(t, broker, { clientId });
    assert.equal(connack.reasonCode, 0, clientId);
  }
});

test('[MQTT-3.1.2.11] a CONNECT with every v5 property is accepted', { timeout: 5_000 }, async (t) => {
  const { connack } = await rawClient(t, broker, {
    clientId: uniqueId('props'),
    keepalive: 30,
    properties: {
      sessionExpiryInterval: 10,
      receiveMaximum: 50,
      maximumPacketSize: 65_536,
      topicAliasMaximum: 5,
      requestResponseInformation: false,
      requestProblemInformation: true,
      userProperties: { device: 'probe', zone: ['a', 'b'] },
    },
    username: 'someone',
    password: Buffer.from('secret'),
    will: { topic: uniqueId('will'), payload: Buffer.from('gone'), qos: 1, retain: false, properties: { willDelayInterval: 0 } },
  });
  assert.equal(connack.reasonCode, 0);
});

test('[MQTT-3.2.2.3] [MQTT-3.2.2-22] [MQTT-3.1.2-28] [MQTT-4.12.0-6] CONNACK of a default broker advertises full support', { timeout: 5_000 }, async (t) => {
  const { connack } = await rawClient(t, broker, { keepalive: 30, properties: { requestResponseInformation: false } });
  const p = connack.properties ?? {};
  assert.equal(p.maximumQoS, undefined, 'Maximum QoS is only sent when the server lacks QoS 1 or 2 [MQTT-3.2.2-9]');
  assert.notEqual(p.retainAvailable, false);
  assert.notEqual(p.wildcardSubscriptionAvailable, false);
  assert.notEqual(p.subscriptionIdentifiersAvailable, false);
  assert.notEqual(p.sharedSubscriptionAvailable, false);
  assert.equal(p.serverKeepAlive, undefined, 'the client keep alive stands when no Server Keep Alive is sent');
  assert.equal(p.responseInformation, undefined, 'no Response Information unless requested');
  assert.equal(p.authenticationMethod, undefined, 'no Authentication Method unless the client sent one');
  assert.equal(p.assignedClientIdentifier, undefined, 'no Assigned Client Identifier for a client that sent one');
  assert.ok(p.receiveMaximum === undefined || p.receiveMaximum > 0, 'Receive Maximum is never 0');
});

test('[MQTT-3.2.2-9] [MQTT-3.2.2.3] CONNACK advertises the configured limits', { timeout: 5_000 }, async (t) => {
  const { connack } = await rawClient(t, limited);
  const p = connack.properties ?? {};
  assert.equal(connack.reasonCode, 0);
  assert.equal(p.maximumQoS, LIMITS.maximumQoS);
  assert.equal(p.retainAvailable, false);
  assert.equal(p.maximumPacketSize, LIMITS.maxPacketSize);
  assert.equal(p.topicAliasMaximum, LIMITS.topicAliasMaximum);
  assert.equal(p.receiveMaximum, LIMITS.receiveMaximum);
});

test('[MQTT-3.1.3-6] [MQTT-3.1.3-7] [MQTT-3.2.2-16] a v5 client with an empty client id gets a unique Assigned Client Identifier', { timeout: 5_000 }, async (t) => {
  const first = await rawClient(t, broker, { clientId: '' });
  const second = await rawClient(t, broker, { clientId: '' });
  const a = first.connack.properties?.assignedClientIdentifier;
  const b = second.connack.properties?.assignedClientIdentifier;
  assert.equal(first.connack.reasonCode, 0);
  assert.ok(a !== undefined && a.length > 0, 'first client got an identifier');
  assert.ok(b !== undefined && b.length > 0, 'second client got an identifier');
  assert.notEqual(a, b);
});

test('[MQTT-3.1.3-6 v3.1.1] a v3.1.1 client with an empty client id and Clean Session 1 is accepted', { timeout: 5_000 }, async (t) => {
  const { connack } = await rawClient(t, broker, { protocolVersion: 4, clientId: '', clean: true });
  assert.equal(connack.returnCode, 0);
});

test('[MQTT-3.1.3-8 v3.1.1] a v3.1.1 client with an empty client id and Clean Session 0 is refused with return code 2', { timeout: 5_000 }, async (t) => {
  // mqtt-packet refuses to encode this CONNECT, so encode a clean one and clear Clean Session.
  const raw = closeAfter(t, await RawClient.open(broker, { protocolVersion: 4 }));
  const bytes = connectBytes({ clientId: '', clean: true });
  bytes[9] = (bytes[9] ?? 0) & ~0x02;
  raw.sendBytes(bytes);
  const connack = await raw.next('connack');
  assert.equal(connack.returnCode, 2);
  assert.equal(connack.sessionPresent, false);
  await raw.expectClosed();
});

test('[MQTT-3.1.2-2] an unsupported protocol level is refused (CONNACK 0x84 or 0x01) and the connection closed', { timeout: 5_000 }, async (t) => {
  const raw = closeAfter(t, await RawClient.open(broker, { protocolVersion: 4 }));
  const bytes = connectBytes();
  bytes[8] = 6;
  raw.sendBytes(bytes);
  await raw.expectClosed();
  if (raw.bytes.length > 0) {
    assert.equal(raw.bytes[0], 0x20, 'only a CONNACK may precede the close');
    assert.ok([0x01, 0x84].includes(raw.bytes[3] ?? -1), `return code ${raw.bytes[3]}`);
  }
});

test('[MQTT-3.1.2-1] a protocol name other than "MQTT" closes the connection without CONNACK Success', { timeout: 5_000 }, async (t) => {
  const raw = closeAfter(t, await RawClient.open(broker, { protocolVersion: 4 }));
  const bytes = connectBytes();
  bytes.write('MQTX', 4, 'latin1');
  raw.sendBytes(bytes);
  await raw.expectClosed();
  if (raw.bytes.length > 0) assert.notEqual(raw.bytes[3], 0x00, 'not accepted');
});

test('[MQTT-3.1.2-3] a CONNECT with the reserved flag set closes the connection', { timeout: 5_000 }, async (t) => {
  for (const version of [4, 5] as const) {
    const raw = closeAfter(t, await RawClient.open(broker, { protocolVersion: version }));
    const bytes = connectBytes({}, version);
    bytes[9] = (bytes[9] ?? 0) | 0x01;
    raw.sendBytes(bytes);
    await raw.expectClosed();
    const connack = raw.received.find((p) => p.cmd === 'connack');
    if (connack) assert.ok((codeOf(connack) ?? 0) !== 0, `v${version}: not accepted`);
  }
});

test('[MQTT-3.1.2-11] [MQTT-3.1.2-13] Will QoS or Will Retain without the Will Flag close the connection', { timeout: 5_000 }, async (t) => {
  for (const flag of [0x08 /* Will QoS 1 */, 0x20 /* Will Retain */]) {
    const raw = closeAfter(t, await RawClient.open(broker, { protocolVersion: 5 }));
    const bytes = connectBytes({}, 5);
    bytes[9] = (bytes[9] ?? 0) | flag;
    raw.sendBytes(bytes);
    await raw.expectClosed();
    const connack = raw.received.find((p) => p.cmd === 'connack');
    if (connack) assert.ok((codeOf(connack) ?? 0) >= 0x80, `flag ${flag}: refused`);
  }
});

test('[MQTT-3.1.2-12] Will QoS 3 closes the connection', { timeout: 5_000 }, async (t) => {
  const raw = closeAfter(t, await RawClient.open(broker, { protocolVersion: 4 }));
  const bytes = connectBytes({ will: { topic: 'w', payload: Buffer.from('x'), qos: 0, retain: false } });
  bytes[9] = (bytes[9] ?? 0) | 0x18;
  raw.sendBytes(bytes);
  await raw.expectClosed();
  const connack = raw.received.find((p) => p.cmd === 'connack');
  if (connack) assert.notEqual(codeOf(connack), 0);
});

test('[MQTT-3.2.2-12] [MQTT-3.2.2-6] [MQTT-3.2.2-7] a Will QoS above Maximum QoS is refused with 0x9B and the connection closed', { timeout: 5_000 }, async (t) => {
  const { raw, connack } = await rawClient(t, limited, { will: { topic: uniqueId('w'), payload: Buffer.from('x'), qos: 2, retain: false } });
  assert.equal(connack.reasonCode, 0x9b);
  assert.equal(connack.sessionPresent, false);
  await raw.expectClosed();
});

test('[MQTT-3.2.2-13] a retained Will when retain is unavailable is refused with 0x9A and the connection closed', { timeout: 5_000 }, async (t) => {
  const { raw, connack } = await rawClient(t, limited, { will: { topic: uniqueId('w'), payload: Buffer.from('x'), qos: 0, retain: true } });
  assert.equal(connack.reasonCode, 0x9a);
  await raw.expectClosed();
});

test('[MQTT-3.1.2.11] Receive Maximum 0 or Maximum Packet Size 0 in CONNECT is refused', { timeout: 8_000 }, async (t) => {
  // Property bytes written by hand: mqtt-packet will not encode these invalid values.
  const cases: [string, number[]][] = [['Receive Maximum 0', [0x21, 0x00, 0x00]], ['Maximum Packet Size 0', [0x27, 0, 0, 0, 0]]];
  for (const [what, property] of cases) {
    await t.test(what, async (st) => {
      const raw = closeAfter(st, await RawClient.open(broker, { protocolVersion: 5 }));
      const clientId = Buffer.from(uniqueId('z'));
      const body = Buffer.concat([
        Buffer.from([0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0x05, 0x02, 0x00, 0x00]), // "MQTT" v5, clean, keep alive 0
        Buffer.from([property.length, ...property]),
        Buffer.from([clientId.length >> 8, clientId.length & 0xff]), clientId,
      ]);
      raw.sendBytes(Buffer.concat([Buffer.from([0x10, body.length]), body]));
      await raw.expectClosed();
      const connack = raw.received.find((p) => p.cmd === 'connack');
      if (connack) assert.ok((codeOf(connack) ?? 0) >= 0x80, 'refused');
    });
  }
});

test('[MQTT-3.1.2-22] the server closes the connection after 1.5 × Keep Alive without a packet', { timeout: 10_000 }, async (t) => {
  const { raw } = await rawClient(t, broker, { keepalive: 1 });
  const started = Date.now();
  // mosquitto checks keep alives on a coarse timer and closes after about 5 s.
  await raw.expectClosed(isReference ? 7_000 : 2_500);
  const elapsed = Date.now() - started;
  assert.ok(elapsed >= 1_000, `closed too early: after ${elapsed} ms`);
});

test('[MQTT-3.1.2-22] [MQTT-3.12.4-1] PINGREQ keeps the connection open and is answered with PINGRESP', { timeout: 45_000 }, async (t) => {
  const { raw } = await rawClient(t, broker, { keepalive: 1 });
  for (let i = 0; i < 6; i += 1) {
    raw.send({ cmd: 'pingreq' });
    await raw.next('pingresp');
    await delay(500);
  }
  assert.equal(raw.closed, false, 'still connected after 3 s of pings at keep alive 1 s');
});

test('[MQTT-3.2.2-21] [MQTT-3.2.2-22] a v5 client asking for more than maxKeepalive (or 0) is told Server Keep Alive', { timeout: 5_000 }, async (t) => {
  const capped = await startTestBroker({ maxKeepalive: 10 });
  t.after(() => capped.close());
  const above = await rawClient(t, capped, { keepalive: 60 });
  assert.equal(above.connack.properties?.serverKeepAlive, 10);
  const zero = await rawClient(t, capped, { keepalive: 0 });
  assert.equal(zero.connack.properties?.serverKeepAlive, 10);
  const below = await rawClient(t, capped, { keepalive: 5 });
  const told = below.connack.properties?.serverKeepAlive;
  assert.ok(told === undefined || told === 5, `a keep alive within the limit stands (got ${told})`);
});

test('[MQTT-3.2.2-21] [MQTT-3.1.2-22] the server enforces the Server Keep Alive it sent', {
  timeout: 20_000,
  skip: isReference && 'mosquitto refuses max_keepalive below 10 s',
}, async (t) => {
  const capped = await startTestBroker({ maxKeepalive: 1 });
  t.after(() => capped.close());
  const { raw, connack } = await rawClient(t, capped, { keepalive: 60 });
  assert.equal(connack.properties?.serverKeepAlive, 1);
  const started = Date.now();
  await raw.expectClosed(2_500);
  assert.ok(Date.now() - started >= 1_000);
});

test('[MQTT-3.2.2.3.2] a Session Expiry Interval above maxSessionExpiry is lowered and told in CONNACK', {
  timeout: 5_000,
  skip: isReference && 'mosquitto has no maximum session expiry',
}, async (t) => {
  const capped = await startTestBroker({ maxSessionExpiry: 60 });
  t.after(() => capped.close());
  const { connack } = await rawClient(t, capped, { clean: true, properties: { sessionExpiryInterval: 3_600 } });
  assert.equal(connack.reasonCode, 0);
  assert.equal(connack.properties?.sessionExpiryInterval, 60);
});

test('[MQTT-3.1.4-3] a second connection with the same client id takes over: the old v5 connection gets DISCONNECT 0x8E', { timeout: 5_000 }, async (t) => {
  const clientId = uniqueId('take');
  const { raw: first } = await rawClient(t, broker, { clientId });
  const { connack } = await rawClient(t, broker, { clientId });
  assert.equal(connack.reasonCode, 0);
  await expectDisconnect(t, first, 0x8e);
});

test('[MQTT-3.1.4-2 v3.1.1] a second v3.1.1 connection with the same client id closes the first', { timeout: 5_000 }, async (t) => {
  const clientId = uniqueId('take3');
  const { raw: first } = await rawClient(t, broker, { clientId, protocolVersion: 4 });
  const { raw: second, connack } = await rawClient(t, broker, { clientId, protocolVersion: 4 });
  assert.equal(connack.returnCode, 0);
  await first.expectClosed();
  second.send({ cmd: 'pingreq' });
  await second.next('pingresp');
});

test('[MQTT-4.12.0-1] [MQTT-3.2.2-7] CONNECT with an unsupported Authentication Method is refused with 0x8C and closed', { timeout: 5_000 }, async (t) => {
  const { raw, connack } = await rawClient(t, broker, { properties: { authenticationMethod: 'SCRAM-SHA-256', authenticationData: Buffer.from('n,,n=user,r=abc') } });
  assert.equal(connack.reasonCode, 0x8c);
  assert.equal(connack.sessionPresent, false);
  await raw.expectClosed();
});

test('[MQTT-4.12.0-7] [MQTT-4.13.1-1] AUTH on a connection that did not use enhanced auth gets DISCONNECT 0x82', { timeout: 5_000 }, async (t) => {
  const { raw } = await rawClient(t, broker);
  raw.send({ cmd: 'auth', reasonCode: 0x19, properties: { authenticationMethod: 'SCRAM-SHA-256' } });
  await expectDisconnect(t, raw, 0x82);
});
