import { test } from 'node:test';
import assert from 'node:assert/strict';
import mqttPacket from 'mqtt-packet';
import { decodeAckFast, decodeConnectFast, decodeDisconnectFast, decodeFrame, decodePublishFast, encodeAck, encodeForwardedProperties,
  encodePacket, encodePublish, forwardedPropertiesOf, PacketLimitError, topicFilterCount, variableHeaderOffset, type PublishFrame } from './codec.ts';

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
  assert.equal(failure(decodePublishFast(Buffer.from('36050001610001', 'hex'), 4)), 'Packet must not have both QoS bits set to 1');
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

// ---------------------------------------------------------------------------------------------------
// Issue 18 (mutation testing): each test below pins a behaviour a planted fault in codec.ts changed
// without any test noticing.

/** The error message of a decode that must fail. */
function failure(result: unknown): string {
  assert.ok(result instanceof Error, `expected an error, got ${JSON.stringify(result)}`);
  return result.message;
}

/** A decode that must succeed. */
function decoded(result: mqttPacket.Packet | Error): mqttPacket.Packet {
  assert.ok(!(result instanceof Error), `expected a packet, got ${result instanceof Error ? result.message : ''}`);
  return result;
}

test('[MQTT-1.5.4-1] [MQTT-1.5.4-2] a string with U+0000 or ill-formed UTF-8 makes the packet malformed, wherever it is', { timeout: 5_000 }, () => {
  // SUBSCRIBE id 1, one filter of three bytes, options 0.
  const subscribe = (filter: number[]): Buffer => Buffer.from([0x82, 5 + filter.length, 0x00, 0x01, 0x00, filter.length, ...filter, 0x00]);
  assert.equal(failure(decodeFrame(subscribe([0x61, 0x00, 0x62]), 4)), 'U+0000 in a UTF-8 string');
  assert.equal(failure(decodeFrame(subscribe([0x61, 0xff, 0x62]), 4)), 'ill-formed UTF-8 string');
  assert.equal(failure(decodeFrame(subscribe([0xc3]), 4)), 'ill-formed UTF-8 string', 'a sequence cut short');
  const fine = decoded(decodeFrame(subscribe([0x61, 0xc3, 0xbc]), 4));
  assert.equal(fine.cmd === 'subscribe' && fine.subscriptions[0]?.topic, 'aü');
  // The first bad string is the one reported; the next frame starts clean.
  const connect = connectFrame({ clientId: 'a\u0000', username: 'b\uffff' });
  assert.equal(failure(decodeFrame(connect, 4)), 'U+0000 in a UTF-8 string');
  assert.equal(decoded(decodeFrame(connectFrame({ clientId: 'zähler' }), 4)).cmd, 'connect');
  // The U+0000 is in the string's bytes, not its length field: a filter of 256 bytes (length 01 00) is fine.
  const long = decoded(decodeFrame(mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'a'.repeat(256), qos: 0 }] }, { protocolVersion: 4 }), 4));
  assert.equal(long.cmd === 'subscribe' && long.subscriptions[0]?.topic.length, 256);
});

test('a v5 property block whose length is two bytes is measured exactly too', { timeout: 5_000 }, () => {
  // 130 bytes of properties (Property Length 82 01): 18 user properties "k"="v" (7 bytes each) and a Content Type "a" (4).
  const block: number[] = [];
  for (let i = 0; i < 18; i++) block.push(0x26, 0x00, 0x01, 0x6b, 0x00, 0x01, 0x76);
  block.push(0x03, 0x00, 0x01, 0x61);
  assert.equal(block.length, 130);
  const body = (length: number[]): number[] => [0x00, 0x01, 0x74, ...length, ...block, 0x78];
  const frame = (length: number[]): Buffer => { const b = body(length); return Buffer.from([0x30, (b.length & 0x7f) | 0x80, b.length >> 7, ...b]); };
  const ok = decoded(decodeFrame(frame([0x82, 0x01]), 5));
  assert.ok(ok.cmd === 'publish');
  assert.deepEqual([...ok.payload as Buffer], [0x78]);
  // The same block said to be one byte shorter: its last property runs one byte past it.
  assert.equal(failure(decodeFrame(frame([0x81, 0x01]), 5)), 'the properties take 130 bytes, their Property Length says 129');
  // A user property repeated (an array of values), the last one cut at the end of the packet.
  const repeated = [0x26, 0x00, 0x01, 0x6b, 0x00, 0x01, 0x76, 0x26, 0x00, 0x01, 0x6b, 0x00, 0x05];
  const cut = [0x00, 0x01, 0x74, repeated.length, ...repeated];
  assert.equal(failure(decodeFrame(Buffer.from([0x30, cut.length, ...cut]), 5)), 'a property value runs past the end of the packet');
});

