/**
 * Malformed packets and protocol errors (MQTT 5 §1.5, §2.1, §4.13) sent as handcrafted bytes on raw
 * sockets. Each one closes THAT connection (after DISCONNECT with the reason code, in v5) while a
 * well-behaved subscriber and publisher on the same broker keep working.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startTestBroker, type TestBroker } from '../harness/broker.ts';
import { Inbox, RawClient, Watchdog, client, closeAfter, codeOf, expectDisconnect, field, frame, isReference, rawClient, uniqueId, uniqueTopic } from './helpers.ts';

const MAX_PACKET = 4_096;
let broker: TestBroker;
before(async () => { broker = await startTestBroker({ maxPacketSize: MAX_PACKET, connectTimeoutMs: 500 }); }, { timeout: 60_000 });
after(async () => { await broker?.close(); }, { timeout: 30_000 });

/** A v5 PUBLISH QoS 0 whose topic is the given raw bytes and which has no properties. */
function publishWithTopic(topic: Buffer | number[] | string, first = 0x30): Buffer {
  return frame(first, Buffer.concat([field(topic), Buffer.from([0x00]), Buffer.from('payload')]));
}

/**
 * Connects a raw client, lets it misbehave with `send`, and checks the close (after DISCONNECT
 * `reasonCode` in v5; `mosquitto` is the code the reference sends where it differs) and the watchdog.
 */
async function misbehave(
  t: Parameters<typeof Watchdog.start>[0],
  send: (raw: RawClient) => void,
  reasonCode: number | number[],
  protocolVersion: 4 | 5 = 5,
  mosquitto?: number,
): Promise<void> {
  const dog = await Watchdog.start(t, broker);
  const { raw } = await rawClient(t, broker, {}, { protocolVersion });
  send(raw);
  if (protocolVersion === 5) await expectDisconnect(t, raw, reasonCode, { ...(mosquitto !== undefined ? { mosquitto } : {}) });
  else await raw.expectClosed();
  await dog.check();
}

test('[MQTT-3.1.4] a connection that sends no CONNECT within connectTimeoutMs is closed', {
  timeout: 15_000,
  skip: isReference && 'mosquitto has no CONNECT timeout setting',
}, async (t) => {
  const dog = await Watchdog.start(t, broker);
  const silent = closeAfter(t, await RawClient.open(broker));
  const partial = closeAfter(t, await RawClient.open(broker));
  partial.sendBytes([0x10, 0x20, 0x00, 0x04, 0x4d]); // the first bytes of a CONNECT, then nothing
  const started = Date.now();
  await silent.expectClosed(2_000);
  await partial.expectClosed(2_000);
  assert.ok(Date.now() - started >= 300, 'not closed before the timeout');
  assert.equal(silent.bytes.length, 0, 'no CONNACK, no DISCONNECT');
  await dog.check();
});

test('[MQTT-3.1.0-1] [MQTT-3.14.0-1] a first packet other than CONNECT closes the connection, without CONNACK or DISCONNECT', { timeout: 5_000 }, async (t) => {
  const dog = await Watchdog.start(t, broker);
  for (const bytes of [[0xc0, 0x00] /* PINGREQ */, [...publishWithTopic('a/b')], [0x82, 0x06, 0x00, 0x01, 0x00, 0x01, 0x61, 0x00] /* SUBSCRIBE v3 */]) {
    const raw = closeAfter(t, await RawClient.open(broker));
    raw.sendBytes(bytes);
    await raw.expectClosed();
    assert.equal(raw.bytes.length, 0, `nothing sent back for first byte 0x${(bytes[0] ?? 0).toString(16)}`);
  }
  await dog.check();
});

test('[MQTT-3.1.0-2] a second CONNECT is a Protocol Error (DISCONNECT 0x82)', { timeout: 5_000 }, async (t) => {
  await misbehave(t, (raw) => {
    raw.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clean: true, clientId: uniqueId('again'), keepalive: 0 });
  }, 0x82);
});

test('[MQTT-3.1.0-2 v3.1.1] a second v3.1.1 CONNECT closes the connection', { timeout: 5_000 }, async (t) => {
  await misbehave(t, (raw) => {
    raw.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: uniqueId('again'), keepalive: 0 });
  }, 0x82, 4);
});

