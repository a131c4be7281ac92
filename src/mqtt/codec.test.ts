import { test } from 'node:test';
import assert from 'node:assert/strict';
import mqttPacket from 'mqtt-packet';
import { decodeAckFast, decodeConnectFast, decodeDisconnectFast, decodeFrame, decodePublishFast, encodeAck, encodeForwardedProperties,
  encodePacket, encodePublish } from './codec.ts';

test('v3.1.1 PUBLISH QoS 1 bytes, field by field', { timeout: 5_000 }, () => {
  const frame = encodePublish({
    topic: Buffer.from('a/b'), payload: Buffer.from('hi'), qos: 1, retain: true, dup: true, packetId: 10,
    protocolVersion: 4, forwarded: Buffer.alloc(0), messageExpiry: -1, topicAlias: 0, subscriptionIds: undefined,
  });
  assert.equal(frame.toString('hex'), [
    '3b', // PUBLISH, DUP=1, QoS=1, RETAIN=1
    '09', // Remaining Length 9
    '0003', '612f62', // topic "a/b"
    '000a', // packet id 10
    '6869', // payload "hi"
  ].join(''));
});

test('v5 PUBLISH with every property round-trips through mqtt-packet', { timeout: 5_000 }, () => {
  const forwarded = encodeForwardedProperties({
    payloadFormatIndicator: true, contentType: 'text/plain', responseTopic: 'r/t',
    correlationData: Buffer.from([1, 2, 3]), userProperties: { a: '1', b: ['2', '3'] },
  });
  const frame = encodePublish({
    topic: Buffer.from('t'), payload: Buffer.from('x'), qos: 2, retain: false, dup: false, packetId: 65535,
    protocolVersion: 5, forwarded, messageExpiry: 30, topicAlias: 3, subscriptionIds: [1, 300],
  });
  const parser = mqttPacket.parser({ protocolVersion: 5 });
  let packet: mqttPacket.IPublishPacket | undefined;
  parser.on('packet', (p) => { packet = p as mqttPacket.IPublishPacket; });
  parser.parse(frame);
  assert.ok(packet);
  assert.equal(packet.topic, 't');
  assert.equal(packet.messageId, 65535);
  assert.deepEqual({ ...packet.properties, userProperties: { ...packet.properties?.userProperties } }, {
    messageExpiryInterval: 30, topicAlias: 3, subscriptionIdentifier: [1, 300], payloadFormatIndicator: true,
    contentType: 'text/plain', responseTopic: 'r/t', correlationData: Buffer.from([1, 2, 3]), userProperties: { a: '1', b: ['2', '3'] },
  });
});

test('decoder reports malformed frames as errors', { timeout: 5_000 }, () => {
  // SUBSCRIBE with reserved header bits 0000 instead of 0010 [MQTT-3.8.1-1].
  const r = decodeFrame(Buffer.from('8006000100016100', 'hex'), 4);
  assert.ok(r instanceof Error);
  // The shared parser is usable again afterwards.
  const ok = decodeFrame(Buffer.from('c000', 'hex'), 4);
  assert.ok(!(ok instanceof Error) && ok.cmd === 'pingreq');
});

test('fast PUBLISH decoding agrees with mqtt-packet, and rejects what the spec calls malformed', { timeout: 5_000 }, () => {
  for (const protocolVersion of [4, 5] as const) {
    for (const qos of [0, 1, 2] as const) {
      const frame = mqttPacket.generate({ cmd: 'publish', topic: 'a/ü', payload: Buffer.from('xyz'), qos, dup: qos > 0, retain: true, messageId: qos > 0 ? 7 : undefined }, { protocolVersion });
      const fast = decodePublishFast(frame, protocolVersion);
      assert.ok(fast !== null && !(fast instanceof Error));
      assert.equal(fast.topic, 'a/ü');
      assert.equal(fast.qos, qos);
      assert.equal(fast.retain, true);
      assert.equal(fast.messageId, qos > 0 ? 7 : undefined);
      assert.equal(Buffer.from(fast.payload).toString(), 'xyz');
    }
  }
  // [MQTT-3.3.1-4] QoS 3; [MQTT-3.3.1-2] DUP on QoS 0; [MQTT-2.2.1-3] packet id 0.
  assert.ok(decodePublishFast(Buffer.from('36050001610000', 'hex'), 4) instanceof Error);
  assert.ok(decodePublishFast(Buffer.from('380300016178', 'hex'), 4) instanceof Error);
  assert.ok(decodePublishFast(Buffer.from('32050001610000', 'hex'), 4) instanceof Error);
  // v5 with properties goes to the generic decoder.
  const withProps = mqttPacket.generate({ cmd: 'publish', topic: 't', payload: Buffer.from('x'), qos: 0, dup: false, retain: false, properties: { contentType: 'a' } }, { protocolVersion: 5 });
  assert.equal(decodePublishFast(withProps, 5), null);
});