test('limits: more user properties or topic filters than allowed is a PacketLimitError naming the limit; exactly the limit passes', { timeout: 5_000 }, () => {
  const userProperties = { a: ['1', '2'], b: '3' }; // three
  const publish = mqttPacket.generate({ cmd: 'publish', topic: 't', payload: Buffer.from('x'), qos: 0, dup: false, retain: false, properties: { userProperties } }, { protocolVersion: 5 });
  const over = decodeFrame(publish, 5, { maxUserProperties: 2, maxTopicFilters: 10 });
  assert.ok(over instanceof PacketLimitError);
  assert.equal(over.limit, 'maxUserProperties');
  assert.equal(over.message, 'more than 2 user properties in one packet');
  assert.equal(decoded(decodeFrame(publish, 5, { maxUserProperties: 3, maxTopicFilters: 10 })).cmd, 'publish');
  // Counted per packet: the next packet starts from zero.
  assert.equal(decoded(decodeFrame(publish, 5, { maxUserProperties: 3, maxTopicFilters: 10 })).cmd, 'publish');
  // Without limits, any number.
  assert.equal(decoded(decodeFrame(publish, 5)).cmd, 'publish');
  for (const protocolVersion of [4, 5] as const) {
    const subscriptions = ['a', 'b/c', 'd'].map((topic) => ({ topic, qos: 1 as const }));
    const subscribe = mqttPacket.generate({ cmd: 'subscribe', messageId: 3, subscriptions, ...(protocolVersion === 5 ? { properties: { subscriptionIdentifier: 300 } } : {}) }, { protocolVersion });
    const unsubscribe = mqttPacket.generate({ cmd: 'unsubscribe', messageId: 3, unsubscriptions: ['a', 'b/c', 'd'] }, { protocolVersion });
    for (const [frame, name] of [[subscribe, 'SUBSCRIBE'], [unsubscribe, 'UNSUBSCRIBE']] as const) {
      const refused = decodeFrame(frame, protocolVersion, { maxUserProperties: 10, maxTopicFilters: 2 });
      assert.ok(refused instanceof PacketLimitError, `${name} v${protocolVersion}`);
      assert.equal(refused.limit, 'maxTopicFilters');
      assert.equal(refused.message, `more than 2 topic filters in one ${name}`);
      assert.notEqual(decodeFrame(frame, protocolVersion, { maxUserProperties: 10, maxTopicFilters: 3 }) instanceof Error, true, `${name} v${protocolVersion} at the limit`);
    }
  }
});

test('topicFilterCount counts filters on the raw bytes, past v5 properties of any length, and stops after enough', { timeout: 5_000 }, () => {
  const filters = Array.from({ length: 5 }, (_, i) => ({ topic: `f/${i}`, qos: 0 as const }));
  const v4 = mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: filters }, { protocolVersion: 4 });
  assert.equal(topicFilterCount(v4, 8, 4, 100), 5);
  // A 200-byte user property: the Property Length takes two bytes (c8 01... ), skipped whole.
  const v5 = mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: filters, properties: { userProperties: { k: 'v'.repeat(200) } } }, { protocolVersion: 5 });
  assert.equal(topicFilterCount(v5, 8, 5, 100), 5);
  const un = mqttPacket.generate({ cmd: 'unsubscribe', messageId: 1, unsubscriptions: filters.map((f) => f.topic) }, { protocolVersion: 4 });
  assert.equal(topicFilterCount(un, 10, 4, 100), 5, 'no options byte in an UNSUBSCRIBE');
  assert.equal(topicFilterCount(v4, 8, 4, 2), 3, 'stops one past stopAfter');
  assert.equal(topicFilterCount(v4, 8, 4, 0), 1);
  // A frame whose Remaining Length takes two bytes: the filters start one byte later.
  const many = Array.from({ length: 40 }, (_, i) => ({ topic: `topic/${i}`, qos: 0 as const }));
  assert.equal(topicFilterCount(mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: many }, { protocolVersion: 4 }), 8, 4, 100), 40);
});

