/**
 * Hostile clients against a live engine (issue 12): each attack reproduced on the old main (a process
 * exit, a socket held open, a packet the specification refuses taken as valid) and now contained to the
 * one connection, while a well-behaved subscriber and publisher keep working (the watchdog).
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import { after, before, test } from 'node:test';
import { startEngine } from '../harness/engine.ts';
import type { TestBroker } from '../harness/broker.ts';
import { RawClient, Watchdog, closeAfter, expectDisconnect, field, frame, rawClient, uniqueId, withTimeout } from '../conformance/helpers.ts';

const HANDSHAKE_MS = 300;
const CONNECT_MS = 800;
let broker: TestBroker;
before(async () => {
  broker = await startEngine({ tls: true, handshakeTimeoutMs: HANDSHAKE_MS, connectTimeoutMs: CONNECT_MS });
}, { timeout: 60_000 });
after(async () => { await broker?.close(); }, { timeout: 30_000 });

/** A CONNECT frame with raw client id bytes; level 4 or 5 (v5 gets an empty property list). */
function connectFrame(clientId: Buffer | string, level: 4 | 5, options: { flags?: number; tail?: Buffer } = {}): Buffer {
  const header = Buffer.concat([field('MQTT'), Buffer.from([level, options.flags ?? 0x02, 0x00, 0x00]), level === 5 ? Buffer.from([0]) : Buffer.alloc(0)]);
  return frame(0x10, Buffer.concat([header, field(clientId), options.tail ?? Buffer.alloc(0)]));
}

/** The reason code of a PUBACK/PUBREC (0 when absent, as in the short form). */
function ackCode(packet: unknown): number {
  return (packet as { reasonCode?: number } | undefined)?.reasonCode ?? 0;
}

function deep(levels: number): string {
  return Array.from({ length: levels }, () => 'a').join('/');
}

function openPlain(port: number, localAddress = '127.0.0.1'): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port, localAddress });
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

function closed(socket: net.Socket, ms: number, what: string): Promise<void> {
  if (socket.destroyed || socket.readyState === 'closed') return Promise.resolve();
  return withTimeout(new Promise<void>((resolve) => socket.once('close', () => resolve())), ms, what);
}

test('a SUBSCRIBE 300 levels deep is refused (0x8F) and its connection closing does not take the process down', { timeout: 45_000 }, async (t) => {
  const dog = await Watchdog.start(t, broker);
  const { raw } = await rawClient(t, broker);
  assert.deepEqual(await raw.subscribe([deep(300), 'ok/+'], 1), [0x8f, 1], 'the deep filter refused, the next one granted');
  raw.close(); // the old main threw 'too many words' from Router.remove here, out of the socket's close event
  await raw.expectClosed();
  const { raw: v3 } = await rawClient(t, broker, {}, { protocolVersion: 4 });
  assert.deepEqual(await v3.subscribe(deep(129), 1), [0x80], 'v3.1.1 hears the SUBACK failure code');
  // 128 levels (the default limit) still work.
  assert.deepEqual(await v3.subscribe(deep(128), 1), [1]);
  v3.close();
  await v3.expectClosed();
  await dog.check();
  assert.equal(broker.engine!.stats.handlerCrashes, 0);
});

test('a PUBLISH 300 levels deep ends that connection with 0x90; the router never sees it', { timeout: 10_000 }, async (t) => {
  const dog = await Watchdog.start(t, broker);
  const { raw } = await rawClient(t, broker);
  raw.send({ cmd: 'publish', topic: deep(300), payload: 'x', qos: 1, messageId: 1, dup: false, retain: false });
  await expectDisconnect(t, raw, 0x90);
  // A will that deep is refused at CONNECT.
  const other = closeAfter(t, await RawClient.open(broker));
  other.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clean: true, clientId: uniqueId('deepwill'), keepalive: 0,
    will: { topic: deep(200), payload: Buffer.from('x'), qos: 0, retain: false } });
  const connack = await other.next('connack');
  assert.equal(connack.reasonCode, 0x90);
  await dog.check();
  assert.equal(broker.engine!.stats.handlerCrashes, 0);
});

test('a topic longer than maxTopicLength is refused like one too deep', { timeout: 10_000 }, async (t) => {
  const { raw } = await rawClient(t, broker);
  assert.deepEqual(await raw.subscribe(['x'.repeat(4097), 'x'.repeat(4096)], 0), [0x8f, 0]);
});