test('acks use the two-byte form unless a v5 reason code must be said (§3.4.2.1)', { timeout: 5_000 }, () => {
  assert.equal(encodeAck('puback', 258, 0, 5).toString('hex'), '40020102');
  assert.equal(encodeAck('pubrel', 1, 0, 4).toString('hex'), '62020001');
  assert.equal(encodeAck('pubrec', 1, 0x97, 5).toString('hex'), '5003000197');
  assert.equal(encodeAck('pubcomp', 1, 0x92, 4).toString('hex'), '70020001'); // v3.1.1 cannot carry it
});

test('fast ack decoding agrees with mqtt-packet', { timeout: 5_000 }, () => {
  for (const protocolVersion of [4, 5] as const) {
    for (const cmd of ['puback', 'pubrec', 'pubrel', 'pubcomp'] as const) {
      for (const reasonCode of protocolVersion === 5 ? [0, 0x10] : [0]) {
        const bytes = mqttPacket.generate({ cmd, messageId: 513, reasonCode }, { protocolVersion });
        const type = bytes[0]! >> 4;
        const fast = decodeAckFast(bytes, type, protocolVersion);
        const slow = decodeFrame(bytes, protocolVersion) as { cmd: string; messageId: number; reasonCode?: number };
        if (fast === null) continue; // long form with properties: generic decoder
        assert.ok(!(fast instanceof Error));
        assert.equal(fast.cmd, slow.cmd);
        assert.equal((fast as { messageId: number }).messageId, 513);
        assert.equal((fast as { reasonCode?: number }).reasonCode ?? 0, slow.reasonCode ?? 0);
      }
    }
  }
  assert.ok(decodeAckFast(Buffer.from('60020001', 'hex'), 6, 4) instanceof Error); // PUBREL must have flags 0010
});

const connectFrame = (p: Partial<mqttPacket.IConnectPacket>): Buffer =>
  mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: 'dev-1', clean: true, keepalive: 60, ...p });

/** The fields the engine reads from a CONNECT, as the generic decoder gives them. */
function connectFields(p: mqttPacket.Packet | Error | null): unknown {
  assert.ok(p !== null && !(p instanceof Error) && p.cmd === 'connect');
  return { protocolVersion: p.protocolVersion, clean: p.clean, keepalive: p.keepalive, clientId: p.clientId,
    username: p.username, password: p.password, will: p.will, properties: p.properties };
}

test('fast CONNECT decoding gives what the generic decoder gives', { timeout: 5_000 }, () => {
  const cases: Partial<mqttPacket.IConnectPacket>[] = [
    {},
    { clean: false, keepalive: 0 },
    { clientId: '' },
    { username: 'u' },
    { username: 'meter-7', password: Buffer.from([0, 1, 0xff, 0x80]) },
    { username: '', password: Buffer.alloc(0) },
    { protocolVersion: 5 },
    { protocolVersion: 5, username: 'u', password: Buffer.from('p'), keepalive: 65535 },
  ];
  for (const c of cases) {
    const frame = connectFrame(c);
    const fast = decodeConnectFast(frame);
    assert.notEqual(fast, null, JSON.stringify(c));
    assert.deepEqual(connectFields(fast), connectFields(decodeFrame(frame, c.protocolVersion ?? 4)), JSON.stringify(c));
  }
});