test('[MQTT-1.5.5] [MQTT-2.1.4] a Remaining Length with five bytes is malformed (DISCONNECT 0x81)', { timeout: 5_000 }, async (t) => {
  await misbehave(t, (raw) => { raw.sendBytes([0x30, 0xff, 0xff, 0xff, 0xff, 0x7f]); }, 0x81);
  const raw = closeAfter(t, await RawClient.open(broker));
  raw.sendBytes([0x10, 0x80, 0x80, 0x80, 0x80, 0x01]);
  await raw.expectClosed();
});

test('[MQTT-1.5.4-1] [MQTT-1.5.4-2] [MQTT-3.3.2-1] a topic that is not well-formed UTF-8 (or has U+0000) is malformed (DISCONNECT 0x81)', { timeout: 8_000 }, async (t) => {
  const topics: [string, number[]][] = [
    ['invalid sequence', [0x61, 0xc3, 0x28]],
    ['UTF-16 surrogate U+D800', [0x61, 0xed, 0xa0, 0x80]],
    ['overlong "/"', [0x61, 0xc0, 0xaf]],
    ['null character', [0x61, 0x00, 0x62]],
  ];
  for (const [what, bytes] of topics) {
    await t.test(what, async (st) => {
      await misbehave(st, (raw) => { raw.sendBytes(publishWithTopic(bytes)); }, 0x81);
    });
  }
});

test('[MQTT-1.5.4-1 v3.1.1: MQTT-1.5.3-1] a v3.1.1 topic that is not well-formed UTF-8 closes the connection', { timeout: 5_000 }, async (t) => {
  await misbehave(t, (raw) => {
    raw.sendBytes(frame(0x30, Buffer.concat([field([0x61, 0xc3, 0x28]), Buffer.from('payload')])));
  }, 0x81, 4);
});

test('[MQTT-3.3.2-2] [MQTT-4.7.0-1] a wildcard in a PUBLISH topic gets DISCONNECT 0x90 (Topic Name invalid)', { timeout: 8_000 }, async (t) => {
  for (const topic of ['a/+/b', 'a/#', '#']) {
    await t.test(topic, async (st) => {
      await misbehave(st, (raw) => { raw.sendBytes(publishWithTopic(topic)); }, 0x90, 5, 0x82);
    });
  }
});

test('[MQTT-4.7.3-1] an empty topic without a Topic Alias is a Protocol Error (DISCONNECT 0x82)', { timeout: 5_000 }, async (t) => {
  await misbehave(t, (raw) => { raw.sendBytes(publishWithTopic('')); }, 0x82);
});

test('[MQTT-2.1.2] packet type 0 is reserved: malformed or a protocol error (DISCONNECT 0x81/0x82)', { timeout: 5_000 }, async (t) => {
  await misbehave(t, (raw) => { raw.sendBytes([0x00, 0x00]); }, [0x81, 0x82]);
});

test('[MQTT-2.1.2 v3.1.1] packet type 15 (AUTH) does not exist in v3.1.1 and closes the connection', { timeout: 5_000 }, async (t) => {
  await misbehave(t, (raw) => { raw.sendBytes([0xf0, 0x00]); }, 0x81, 4);
});

test('[MQTT-3.2.2-15] [MQTT-3.2.2.3.6] a packet larger than maxPacketSize gets DISCONNECT 0x95', { timeout: 5_000 }, async (t) => {
  await misbehave(t, (raw) => {
    raw.send({ cmd: 'publish', topic: uniqueTopic('big'), payload: Buffer.alloc(MAX_PACKET * 2, 0x41), qos: 0, dup: false, retain: false });
  }, 0x95);
});

test('[MQTT-3.2.2.3.6] a header announcing 200 MB is refused at once (DISCONNECT 0x95), without waiting for the bytes', { timeout: 5_000 }, async (t) => {
  await misbehave(t, (raw) => { raw.sendBytes([0x30, 0x80, 0x80, 0xe8, 0x5f]); }, 0x95);
});