test('sockets that never start TLS are destroyed at the handshake deadline', { timeout: 10_000 }, async (t) => {
  const dog = await Watchdog.start(t, broker);
  const sockets = await Promise.all(Array.from({ length: 20 }, () => openPlain(broker.tlsPort!)));
  t.after(() => { for (const s of sockets) s.destroy(); });
  // The old main logged ERR_TLS_HANDSHAKE_TIMEOUT after 120 s and kept the socket open.
  await Promise.all(sockets.map((s, i) => closed(s, HANDSHAKE_MS * 10, `idle socket ${i} to be closed`)));
  await dog.check();
});

test('a TLS connection that finishes its handshake but sends no CONNECT is closed at the CONNECT deadline', { timeout: 10_000 }, async (t) => {
  const socket = await new Promise<tls.TLSSocket>((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port: broker.tlsPort, ca: broker.caPem, servername: 'localhost' });
    s.once('secureConnect', () => resolve(s));
    s.once('error', reject);
  });
  t.after(() => socket.destroy());
  await closed(socket, CONNECT_MS * 5, 'the silent TLS connection to be closed');
});

test('a first byte that is not CONNECT (an HTTP request) closes the socket at once [MQTT-3.1.0-1]', { timeout: 10_000 }, async (t) => {
  const socket = await openPlain(broker.port);
  t.after(() => socket.destroy());
  const protocolErrors = broker.engine!.stats.protocolErrors;
  socket.write('GET / HTTP/1.0\r\n\r\n'); // 18 bytes: the old main waited for a 69-byte "PUBACK"
  await closed(socket, CONNECT_MS * 5, 'the HTTP client to be dropped');
  // Closed for what it sent, counted as a protocol error; a close by the CONNECT deadline counts none.
  assert.equal(broker.engine!.stats.protocolErrors, protocolErrors + 1, 'closed for its first byte, not by the CONNECT deadline');
});

test('per source address: open sockets and new sockets per second are capped; other addresses are not affected', { timeout: 15_000 }, async (t) => {
  const capped = await startEngine({ maxConnectionsPerAddress: 3, connectionRatePerAddress: 0 });
  t.after(() => capped.close());
  const held = await Promise.all([1, 2, 3].map(() => openPlain(capped.port, '127.0.0.5')));
  t.after(() => { for (const s of held) s.destroy(); });
  const fourth = await openPlain(capped.port, '127.0.0.5');
  await closed(fourth, 2_000, 'the 4th socket from one address to be refused');
  // Another address still gets in and speaks MQTT.
  const { raw, connack } = await RawClient.connect(capped, {});
  closeAfter(t, raw);
  assert.equal(connack.reasonCode, 0);
  // When one closes, that address may open another.
  held.pop()!.destroy();
  await waitUntil(() => capped.engine!.admission.openFrom('127.0.0.5') === 2, 'the closed socket to be forgotten');
  const again = await openPlain(capped.port, '127.0.0.5');
  t.after(() => again.destroy());
  assert.equal(capped.engine!.admission.openFrom('127.0.0.5'), 3);
  assert.ok(capped.engine!.stats.socketsRefused >= 1);

  const rated = await startEngine({ connectionRatePerAddress: 2 });
  t.after(() => rated.close());
  const burst = await Promise.all(Array.from({ length: 4 }, () => openPlain(rated.port, '127.0.0.6')));
  t.after(() => { for (const s of burst) s.destroy(); });
  const over = await openPlain(rated.port, '127.0.0.6');
  await closed(over, 2_000, 'the socket over the per-address rate to be refused');
  const elsewhere = await RawClient.connect(rated, {});
  closeAfter(t, elsewhere.raw);
  assert.equal(elsewhere.connack.reasonCode, 0, 'another address is not rate limited');
});