test('what the generic decoder lets through and the specification refuses', { timeout: 5_000 }, () => {
  // [MQTT-2.2.1-3] a PUBLISH QoS 1 with Packet Identifier 0; 1 and 65535 are fine.
  assert.equal(failure(decodeFrame(Buffer.from([0x32, 0x07, 0x00, 0x01, 0x74, 0x00, 0x00, 0x00, 0x78]), 5)), 'Packet identifier must be 1-65535');
  const alias = (id: number): Buffer => Buffer.from([0x32, 0x0a, 0x00, 0x01, 0x74, id >> 8, id & 0xff, 0x03, 0x23, 0x00, 0x01, 0x78]);
  assert.equal(decoded(decodeFrame(alias(65535), 5)).cmd, 'publish');
  assert.equal(decoded(decodeFrame(alias(1), 5)).cmd, 'publish');
  // v3.1.1 acks are exactly two bytes long [§3.4.1]; v5 ones may be longer.
  assert.equal(failure(decodeFrame(Buffer.from('4003000100', 'hex'), 4)), 'puback must have a Remaining Length of 2');
  assert.equal(decoded(decodeFrame(Buffer.from('4003000110', 'hex'), 5)).cmd, 'puback');
  for (const [hex, v] of [['40020000', 4], ['50020000', 5], ['62020000', 4], ['70020000', 5]] as const) {
    assert.equal(failure(decodeFrame(Buffer.from(hex, 'hex'), v)), 'Packet identifier must be 1-65535', hex);
  }
  assert.equal(decoded(decodeFrame(Buffer.from('4002ffff', 'hex'), 4)).cmd, 'puback');
  // [MQTT-2.3.1-1] SUBSCRIBE and UNSUBSCRIBE with Packet Identifier 0.
  assert.equal(failure(decodeFrame(Buffer.from('8206000000016100', 'hex'), 4)), 'Packet identifier must be 1-65535');
  assert.equal(failure(decodeFrame(Buffer.from('a2050000000161', 'hex'), 4)), 'Packet identifier must be 1-65535');
  // PINGREQ and a v3.1.1 DISCONNECT have no body; a v5 DISCONNECT may.
  assert.equal(failure(decodeFrame(Buffer.from('c00100', 'hex'), 4)), 'PINGREQ must have a Remaining Length of 0');
  assert.equal(failure(decodeFrame(Buffer.from('e00100', 'hex'), 4)), 'DISCONNECT must have a Remaining Length of 0');
  assert.equal(decoded(decodeFrame(Buffer.from('e00104', 'hex'), 5)).cmd, 'disconnect');
  assert.equal(decoded(decodeFrame(Buffer.from('e000', 'hex'), 4)).cmd, 'disconnect');
  // [MQTT-3.1.2-22] v3.1.1: a password without a user name; v5 allows it.
  // CONNECT "MQTT" level 4, flags 42 (password, clean), keepalive 60, client id "ab", password "p".
  const passwordOnly = Buffer.from('1011' + '00044d515454' + '04' + '42' + '003c' + '00026162' + '000170', 'hex');
  assert.equal(failure(decodeFrame(passwordOnly, 4)), 'Password flag set without the User Name flag');
  assert.equal(decodeConnectFast(passwordOnly), null, 'the fast path leaves it to the generic decoder');
  const v5 = Buffer.from('1012' + '00044d515454' + '05' + '42' + '003c' + '00' + '00026162' + '000170', 'hex');
  assert.equal(decoded(decodeFrame(v5, 5)).cmd, 'connect', 'v5 allows a password alone');
  // Bytes left over after the fields.
  assert.equal(failure(decodeFrame(Buffer.from('20030000ff', 'hex'), 4)), '1 bytes left over after the connack fields');
  assert.equal(failure(decodeFrame(Buffer.from('d00100', 'hex'), 4)), '1 bytes left over after the pingresp fields');
});

