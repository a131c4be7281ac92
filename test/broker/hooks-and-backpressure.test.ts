/**
 * The seams the gateway plugs into (async authentication with paused reads, authorization hooks,
 * events) and backpressure: a subscriber that stops reading cannot make the process grow without bound.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import mqttPacket from 'mqtt-packet';
import mqtt from 'mqtt';
import { Broker, listen, type ClientInfo } from '../../src/broker/index.ts';

const frame = (p: mqttPacket.Packet, protocolVersion = 4) => mqttPacket.generate(p, { protocolVersion });

test('[MQTT-3.1.4-?] reading pauses while CONNECT is authenticated: packets sent with it wait, in order', { timeout: 10_000 }, async (t) => {
  const order: string[] = [];
  const broker = new Broker({
    hooks: {
      authenticate: async (req) => {
        order.push(`auth:${req.username}`);
        await new Promise((r) => setTimeout(r, 150));
        order.push('auth-done');
        return { ok: true, identity: { device: req.username } };
      },
      authorizeSubscribe: (_c, filter, qos) => {
        order.push(`sub:${filter}`);
        return qos;
      },
      authorizePublish: async (client, topic) => {
        order.push(`pub:${topic}:${(client.identity as { device: string }).device}`);
        await Promise.resolve();
        return topic === 'denied' ? 0x87 : 0;
      },
    },
  });
  const events: string[] = [];
  broker.on('client_connected', (c: ClientInfo) => events.push(`connected:${c.clientId}`));
  broker.on('message_published', (m) => events.push(`published:${m.topic}`));
  broker.on('client_disconnected', (c, reason) => events.push(`disconnected:${c.clientId}:${reason}`));
  const l = await listen(broker, { host: '127.0.0.1', port: 0 });
  t.after(async () => {
    await broker.close();
    await l.close();
  });

  const socket = net.connect(l.port, '127.0.0.1');
  const parser = mqttPacket.parser({ protocolVersion: 4 });
  const got: mqttPacket.Packet[] = [];
  parser.on('packet', (p) => got.push(p));
  socket.on('data', (d) => parser.parse(d));
  await new Promise((r) => socket.once('connect', r));
  // CONNECT, SUBSCRIBE, two PUBLISHes and a PINGREQ in one write.
  socket.write(Buffer.concat([
    frame({ cmd: 'connect', clientId: 'c1', username: 'dev-1', protocolVersion: 4, clean: true, keepalive: 60 }),
    frame({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'echo', qos: 1 }] }),
    frame({ cmd: 'publish', topic: 'echo', payload: Buffer.from('hi'), qos: 1, messageId: 2, dup: false, retain: false }),
    frame({ cmd: 'publish', topic: 'denied', payload: Buffer.from('no'), qos: 1, messageId: 3, dup: false, retain: false }),
    frame({ cmd: 'pingreq' }),
  ]));
  const deadline = Date.now() + 5000;
  while (!got.some((p) => p.cmd === 'pingresp') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  socket.end();
  assert.deepEqual(got.map((p) => p.cmd).filter((c) => c !== 'publish'), ['connack', 'suback', 'puback', 'puback', 'pingresp']);
  assert.deepEqual(got.filter((p) => p.cmd === 'publish').map((p) => (p).payload.toString()), ['hi']);
  assert.deepEqual(order, ['auth:dev-1', 'auth-done', 'sub:echo', 'pub:echo:dev-1', 'pub:denied:dev-1']);
  await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(events.slice(0, 2), ['connected:c1', 'published:echo']);
  assert.ok(events.some((e) => e.startsWith('disconnected:c1:')));
});

test('a refusing authentication hook answers CONNACK with its reason code (v5) or the v3.1.1 equivalent', { timeout: 10_000 }, async (t) => {
  const broker = new Broker({ hooks: { authenticate: () => ({ ok: false, reasonCode: 0x86 }) } });
  const l = await listen(broker, { host: '127.0.0.1', port: 0 });
  t.after(async () => {
    await broker.close();
    await l.close();
  });
  for (const [protocolVersion, code] of [[5, 0x86], [4, 4]] as const) {
    const err = await mqtt.connectAsync(`mqtt://127.0.0.1:${l.port}`, { protocolVersion, reconnectPeriod: 0 }).then(
      () => { throw new Error('accepted'); },
      (e: { code?: number }) => e,
    );
    assert.equal(err.code, code);
  }
});

test('a subscriber that stops reading: QoS 0 is dropped and QoS 1 queues up to the bound, memory stays bounded', { timeout: 90_000 }, async (t) => {
  const broker = new Broker({ options: { maxWriteBuffer: 64 * 1024, maxQueued: 100, maxInflight: 50 } });
  const l = await listen(broker, { host: '127.0.0.1', port: 0 });
  t.after(async () => {
    await broker.close();
    await l.close();
  });
  // A raw subscriber that subscribes, then never reads again.
  const slow = net.connect(l.port, '127.0.0.1');
  await new Promise((r) => slow.once('connect', r));
  slow.write(frame({ cmd: 'connect', clientId: 'slow', protocolVersion: 4, clean: true, keepalive: 0 }));
  slow.write(frame({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'flood/#', qos: 1 }] }));
  await new Promise((r) => setTimeout(r, 200));
  slow.pause();
  t.after(() => slow.destroy());

  const pub = await mqtt.connectAsync(`mqtt://127.0.0.1:${l.port}`, { reconnectPeriod: 0 });
  t.after(() => pub.end(true));
  const payload = Buffer.alloc(1024, 7);
  for (let i = 0; i < 20_000; i++) pub.publish('flood/0', payload, { qos: 0 });
  for (let i = 0; i < 2_000; i++) await pub.publishAsync('flood/1', payload, { qos: 1 });
  await new Promise((r) => setTimeout(r, 300));

  assert.ok(broker.stats.droppedSlowConsumer > 0, 'QoS 0 deliveries to the stalled subscriber were dropped');
  assert.ok(broker.stats.droppedQueueFull > 0, 'the QoS 1 queue stopped at its bound');
  const session = broker.getSession('slow')!;
  assert.ok(session.queuedCount <= 100 && session.inflightCount <= 50, `queue ${session.queuedCount}, inflight ${session.inflightCount}`);
  // 22 MB were published at it; what was written towards the stalled socket is bounded by its
  // buffers (ours: maxWriteBuffer; the kernel's loopback buffers: a few MB), the rest was dropped.
  const written = broker.stats.messagesDelivered * payload.length;
  assert.ok(written < 16 * 1024 * 1024, `${Math.round(written / 1024 / 1024)} MiB written towards a client that reads nothing`);
  // The publisher was never held up: all its QoS 1 messages were acknowledged.
  assert.equal(pub.connected, true);
});

test('without an authenticate hook CONNECT is accepted in the same turn: reads are never paused', { timeout: 10_000 }, async (t) => {
  const broker = new Broker();
  let pauses = 0;
  const server = net.createServer((socket) => {
    const pause = socket.pause.bind(socket);
    socket.pause = () => {
      pauses++;
      return pause();
    };
    broker.handle(socket);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(async () => {
    await broker.close();
    server.close();
  });
  const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  t.after(() => client.destroy());
  const replies: Buffer[] = [];
  client.on('data', (d: Buffer) => replies.push(d));
  // CONNECT and PINGREQ in one write: both answered, the socket never paused for an authentication step.
  client.write(Buffer.concat([frame({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: 'sync-1', clean: true, keepalive: 30 }), frame({ cmd: 'pingreq' })]));
  const deadline = Date.now() + 5000;
  while (Buffer.concat(replies).length < 6 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  assert.equal(Buffer.concat(replies).toString('hex'), '20020000' + 'd000');
  assert.equal(pauses, 0);
});
