/**
 * On a cluster node a QoS 2 PUBLISH is acknowledged (PUBREC) only once the cluster's stream holds it (issue 16
 * item 2). A client that reconnects while that store is still on its way and sends the PUBLISH again, with DUP
 * and the same packet id, gets its PUBREC when that same store is done — not at once (the message is not yet
 * durable) and not through a second store (a second copy in the stream would reach subscribers twice)
 * [MQTT-4.3.3-10]. The engine runs with a link whose stores the test completes by hand; everything else of the
 * link is a single node's (the seam is src/broker/cluster-link.ts).
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { test, type TestContext } from 'node:test';
import type mqttPacket from 'mqtt-packet';
import { Broker, listen } from '../../src/broker/index.ts';
import { handStoredLink, type PendingStore } from '../harness/hand-link.ts';
import { frame, readPackets } from '../harness/raw-mqtt.ts';

async function waitFor(what: string, probe: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !probe(); i++) await new Promise((resolve) => setTimeout(resolve, 10));
  assert.ok(probe(), `timed out waiting for ${what}`);
}

/** An engine on a hand-stored link, listening on loopback; closed after the test. */
async function linkedEngine(t: TestContext): Promise<{ port: number; stores: PendingStore[] }> {
  const { link, stores } = handStoredLink();
  const engine = new Broker({ link });
  await engine.restore(); // binds the link, as a node does before listening
  const listener = await listen(engine, { host: '127.0.0.1', port: 0 });
  t.after(async () => {
    await engine.close();
    await listener.close();
  });
  return { port: listener.port, stores };
}

/** A CONNECT of a persistent MQTT 5 session, raw: the test sees every packet. */
async function connect(port: number, clientId: string): Promise<{ socket: net.Socket; packets: mqttPacket.Packet[] }> {
  const socket = net.connect(port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  const packets = readPackets(socket, 5);
  socket.write(frame({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clean: false, clientId, keepalive: 0, properties: { sessionExpiryInterval: 600 } }, 5));
  await waitFor('CONNACK', () => packets.some((p) => p.cmd === 'connack'));
  return { socket, packets };
}

const pubrecs = (packets: mqttPacket.Packet[]): mqttPacket.IPubrecPacket[] => packets.filter((p): p is mqttPacket.IPubrecPacket => p.cmd === 'pubrec');

test('a QoS 2 PUBLISH sent again after a reconnect while its store is on its way: PUBREC once that store is done, stored once, delivered once [MQTT-4.3.3-10]', { timeout: 30_000 }, async (t) => {
  const { port, stores } = await linkedEngine(t);

  const subscriber = await connect(port, 'subscriber');
  t.after(() => subscriber.socket.destroy());
  subscriber.socket.write(frame({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'resend/#', qos: 2 }] }, 5));
  await waitFor('SUBACK', () => subscriber.packets.some((p) => p.cmd === 'suback'));

  const first = await connect(port, 'publisher');
  const publish = { cmd: 'publish', topic: 'resend/t', payload: Buffer.from('once'), qos: 2, messageId: 7, retain: false } as const;
  first.socket.write(frame({ ...publish, dup: false }, 5));
  await waitFor('the store begun', () => stores.length === 1);
  assert.equal(pubrecs(first.packets).length, 0, 'no PUBREC before the stream holds the message');
  // The client's connection goes while the store is on its way; it comes back and sends the PUBLISH again.
  first.socket.destroy();
  const second = await connect(port, 'publisher');
  t.after(() => second.socket.destroy());
  assert.equal((second.packets[0] as mqttPacket.IConnackPacket).sessionPresent, true);
  second.socket.write(frame({ ...publish, dup: true }, 5));
  // A PINGRESP answers after the engine has read the resent PUBLISH: whatever it does with it has been done.
  second.socket.write(frame({ cmd: 'pingreq' }, 5));
  await waitFor('PINGRESP', () => second.packets.some((p) => p.cmd === 'pingresp'));
  assert.equal(pubrecs(second.packets).length, 0, 'no PUBREC for the resend before the store is done');
  assert.equal(stores.length, 1, 'the resend is not stored a second time');

  stores[0]!.done(true);
  await waitFor('PUBREC', () => pubrecs(second.packets).length === 1);
  assert.equal(pubrecs(second.packets)[0]!.reasonCode ?? 0, 0);
  second.socket.write(frame({ cmd: 'pubrel', messageId: 7 }, 5));
  await waitFor('PUBCOMP', () => second.packets.some((p) => p.cmd === 'pubcomp'));
  await waitFor('the delivery', () => subscriber.packets.some((p) => p.cmd === 'publish'));
  assert.deepEqual(subscriber.packets.filter((p) => p.cmd === 'publish').map((p) => (p).payload.toString()), ['once']);
  assert.equal(stores.length, 1);
});

test('a resend while its store is on its way, and the stream refuses the message: the resend hears 0x97, and the packet id is free again [MQTT-4.3.3-9]', { timeout: 30_000 }, async (t) => {
  const { port, stores } = await linkedEngine(t);
  const first = await connect(port, 'publisher');
  const publish = { cmd: 'publish', topic: 'resend/t', payload: Buffer.from('refused'), qos: 2, messageId: 9, retain: false } as const;
  first.socket.write(frame({ ...publish, dup: false }, 5));
  await waitFor('the store begun', () => stores.length === 1);
  first.socket.destroy();
  const second = await connect(port, 'publisher');
  t.after(() => second.socket.destroy());
  second.socket.write(frame({ ...publish, dup: true }, 5));
  second.socket.write(frame({ cmd: 'pingreq' }, 5));
  await waitFor('PINGRESP', () => second.packets.some((p) => p.cmd === 'pingresp'));
  stores[0]!.done(false);
  await waitFor('PUBREC', () => pubrecs(second.packets).length === 1);
  assert.equal(pubrecs(second.packets)[0]!.reasonCode, 0x97);
  // A PUBREC with an error ends the flow: the same packet id is a new message, stored anew.
  second.socket.write(frame({ ...publish, payload: Buffer.from('new'), dup: false }, 5));
  await waitFor('its store', () => stores.length === 2);
  assert.equal(stores[1]!.message.payload.toString(), 'new');
});