test('a frame the parser cannot finish is an error, and the parser is replaced so the next frame decodes', { timeout: 5_000 }, () => {
  // A PUBLISH whose Remaining Length (5) is longer than the frame: mqtt-packet waits for more, without an error.
  assert.equal(failure(decodeFrame(Buffer.from('300500016178', 'hex'), 4)), 'Incomplete packet');
  assert.equal(decoded(decodeFrame(Buffer.from('c000', 'hex'), 4)).cmd, 'pingreq');
  // A parser error, then a good packet on the same version.
  assert.ok(decodeFrame(Buffer.from('8006000100016100', 'hex'), 5) instanceof Error);
  assert.equal(decoded(decodeFrame(Buffer.from('e000', 'hex'), 5)).cmd, 'disconnect');
  // A v5 CONNECT switches mqtt-packet's parser to v5; the next v4 frame is read as v4 again.
  assert.equal(decoded(decodeFrame(connectFrame({ protocolVersion: 5 }), 4)).cmd, 'connect');
  const publish = decoded(decodeFrame(Buffer.from('300400016178', 'hex'), 4));
  assert.ok(publish.cmd === 'publish' && publish.properties === undefined);
  assert.equal(Buffer.from(publish.payload).toString(), 'x', 'no v5 Property Length read from the payload');
});

test('fast PUBLISH decoding: cut frames are errors, the known topic is used as given, small payloads are copied and large ones kept', { timeout: 5_000 }, () => {
  assert.equal(failure(decodePublishFast(Buffer.from('3001', 'hex'), 4)), 'Cannot parse topic');
  assert.equal(failure(decodePublishFast(Buffer.from('300200', 'hex'), 4)), 'Cannot parse topic');
  assert.equal(failure(decodePublishFast(Buffer.from('3004000261', 'hex'), 4)), 'Cannot parse topic');
  assert.equal(failure(decodePublishFast(Buffer.from('320400016100', 'hex'), 4)), 'Cannot parse messageId');
  assert.equal(failure(decodePublishFast(Buffer.from('3205000161000a', 'hex'), 5)), 'Cannot parse properties length');
  // An empty topic (the engine judges it) and a topic with nothing after it.
  const empty = decodePublishFast(Buffer.from('30020000', 'hex'), 4);
  assert.ok(empty !== null && !(empty instanceof Error) && empty.topic === '' && empty.payload.length === 0);
  const topicOnly = decodePublishFast(Buffer.from('3003000161', 'hex'), 4);
  assert.ok(topicOnly !== null && !(topicOnly instanceof Error) && topicOnly.topic === 'a' && topicOnly.payload.length === 0);
  // Exactly the topic and the id: an empty payload.
  const bare = decodePublishFast(Buffer.from('32050001610009', 'hex'), 4);
  assert.ok(bare !== null && !(bare instanceof Error));
  assert.deepEqual([bare.topic, bare.messageId, bare.payload.length, bare.dup, bare.retain], ['a', 9, 0, false, false]);
  const v5 = decodePublishFast(Buffer.from('31050001610078', 'hex'), 5);
  assert.ok(v5 !== null && !(v5 instanceof Error));
  assert.deepEqual([v5.topic, v5.qos, v5.retain, Buffer.from(v5.payload).toString()], ['a', 0, true, 'x']);
  const known = decodePublishFast(Buffer.from('300400016178', 'hex'), 4, 'a');
  assert.ok(known !== null && !(known instanceof Error) && known.topic === 'a');
  const other = decodePublishFast(Buffer.from('30040001617a', 'hex'), 4, 'given');
  assert.ok(other !== null && !(other instanceof Error) && other.topic === 'given', 'the caller vouches for the bytes');
  for (const [size, copied] of [[16 * 1024, true], [16 * 1024 + 1, false]] as const) {
    const frame = mqttPacket.generate({ cmd: 'publish', topic: 't', payload: Buffer.alloc(size, 1), qos: 0, dup: false, retain: false }, { protocolVersion: 4 });
    const p = decodePublishFast(frame, 4);
    assert.ok(p !== null && !(p instanceof Error));
    assert.equal(p.payload.length, size);
    // Copied or a view, told by writing into the frame (comparing ArrayBuffers is not enough: a runtime whose
    // Buffer pool is larger hands both the frame and a small copy out of the same slab — Node 26 does).
    frame[frame.length - 1] = 2;
    assert.equal(p.payload[size - 1] === 1, copied, `${size} bytes copied: ${copied}`);
  }
});