test('[MQTT-3.2.2.3.6] a v3.1.1 packet larger than maxPacketSize closes the connection', { timeout: 5_000 }, async (t) => {
  await misbehave(t, (raw) => {
    raw.send({ cmd: 'publish', topic: uniqueTopic('big'), payload: Buffer.alloc(MAX_PACKET * 2, 0x41), qos: 0, dup: false, retain: false });
  }, 0x95, 4);
});

test('[MQTT-2.1.3-1] [MQTT-3.8.1-1] [MQTT-3.6.1-1] [MQTT-3.10.1-1] [MQTT-3.14.1-1] reserved fixed-header flag bits are malformed (DISCONNECT 0x81)', { timeout: 15_000 }, async (t) => {
  const cases: [string, number[], string?][] = [
    ['SUBSCRIBE with flags 0000', [0x80, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, 0x61, 0x00]],
    ['UNSUBSCRIBE with flags 0000', [0xa0, 0x06, 0x00, 0x01, 0x00, 0x00, 0x01, 0x61]],
    ['PUBREL with flags 0000', [0x60, 0x02, 0x00, 0x01]],
    ['PINGREQ with flags 0001', [0xc1, 0x00], 'mosquitto 2.0.11 ignores the flags of PINGREQ'],
    ['PUBACK with flags 1000', [0x48, 0x02, 0x00, 0x01], 'mosquitto 2.0.11 ignores the flags of PUBACK'],
    ['DISCONNECT with flags 0010', [0xe2, 0x00]],
  ];
  for (const [what, bytes, referenceDeviation] of cases) {
    await t.test(what, { skip: isReference && referenceDeviation }, async (st) => {
      await misbehave(st, (raw) => { raw.sendBytes(bytes); }, 0x81);
    });
  }
});

test('[MQTT-3.3.1-4] a PUBLISH with both QoS bits set is malformed (DISCONNECT 0x81)', { timeout: 5_000 }, async (t) => {
  await misbehave(t, (raw) => {
    raw.sendBytes(frame(0x36, Buffer.concat([field('a/b'), Buffer.from([0x00, 0x01, 0x00]), Buffer.from('x')])));
  }, 0x81);
});

test('[MQTT-2.2.1-3] a QoS 1 PUBLISH with packet id 0 is malformed or a protocol error (DISCONNECT 0x81/0x82)', { timeout: 5_000 }, async (t) => {
  const dog = await Watchdog.start(t, broker);
  const { raw } = await rawClient(t, broker);
  raw.sendBytes(frame(0x32, Buffer.concat([field('a/b'), Buffer.from([0x00, 0x00, 0x00]), Buffer.from('x')])));
  const disconnect = await raw.closedWith();
  if (disconnect) assert.ok([0x81, 0x82].includes(disconnect.reasonCode ?? 0), `reason 0x${(disconnect.reasonCode ?? 0).toString(16)}`);
  else assert.ok(isReference, 'DISCONNECT before the close');
  await dog.check();
});

test('[MQTT-3.8.3-2] [MQTT-3.10.3-2] SUBSCRIBE or UNSUBSCRIBE without a topic filter is a Protocol Error (DISCONNECT 0x82)', { timeout: 8_000 }, async (t) => {
  await t.test('SUBSCRIBE', async (st) => {
    await misbehave(st, (raw) => { raw.sendBytes([0x82, 0x03, 0x00, 0x01, 0x00]); }, 0x82, 5, 0x81);
  });
  await t.test('UNSUBSCRIBE', async (st) => {
    await misbehave(st, (raw) => { raw.sendBytes([0xa2, 0x03, 0x00, 0x01, 0x00]); }, 0x82, 5, 0x81);
  });
});

test('[MQTT-3.8.3-5] SUBSCRIBE options with reserved bits set are malformed (DISCONNECT 0x81)', { timeout: 5_000 }, async (t) => {
  // SUBSCRIBE id 1, no properties, filter "a", options 0xC0 (reserved bits 7 and 6).
  await misbehave(t, (raw) => { raw.sendBytes([0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, 0x61, 0xc0]); }, 0x81);
});

