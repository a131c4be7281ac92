/**
 * Big frames of an accepted client go to shared memory (src/mqtt/framer.ts: their payload crosses to the writer
 * threads by reference); a stranger's bytes before CONNACK do not (the framer's unit tests: nothing reserved ahead).
 * Here the engine's wiring: the switch is turned on when the client is accepted.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import mqttPacket from 'mqtt-packet';
import { Broker, listen, type Message } from '../../src/broker/index.ts';

const frame = (p: mqttPacket.Packet): Buffer => mqttPacket.generate(p, { protocolVersion: 4 });

test('an accepted client\'s 256 KiB PUBLISH, read in many socket chunks, reaches the engine in shared memory', { timeout: 10_000 }, async (t) => {
  const broker = new Broker({});
  const l = await listen(broker, { host: '127.0.0.1', port: 0 });
  t.after(async () => {
    await broker.close();
    await l.close();
  });
  const published = new Promise<Message>((resolve) => broker.on('message_published', (m) => resolve(m)));
  const socket = net.connect(l.port, '127.0.0.1');
  t.after(() => socket.destroy());
  await new Promise((r) => socket.once('connect', r));
  const connack = new Promise((r) => socket.once('data', r));
  socket.write(frame({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: 'big', keepalive: 0 }));
  await connack;
  const payload = Buffer.alloc(256 * 1024, 0x5a);
  const bytes = frame({ cmd: 'publish', topic: 'big/1', payload, qos: 0, retain: false, dup: false });
  // In pieces with a turn between them, so the engine reads the frame in several chunks.
  for (let at = 0; at < bytes.length; at += 16_384) {
    socket.write(bytes.subarray(at, at + 16_384));
    await new Promise((r) => setTimeout(r, 2));
  }
  const m = await published;
  assert.ok(m.payload.equals(payload));
  assert.ok(m.payload.buffer instanceof SharedArrayBuffer, 'assembled in shared memory');
});