test('the second round (issue 18): cut CONNECT headers, trailing bytes after filters, mqtt-packet\'s own errors pass through', { timeout: 5_000 }, () => {
  // A CONNECT that ends right after its keepalive (no client id length), and one whose user name flag
  // has nothing after the client id: not the fast path's (the generic decoder reports them).
  const headerOnly = Buffer.from('100a00044d515454040200 3c'.replace(/ /g, ''), 'hex');
  assert.equal(decodeConnectFast(headerOnly), null);
  const noUsername = Buffer.from('100e00044d51545404820' + '03c00026162', 'hex');
  assert.equal(noUsername.length, 16);
  assert.equal(decodeConnectFast(noUsername), null);
  // A SUBSCRIBE with one byte after its last filter: counting stops there (no length field to read),
  // and the decoder reports the frame.
  const trailing = Buffer.from('8207000100016100ff', 'hex');
  assert.equal(topicFilterCount(trailing, 8, 4, 100), 1);
  assert.ok(decodeFrame(trailing, 4, { maxUserProperties: 10, maxTopicFilters: 10 }) instanceof Error);
  // An UNSUBSCRIBE whose last filter is empty: a filter all the same (the decoder judges it), counted.
  assert.equal(topicFilterCount(Buffer.from('a20700010001610000', 'hex'), 10, 4, 100), 2);
  // mqtt-packet's own message for what it refuses (SUBSCRIBE header flags 0000) comes through as it is.
  assert.equal(failure(decodeFrame(Buffer.from('8006000100016100', 'hex'), 4)), 'Invalid header flag bits, must be 0x2 for subscribe packet');
});

test('the third round (issue 18): one byte where a string length goes, v5 properties that read as a client id, the indicator true', { timeout: 5_000 }, () => {
  // One byte after the keepalive, and one after the client id when a user name is flagged: no room for
  // a length field, so not the fast path's (reading one would throw past the end of the frame).
  const oneAfterKeepalive = Buffer.from('100b00044d5154540402003c00', 'hex');
  assert.equal(oneAfterKeepalive.length, 13);
  assert.equal(decodeConnectFast(oneAfterKeepalive), null);
  const oneAfterClientId = Buffer.from('100f00044d5154540482003c0002616200', 'hex');
  assert.equal(oneAfterClientId.length, 17);
  assert.equal(decodeConnectFast(oneAfterClientId), null);
  // A v5 CONNECT with properties is the generic decoder's, even when the bytes after its Property
  // Length would pass for a client id: read as a length, 0x1106 (the Session Expiry Interval's
  // identifier and its first byte) spans exactly to the end of the frame, every byte of it ASCII.
  const withProperties = connectFrame({ protocolVersion: 5, clientId: 'a'.repeat(4353), properties: { sessionExpiryInterval: 0x06010101 } });
  const at = variableHeaderOffset(withProperties) + 10;
  assert.equal(withProperties.subarray(at, at + 8).toString('hex'), '0511060101011101');
  assert.equal(withProperties.length - (at + 3), 0x1106);
  assert.equal(decodeConnectFast(withProperties), null);
  const generic = decodeFrame(withProperties, 5);
  assert.ok(!(generic instanceof Error) && generic.cmd === 'connect');
  assert.equal(generic.clientId, 'a'.repeat(4353));
  assert.equal(generic.properties?.sessionExpiryInterval, 0x06010101);
  // The Payload Format Indicator is forwarded unaltered [MQTT-3.3.2-4]: the byte 1 when true, 0 when false (§3.3.2.3.2).
  assert.equal(encodeForwardedProperties({ payloadFormatIndicator: true }).toString('hex'), '0101');
  assert.equal(encodeForwardedProperties({ payloadFormatIndicator: false }).toString('hex'), '0100');
});

test('importing the codec turns off mqtt-packet\'s table of 65,536 number buffers (about 7 MB)', { timeout: 5_000 }, () => {
  assert.equal(mqttPacket.writeToStream.cacheNumbers, false);
});