test('[MQTT-2.2.2] a property that appears twice is a Protocol Error (DISCONNECT 0x82)', { timeout: 5_000 }, async (t) => {
  // PUBLISH QoS 0, topic "a", properties: Message Expiry Interval (0x02) twice.
  await misbehave(t, (raw) => {
    raw.sendBytes(frame(0x30, Buffer.concat([field('a'), Buffer.from([0x0a, 0x02, 0, 0, 0, 5, 0x02, 0, 0, 0, 6]), Buffer.from('x')])));
  }, 0x82);
});

test('[MQTT-2.2.2] an unknown property identifier is malformed (DISCONNECT 0x81)', { timeout: 5_000 }, async (t) => {
  // PUBLISH QoS 0, topic "a", properties: identifier 0x7F (not defined) with one byte.
  await misbehave(t, (raw) => {
    raw.sendBytes(frame(0x30, Buffer.concat([field('a'), Buffer.from([0x02, 0x7f, 0x01]), Buffer.from('x')])));
  }, 0x81);
});

test('[MQTT-4.13.1-1] a property string whose length runs past the packet end is malformed (DISCONNECT 0x81) and not forwarded', { timeout: 8_000 }, async (t) => {
  // Found by the parser fuzz: such a PUBLISH reached the subscribers' encoder with a null property.
  const cases: [string, number[]][] = [
    ['Content Type', [0x03, 0x00, 0x20]],
    ['User Property name', [0x26, 0x00, 0x20]],
    ['User Property value', [0x26, 0x00, 0x01, 0x6b, 0x00, 0x20]],
  ];
  for (const [what, properties] of cases) {
    await t.test(what, async (st) => {
      const topic = uniqueTopic('overrun');
      const { raw: sub } = await rawClient(st, broker);
      await sub.subscribe(topic, 0);
      await misbehave(st, (raw) => {
        raw.sendBytes(frame(0x30, Buffer.concat([field(topic), Buffer.from([properties.length, ...properties]), Buffer.from('xyz')])));
      }, 0x81);
      assert.equal((await sub.collect('publish', 100)).length, 0, 'nothing forwarded');
      assert.equal(sub.closed, false, 'the subscriber is still connected');
    });
  }
});

test('[MQTT-4.13.1-1] a Remaining Length longer than the packet\'s fields is malformed (DISCONNECT 0x81)', { timeout: 5_000 }, async (t) => {
  // SUBSCRIBE id 1, no properties, then a filter whose length prefix (0x00 0x20) runs past the packet end.
  await misbehave(t, (raw) => { raw.sendBytes([0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x20, 0x61, 0x00]); }, 0x81);
});

test('[MQTT-2.2.2] a will whose properties run past the CONNECT is malformed: refused, and no will with broken properties is ever retained', { timeout: 10_000 }, async (t) => {
  // Found by the coverage-guided fuzzer: the will's user property value was decoded as null, the will
  // was accepted, published retained at the abnormal close, and crashed the encoder (contained) at
  // every delivery to a v5 subscriber after that.
  const dog = await Watchdog.start(t, broker);
  const topic = uniqueTopic('will');
  const willProperties = [0x26, ...field('k'), 0xff, 0xff]; // a user property whose value claims 65,535 bytes
  const connect = frame(0x10, Buffer.concat([
    field('MQTT'), Buffer.from([0x05, 0x26 /* will retain, will flag, clean start */, 0x00, 0x1e, 0x00 /* no properties */]),
    field(uniqueId('cutwill')), Buffer.from([willProperties.length, ...willProperties]), field(topic), field('x'),
  ]));
  const raw = closeAfter(t, await RawClient.open(broker));
  raw.sendBytes([...connect]);
  await raw.expectClosed(2_000);
  const connack = raw.received.find((p) => p.cmd === 'connack');
  if (connack !== undefined) assert.equal(codeOf(connack), 0x81);
  const subscriber = await client(t, broker, { clientId: uniqueId('wsub') });
  const inbox = new Inbox(subscriber);
  await subscriber.subscribeAsync(topic, { qos: 0 });
  await dog.check();
  assert.equal(inbox.messages.length, 0, 'no will was retained');
  if (broker.engine !== undefined) assert.equal(broker.engine.stats.handlerCrashes, 0);
});