async function waitUntil(predicate: () => boolean, what: string, ms = 2_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

// ---- packets the specification refuses ----------------------------------------------------------

async function refusedConnect(t: Parameters<typeof Watchdog.start>[0], bytes: Buffer, level: 4 | 5): Promise<RawClient> {
  const raw = closeAfter(t, await RawClient.open(broker, { protocolVersion: level }));
  raw.sendBytes(bytes);
  await raw.expectClosed();
  assert.ok(!raw.received.some((p) => p.cmd === 'connack' && (p.returnCode === 0 || p.reasonCode === 0)), 'never accepted');
  return raw;
}

test('[MQTT-3.1.2-22] a v3.1.1 CONNECT with a password but no user name is refused', { timeout: 10_000 }, async (t) => {
  const dog = await Watchdog.start(t, broker);
  await refusedConnect(t, connectFrame(uniqueId('nouser'), 4, { flags: 0x42, tail: field('secret') }), 4);
  await dog.check();
});

test('[MQTT-1.5.4-1] [MQTT-1.5.4-2] client ids that are ill-formed UTF-8 or hold U+0000 are malformed (v5: CONNACK 0x81)', { timeout: 10_000 }, async (t) => {
  const dog = await Watchdog.start(t, broker);
  for (const id of [Buffer.from([0xff, 0x64, 0x65, 0x76]), Buffer.from([0xfe, 0x64, 0x65, 0x76]), Buffer.from('de\u0000v'), Buffer.from([0xed, 0xa0, 0x80])]) {
    const raw = await refusedConnect(t, connectFrame(id, 5), 5);
    const connack = raw.received.find((p) => p.cmd === 'connack');
    assert.equal(connack?.reasonCode, 0x81, `client id ${id.toString('hex')}`);
    await refusedConnect(t, connectFrame(id, 4), 4);
  }
  await dog.check();
});

test('[MQTT-1.5.4-1] a user name that is ill-formed UTF-8 is malformed', { timeout: 10_000 }, async (t) => {
  await refusedConnect(t, connectFrame(uniqueId('baduser'), 4, { flags: 0x82, tail: field([0xc3, 0x28]) }), 4);
});

test('bytes left over after the CONNECT fields make it malformed', { timeout: 10_000 }, async (t) => {
  await refusedConnect(t, connectFrame(uniqueId('tail'), 4, { tail: Buffer.from([1, 2, 3]) }), 4);
  await refusedConnect(t, connectFrame(uniqueId('tail'), 5, { tail: Buffer.from([1]) }), 5);
});

test('[MQTT-1.5.4-1] SUBSCRIBE and UNSUBSCRIBE filters that are ill-formed UTF-8 or hold U+0000 end the connection', { timeout: 10_000 }, async (t) => {
  const dog = await Watchdog.start(t, broker);
  for (const filter of [Buffer.from([0x61, 0x2f, 0xff]), Buffer.from('a/\u0000')]) {
    const { raw } = await rawClient(t, broker);
    raw.sendBytes(frame(0x82, Buffer.concat([Buffer.from([0x00, 0x07, 0x00]), field(filter), Buffer.from([0x01])])));
    await expectDisconnect(t, raw, 0x81);
    const { raw: u } = await rawClient(t, broker);
    u.sendBytes(frame(0xa2, Buffer.concat([Buffer.from([0x00, 0x07, 0x00]), field(filter)])));
    await expectDisconnect(t, u, 0x81);
  }
  await dog.check();
});

test('[MQTT-2.3.1-1] SUBSCRIBE and UNSUBSCRIBE with Packet Identifier 0 end the connection', { timeout: 10_000 }, async (t) => {
  const { raw } = await rawClient(t, broker, {}, { protocolVersion: 4 });
  raw.sendBytes(frame(0x82, Buffer.concat([Buffer.from([0x00, 0x00]), field('a/b'), Buffer.from([0x01])])));
  await raw.expectClosed();
  assert.ok(!raw.received.some((p) => p.cmd === 'suback'));
  const { raw: u } = await rawClient(t, broker);
  u.sendBytes(frame(0xa2, Buffer.concat([Buffer.from([0x00, 0x00, 0x00]), field('a/b')])));
  await expectDisconnect(t, u, 0x81);
});

test('PINGREQ, PUBACK and PUBREL with the wrong length end that connection (the old main threw a RangeError on PUBREL)', { timeout: 10_000 }, async (t) => {
  const dog = await Watchdog.start(t, broker);
  const cases: { bytes: number[]; level: 4 | 5 }[] = [
    { bytes: [0xc0, 0x01, 0x00], level: 5 }, // PINGREQ with a body
    { bytes: [0xc0, 0x01, 0x00], level: 4 },
    { bytes: [0x40, 0x03, 0x00, 0x01, 0x00], level: 4 }, // v3.1.1 PUBACK of length 3
    { bytes: [0x62, 0x00], level: 5 }, // PUBREL without a packet id
    { bytes: [0x62, 0x00], level: 4 },
    { bytes: [0x40, 0x01, 0x00], level: 5 }, // PUBACK with half a packet id
    { bytes: [0xe0, 0x01, 0x00], level: 4 }, // v3.1.1 DISCONNECT with a body
  ];
  for (const c of cases) {
    const { raw } = await rawClient(t, broker, {}, { protocolVersion: c.level });
    raw.sendBytes(c.bytes);
    if (c.level === 5) await expectDisconnect(t, raw, 0x81);
    else await raw.expectClosed();
    assert.ok(!raw.received.some((p) => p.cmd === 'pubcomp' || p.cmd === 'pingresp'), `no answer to ${Buffer.from(c.bytes).toString('hex')}`);
  }
  await dog.check();
  assert.equal(broker.engine!.stats.handlerCrashes, 0, 'no handler threw');
});

test('3,000 retained messages of 4 KB reach a new wildcard subscriber whole, at QoS 0 and QoS 1 (paced, not dropped)', { timeout: 120_000 }, async (t) => {
  const engine = await startEngine({});
  t.after(() => engine.close());
  const N = 3_000;
  const root = uniqueId('ret');
  const publisher = await RawClient.connect(engine, {}, { protocolVersion: 4 });
  closeAfter(t, publisher.raw);
  const payload = Buffer.alloc(4096, 0x61);
  for (let i = 0; i < N; i += 100) {
    await Promise.all(Array.from({ length: Math.min(100, N - i) }, (_, j) => publisher.raw.publish(`${root}/${i + j}`, payload, { qos: 1, retain: true })));
  }
  assert.equal(engine.engine!.retained.size, N);
  for (const qos of [0, 1] as const) {
    const clientId = uniqueId(`retsub${qos}`);
    const { raw } = await rawClient(t, engine, { clientId }, { protocolVersion: 4 });
    const seen = new Set<string>();
    const granted = await raw.subscribe(`${root}/#`, qos);
    assert.deepEqual(granted, [qos]);
    // The old main pushed all 3,000 at once: QoS 0 lost those past the 4 MB write buffer (1,045 arrived),
    // QoS 1 those past the inflight window and queue (2,024 arrived).
    for (let n = 0; n < N; n++) {
      const p = await raw.next('publish', () => true, 10_000);
      assert.equal(p.retain, true, 'sent with RETAIN 1 [MQTT-3.3.1-8]');
      seen.add(p.topic);
      if (qos === 1) raw.send({ cmd: 'puback', messageId: p.messageId! });
    }
    assert.equal(seen.size, N, `QoS ${qos}: every retained topic once`);
    assert.equal(engine.engine!.getSession(clientId)?.retainedOwed, 0, 'nothing left owed');
  }
  assert.equal(engine.engine!.stats.droppedSlowConsumer, 0);
  assert.equal(engine.engine!.stats.droppedQueueFull, 0);
});

test('limits count bytes: retained messages past maxRetainedBytes are refused (v5 PUBACK 0x97), not stored', { timeout: 20_000 }, async (t) => {
  const engine = await startEngine({ maxRetainedBytes: 64 * 1024 });
  t.after(() => engine.close());
  const { raw } = await rawClient(t, engine);
  const kb20 = Buffer.alloc(20 * 1024, 0x62);
  for (let i = 0; i < 3; i++) assert.equal(ackCode(await raw.publish(`big/${i}`, kb20, { qos: 1, retain: true })), 0);
  const refused = await raw.publish('big/3', kb20, { qos: 1, retain: true });
  assert.equal(ackCode(refused), 0x97, 'quota exceeded');
  assert.equal(engine.engine!.retained.size, 3);
  assert.ok(engine.engine!.retained.bytes <= 64 * 1024);
  // Replacing a topic with a smaller message and clearing one make room again.
  assert.equal(ackCode(await raw.publish('big/0', '', { qos: 1, retain: true })), 0);
  assert.equal(ackCode(await raw.publish('big/3', kb20, { qos: 1, retain: true })), 0);
  assert.equal(engine.engine!.stats.droppedRetainedQuota, 1);
});

test('limits count bytes: an offline session queues at most maxQueuedBytes, keeping the newest', { timeout: 20_000 }, async (t) => {
  const engine = await startEngine({ maxQueuedBytes: 100 * 1024, maxQueued: 10_000 });
  t.after(() => engine.close());
  const clientId = uniqueId('offline');
  const first = await RawClient.connect(engine, { clientId, properties: { sessionExpiryInterval: 600 } });
  await first.raw.subscribe('q/#', 1);
  first.raw.close();
  await first.raw.expectClosed();
  const { raw: pub } = await rawClient(t, engine);
  const kb10 = Buffer.alloc(10 * 1024, 0x63);
  for (let i = 0; i < 30; i++) await pub.publish(`q/${i}`, kb10, { qos: 1 });
  const session = engine.engine!.getSession(clientId)!;
  assert.ok(session.queuedBytes <= 100 * 1024, `${session.queuedBytes} bytes queued`);
  assert.equal(session.queuedCount, 9, 'nine 10 KB messages (plus topics) fit in 100 KB');
  const back = await RawClient.connect(engine, { clientId, clean: false, properties: { sessionExpiryInterval: 600 } });
  closeAfter(t, back.raw);
  const got: string[] = [];
  for (let i = 0; i < 9; i++) {
    const p = await back.raw.next('publish');
    got.push(p.topic);
    back.raw.send({ cmd: 'puback', messageId: p.messageId! });
  }
  assert.deepEqual(got, Array.from({ length: 9 }, (_, i) => `q/${21 + i}`), 'the newest nine, in order');
});

test('a client identifier longer than maxClientIdLength is refused (v5 0x85, v3.1.1 2)', { timeout: 10_000 }, async (t) => {
  const long = 'd'.repeat(257);
  const v5 = await RawClient.connect(broker, { clientId: long });
  closeAfter(t, v5.raw);
  assert.equal(v5.connack.reasonCode, 0x85);
  const v3 = await RawClient.connect(broker, { clientId: long, protocolVersion: 4 });
  closeAfter(t, v3.raw);
  assert.equal(v3.connack.returnCode, 2);
  const ok = await RawClient.connect(broker, { clientId: 'd'.repeat(256) });
  closeAfter(t, ok.raw);
  assert.equal(ok.connack.reasonCode, 0);
});

function userProperties(n: number): Record<string, string> {
  return Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, 'v']));
}