test('variableHeaderOffset skips a Remaining Length of one to four bytes', { timeout: 5_000 }, () => {
  assert.equal(variableHeaderOffset(Buffer.from('3000', 'hex')), 2);
  assert.equal(variableHeaderOffset(Buffer.from('307f', 'hex')), 2);
  assert.equal(variableHeaderOffset(Buffer.from('30800100', 'hex')), 3);
  assert.equal(variableHeaderOffset(Buffer.from('3080800100', 'hex')), 4);
  assert.equal(variableHeaderOffset(Buffer.from('308080800100', 'hex')), 5);
});

test('fast CONNECT decoding: every field and flag as the generic decoder reads it, and null for every byte it does not take', { timeout: 5_000 }, () => {
  const base = connectFrame({ clientId: 'ab', username: 'u', password: Buffer.from('pw'), keepalive: 258 });
  const fast = decodeConnectFast(base);
  assert.deepEqual(connectFields(fast), connectFields(decodeFrame(base, 4)));
  assert.equal(fast?.keepalive, 258);
  // Offsets: 10 type, 1 length, then 00 04 M Q T T (2..7), level (8), flags (9), keepalive (10, 11), client id (12…).
  for (let at = 2; at <= 7; at++) {
    const f = Buffer.from(base);
    f[at] = f[at]! ^ 0x01;
    assert.equal(decodeConnectFast(f), null, `protocol name byte ${at}`);
  }
  for (const level of [3, 6]) {
    const f = Buffer.from(base);
    f[8] = level;
    assert.equal(decodeConnectFast(f), null, `level ${level}`);
  }
  for (const bit of [0x01, 0x04, 0x08, 0x10, 0x20]) {
    const f = Buffer.from(base);
    f[9] = f[9]! | bit;
    assert.equal(decodeConnectFast(f), null, `flag ${bit}`);
  }
  const typeFlags = Buffer.from(base);
  typeFlags[0] = 0x11;
  assert.equal(decodeConnectFast(typeFlags), null, 'fixed header flags');
  // The clean flag, on and off.
  assert.equal(decodeConnectFast(connectFrame({ clean: true }))?.clean, true);
  assert.equal(decodeConnectFast(connectFrame({ clean: false }))?.clean, false);
  // A client id of 0x7f is ASCII; 0x80 and 0x00 are not (the generic decoder judges them).
  assert.equal(decodeConnectFast(connectFrame({ clientId: '\u007f' }))?.clientId, '\u007f');
  assert.equal(decodeConnectFast(connectFrame({ username: 'u\u0080' })), null);
  assert.equal(decodeConnectFast(connectFrame({ clientId: 'a\u0000' })), null);
  const raw80 = Buffer.from('100d00044d515454040200000001' + '80', 'hex');
  assert.equal(decodeConnectFast(raw80), null, 'a byte 0x80');
  // Cut inside the user name or the password, or just before the header ends.
  for (const cut of [1, 2, 3, 4]) {
    const f = Buffer.from(base.subarray(0, base.length - cut));
    f[1] = f.length - 2;
    assert.equal(decodeConnectFast(f), null, `cut by ${cut}`);
  }
  const header = Buffer.from(base.subarray(0, 11));
  header[1] = 9;
  assert.equal(decodeConnectFast(header), null, 'no room for the keepalive');
  // The shortest CONNECT: an empty client id, no user name: exactly 12 bytes of variable header and payload.
  const shortest = connectFrame({ clientId: '' });
  assert.equal(shortest.length, 14);
  assert.equal(decodeConnectFast(shortest)?.clientId, '');
  // A password whose length field is there but not its bytes; and one with no length field.
  const noPassword = connectFrame({ clientId: 'ab', username: 'u' });
  const flagged = Buffer.from(noPassword);
  flagged[9] = flagged[9]! | 0x40;
  assert.equal(decodeConnectFast(flagged), null, 'password flag, no password');
  const halfLength = Buffer.concat([flagged, Buffer.from([0x00])]);
  halfLength[1] = halfLength[1]! + 1;
  assert.equal(decodeConnectFast(halfLength), null, 'one byte of a password length');
  const longer = Buffer.concat([flagged, Buffer.from([0x00, 0x03, 0x61])]);
  longer[1] = longer[1]! + 3;
  assert.equal(decodeConnectFast(longer), null, 'a password shorter than its length');
  // v5: a user name and password after the empty properties.
  const v5 = connectFrame({ protocolVersion: 5, clientId: 'c', username: 'user', password: Buffer.from('secret') });
  assert.deepEqual(connectFields(decodeConnectFast(v5)), connectFields(decodeFrame(v5, 5)));
  // The password is a copy: the frame may be reused.
  const copy = decodeConnectFast(base);
  base.fill(0);
  assert.deepEqual(copy?.password, Buffer.from('pw'));
});