test('fast CONNECT decoding leaves everything unusual to the generic decoder', { timeout: 5_000 }, () => {
  const frames = [
    connectFrame({ will: { topic: 'w', payload: Buffer.from('x'), qos: 1, retain: false } }),
    connectFrame({ protocolVersion: 5, properties: { sessionExpiryInterval: 10 } }),
    connectFrame({ protocolId: 'MQIsdp', protocolVersion: 3 }),
    connectFrame({ clientId: 'zähler' }), // non-ASCII: the generic decoder's UTF-8 handling applies
    connectFrame({ username: 'a\u0000b' }),
  ];
  // [MQTT-3.1.2-3] reserved flag set
  const reserved = connectFrame({});
  reserved[9] = reserved[9]! | 0x01;
  frames.push(reserved);
  // trailing byte after the payload
  const trailing = Buffer.concat([connectFrame({}), Buffer.from([0])]);
  trailing[1] = trailing[1]! + 1;
  frames.push(trailing);
  // truncated client id
  const short = connectFrame({ clientId: 'abcdef' }).subarray(0, -2);
  short[1] = short.length - 2;
  frames.push(short);
  for (const f of frames) assert.equal(decodeConnectFast(f), null, f.toString('hex'));
});

test('fast DISCONNECT decoding takes only the two-byte form', { timeout: 5_000 }, () => {
  assert.deepEqual(decodeDisconnectFast(Buffer.from('e000', 'hex')), { cmd: 'disconnect' });
  assert.equal(decodeDisconnectFast(Buffer.from('e00104', 'hex')), null);
  assert.equal(decodeDisconnectFast(Buffer.from('e100', 'hex')), null); // [MQTT-2.1.3-1] bad flags: generic decoder
});

test('hand-encoded CONNACK and PINGRESP match the generic encoder', { timeout: 5_000 }, () => {
  for (const v of [3, 4] as const) {
    for (const sessionPresent of [false, true]) {
      for (const returnCode of [0, 5]) {
        const packet = { cmd: 'connack', sessionPresent, returnCode } as const;
        assert.deepEqual(encodePacket(packet, v), mqttPacket.generate(packet, { protocolVersion: v }));
      }
    }
  }
  assert.deepEqual(encodePacket({ cmd: 'pingresp' }, 5), mqttPacket.generate({ cmd: 'pingresp' }, { protocolVersion: 5 }));
});

test('v5 properties are exactly their Property Length, and every value is whole (§2.2.2.1): else malformed', { timeout: 5_000 }, () => {
  // PUBLISH QoS 0, topic "t", then the Property Length, the properties, and the payload.
  const publish = (properties: number[], payload: number[] = []): Buffer => {
    const body = [0x00, 0x01, 0x74, properties.length, ...properties, ...payload];
    return Buffer.from([0x30, body.length, ...body]);
  };
  const k = 0x6b;
  // The fuzzer's finding: a user property whose value's length runs past the packet. mqtt-packet gave
  // the value as null; delivered to a v5 subscriber it broke the encoder (a contained crash per message).
  const nullValue = decodeFrame(publish([0x26, 0x00, 0x01, k, 0x00, 0x05]), 5);
  assert.ok(nullValue instanceof Error, 'a user property value past the end');
  assert.match(nullValue.message, /propert/i);
  // A Content Type [0x03] cut the same way.
  assert.ok(decodeFrame(publish([0x03, 0x00, 0x09]), 5) instanceof Error, 'a content type past the end');
  // Correlation Data [0x09] (binary) cut the same way.
  assert.ok(decodeFrame(publish([0x09, 0x00, 0x09]), 5) instanceof Error, 'correlation data past the end');
  // A Content Type read on into the payload: the property block says 4 bytes, the string takes 7.
  const overrun = decodeFrame(publish([0x03, 0x00, 0x05, 0x61], [0x62, 0x63, 0x64, 0x65]), 5);
  assert.ok(overrun instanceof Error, 'a string longer than its property block');
  // Whole properties still decode.
  const whole = decodeFrame(publish([0x26, 0x00, 0x01, k, 0x00, 0x01, 0x76, 0x03, 0x00, 0x01, 0x61], [0x78]), 5);
  assert.ok(!(whole instanceof Error) && whole.cmd === 'publish');
  assert.deepEqual({ ...whole.properties?.userProperties }, { k: 'v' });
  assert.equal(whole.properties?.contentType, 'a');
  assert.deepEqual([...whole.payload as Buffer], [0x78]);
});