test('a v5 PUBLISH with more user properties than maxUserProperties ends that connection with 0x97 before it is decoded; the limit itself passes', { timeout: 20_000 }, async (t) => {
  const dog = await Watchdog.start(t, broker);
  const topic = `hostile/${uniqueId('up')}`;
  const { raw: sub } = await rawClient(t, broker);
  await sub.subscribe(topic, 1);
  const { raw } = await rawClient(t, broker);
  // 128 (the default limit) is a normal packet, delivered with every property.
  await raw.publish(topic, 'at-limit', { qos: 1, properties: { userProperties: userProperties(128) } });
  const delivered = await sub.next('publish', (p) => p.topic === topic);
  assert.equal(Object.keys(delivered.properties?.userProperties ?? {}).length, 128);
  // 100,000 of them (1.2 MB) took mqtt-packet ~1 s of the event loop to decode on the old main.
  const { raw: flood } = await rawClient(t, broker);
  flood.send({ cmd: 'publish', topic, payload: Buffer.from('x'), qos: 1, messageId: 1, dup: false, retain: false,
    properties: { userProperties: userProperties(129) } });
  await expectDisconnect(t, flood, 0x97);
  await dog.check();
  assert.equal(broker.engine!.stats.handlerCrashes, 0);
  assert.ok(!sub.received.some((p) => p.cmd === 'publish' && p.payload.toString() === 'x'), 'the refused PUBLISH was not delivered');
});