test('fast DISCONNECT and ack decoding take exactly their forms', { timeout: 5_000 }, () => {
  assert.equal(decodeDisconnectFast(Buffer.from('e001', 'hex')), null);
  assert.equal(decodeDisconnectFast(Buffer.from('f000', 'hex')), null);
  assert.equal(decodeAckFast(Buffer.from('30020001', 'hex'), 3, 4), null, 'not an ack');
  assert.equal(decodeAckFast(Buffer.from('80020001', 'hex'), 8, 4), null, 'not an ack');
  assert.deepEqual(decodeAckFast(Buffer.from('62020102', 'hex'), 6, 4), { cmd: 'pubrel', messageId: 258 });
  for (const [hex, type] of [['41020001', 4], ['52020001', 5], ['72020001', 7], ['63020001', 6]] as const) {
    assert.equal(failure(decodeAckFast(Buffer.from(hex, 'hex'), type, 4)), 'Invalid header flag bits', hex);
  }
  assert.equal(decodeAckFast(Buffer.from('4002000100', 'hex'), 4, 4), null, 'length byte and frame disagree');
  assert.equal(decodeAckFast(Buffer.from('40030001', 'hex'), 4, 4), null);
  assert.equal(decodeAckFast(Buffer.from('4003000110', 'hex'), 4, 4), null, 'v3.1.1 has no reason code');
  assert.deepEqual(decodeAckFast(Buffer.from('5003000110', 'hex'), 5, 5), { cmd: 'pubrec', messageId: 1, reasonCode: 0x10 });
  assert.equal(decodeAckFast(Buffer.from('400400011000', 'hex'), 4, 5), null, 'properties: the generic decoder');
  assert.equal(decodeAckFast(Buffer.from('400100', 'hex'), 4, 5), null, 'one byte');
});

test('acks of every kind, and the generic encoder for all else', { timeout: 5_000 }, () => {
  for (const [cmd, type] of [['puback', '40'], ['pubrec', '50'], ['pubrel', '62'], ['pubcomp', '70']] as const) {
    assert.equal(encodeAck(cmd, 0x0102, 0, 4).toString('hex'), `${type}020102`);
    assert.equal(encodeAck(cmd, 0xfffe, 0x80, 5).toString('hex'), `${type}03fffe80`);
  }
  // v5 CONNACK, and a v3 CONNACK with no return code, go through mqtt-packet.
  const v5 = { cmd: 'connack', sessionPresent: true, reasonCode: 0 } as const;
  assert.deepEqual(encodePacket(v5, 5), mqttPacket.generate(v5, { protocolVersion: 5 }));
  assert.deepEqual(encodePacket({ cmd: 'suback', messageId: 4, granted: [1] }, 4).toString('hex'), '9003000401');
  assert.deepEqual(encodePacket({ cmd: 'pingresp' }, 4).toString('hex'), 'd000');
});

test('forwarded properties: each one alone is kept, none is undefined', { timeout: 5_000 }, () => {
  assert.equal(forwardedPropertiesOf(undefined), undefined);
  assert.equal(forwardedPropertiesOf({}), undefined);
  assert.equal(forwardedPropertiesOf({ messageExpiryInterval: 5, topicAlias: 2 }), undefined, 'not forwarded: per delivery');
  const each = [{ payloadFormatIndicator: false }, { contentType: 'c' }, { responseTopic: 'r' }, { correlationData: Buffer.from([1]) }, { userProperties: { k: 'v' } }];
  for (const p of each) assert.deepEqual(forwardedPropertiesOf(p), p);
  // Encoded: the indicator false is a 0 byte, multi-byte UTF-8 lengths count bytes.
  assert.equal(encodeForwardedProperties({ payloadFormatIndicator: false }).toString('hex'), '0100');
  assert.equal(encodeForwardedProperties({ contentType: 'ü' }).toString('hex'), '030002c3bc');
  assert.equal(encodeForwardedProperties({ correlationData: Buffer.alloc(300, 7) }).subarray(0, 3).toString('hex'), '09012c');
  assert.equal(encodeForwardedProperties(undefined).length, 0);
});