test('a v5 CONNECT whose will carries more user properties than the limit is refused with CONNACK 0x97', { timeout: 10_000 }, async (t) => {
  const raw = await RawClient.open(broker, { protocolVersion: 5 });
  closeAfter(t, raw);
  raw.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clean: true, clientId: uniqueId('will'), keepalive: 30,
    will: { topic: 'hostile/will', payload: Buffer.from('w'), qos: 0, retain: false, properties: { userProperties: userProperties(500) } } });
  const connack = await raw.next('connack');
  assert.equal(connack.reasonCode, 0x97);
  await raw.expectClosed();
});

test('a SUBSCRIBE or UNSUBSCRIBE with more filters than maxFiltersPerPacket is refused whole before it is decoded (v5 0x97, v3.1.1 closed)', { timeout: 20_000 }, async (t) => {
  const small = await startEngine({ maxFiltersPerPacket: 10 });
  t.after(() => small.close());
  const filters = (n: number): string[] => Array.from({ length: n }, (_, i) => `f/${i}`);
  const { raw: v5 } = await rawClient(t, small);
  assert.deepEqual(await v5.subscribe(filters(10), 0), Array(10).fill(0), 'ten filters, the limit, are granted');
  v5.send({ cmd: 'subscribe', messageId: 9, subscriptions: filters(11).map((topic) => ({ topic, qos: 0 })) });
  await expectDisconnect(t, v5, 0x97);
  const { raw: u5 } = await rawClient(t, small);
  u5.send({ cmd: 'unsubscribe', messageId: 9, unsubscriptions: filters(11) });
  await expectDisconnect(t, u5, 0x97);
  const { raw: v4 } = await rawClient(t, small, {}, { protocolVersion: 4 });
  v4.send({ cmd: 'subscribe', messageId: 9, subscriptions: filters(5_000).map((topic) => ({ topic, qos: 0 })) });
  await v4.expectClosed();
  assert.ok(!v4.received.some((p) => p.cmd === 'suback'));
  assert.equal(small.engine!.stats.handlerCrashes, 0);
});