test('encodePublish: lengths across every varint boundary, properties only when set, round-tripping through mqtt-packet', { timeout: 15_000 }, () => {
  const frame = (over: Partial<PublishFrame>): PublishFrame => ({
    topic: Buffer.from('t'), payload: Buffer.alloc(0), qos: 0, retain: false, dup: false, packetId: 0, protocolVersion: 5,
    forwarded: Buffer.alloc(0), messageExpiry: -1, topicAlias: 0, subscriptionIds: undefined, ...over,
  });
  const parse = (bytes: Buffer, protocolVersion: 4 | 5): mqttPacket.IPublishPacket => {
    const parser = mqttPacket.parser({ protocolVersion });
    let packet: mqttPacket.IPublishPacket | undefined;
    parser.on('packet', (p) => { packet = p as mqttPacket.IPublishPacket; });
    assert.equal(parser.parse(bytes), 0, 'every byte read');
    assert.ok(packet);
    return packet;
  };
  // Remaining Lengths 127 | 128, 16383 | 16384 (v3.1.1: 3 bytes of topic and length, then the payload).
  for (const remaining of [127, 128, 16_383, 16_384, 2_097_151, 2_097_152]) {
    const bytes = encodePublish(frame({ protocolVersion: 4, payload: Buffer.alloc(remaining - 3, 1) }));
    const p = parse(bytes, 4);
    assert.equal(p.payload.length, remaining - 3, `${remaining}`);
    assert.equal(bytes.length, 1 + (remaining < 128 ? 1 : remaining < 16_384 ? 2 : remaining < 2_097_152 ? 3 : 4) + remaining);
  }
  // Subscription identifiers at each varint boundary, up to the largest (268,435,455).
  const ids = [1, 127, 128, 16_383, 16_384, 2_097_151, 2_097_152, 268_435_455];
  const withIds = parse(encodePublish(frame({ subscriptionIds: ids, qos: 1, packetId: 1 })), 5);
  assert.deepEqual(withIds.properties?.subscriptionIdentifier, ids);
  // Message expiry 0 is a property (it says "expires now"); -1 is none. Topic alias 1 is one; 0 is none.
  assert.deepEqual(parse(encodePublish(frame({ messageExpiry: 0 })), 5).properties, { messageExpiryInterval: 0 });
  assert.equal(parse(encodePublish(frame({})), 5).properties, undefined);
  assert.deepEqual(parse(encodePublish(frame({ topicAlias: 1, topic: Buffer.alloc(0) })), 5).properties, { topicAlias: 1 });
  // Each fixed-header bit on its own.
  for (const [over, first] of [[{}, 0x30], [{ retain: true }, 0x31], [{ qos: 1 as const, packetId: 1 }, 0x32], [{ qos: 2 as const, packetId: 1 }, 0x34], [{ dup: true, qos: 1 as const, packetId: 1 }, 0x3a]] as const) {
    assert.equal(encodePublish(frame({ protocolVersion: 4, ...over }))[0], first, JSON.stringify(over));
  }
  // A large property block (its length takes two bytes) and a payload after it.
  const forwarded = encodeForwardedProperties({ userProperties: { k: 'v'.repeat(300) } });
  const big = parse(encodePublish(frame({ forwarded, payload: Buffer.from('end'), messageExpiry: 70_000, qos: 2, packetId: 513 })), 5);
  assert.equal(big.properties?.userProperties?.k, 'v'.repeat(300));
  assert.equal(big.properties?.messageExpiryInterval, 70_000);
  assert.equal(big.messageId, 513);
  assert.equal(Buffer.from(big.payload).toString(), 'end');
  // v3.1.1 leaves out v5 properties even when given.
  const v4 = encodePublish(frame({ protocolVersion: 4, forwarded, messageExpiry: 5, topicAlias: 2, subscriptionIds: [3], payload: Buffer.from('p') }));
  assert.equal(v4.toString('hex'), '300400017470');
});
