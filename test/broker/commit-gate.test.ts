/**
 * Output held behind the commits it depends on (src/broker/commit-gate.ts): a store that writes on a
 * thread returns promises, and the engine must not let an acknowledgement leave before its state is
 * written — while another gateway's engine, with nothing to write, answers at once.
 *
 * What the server has written is read off its own socket (`bytesWritten`, `writableEnded`) after the
 * flush scheduler's turn has run, so "nothing left yet" is a fact of this process, not a time window.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import mqtt from 'mqtt';
import type mqttPacket from 'mqtt-packet';
import { frame, readPackets } from '../harness/raw-mqtt.ts';
import { Broker, CommitGate, listen, type BrokerPersistence, type Listener, type PersistenceBatch } from '../../src/broker/index.ts';
import type { Connection } from '../../src/broker/connection.ts';

interface HeldWrite { batch: PersistenceBatch; resolve(): void; reject(err: Error): void }

/** An engine whose every write is a promise the test settles. */
async function heldEngine(t: { after(fn: () => Promise<void> | void): void }): Promise<{ broker: Broker; listener: Listener; writes: HeldWrite[]; sockets: net.Socket[] }> {
  const writes: HeldWrite[] = [];
  const persistence: BrokerPersistence = {
    load: () => Promise.resolve({ retained: [], sessions: [], outbound: [] }),
    write: (batch) => new Promise<void>((resolve, reject) => writes.push({ batch, resolve, reject })),
  };
  const broker = new Broker({ persistence });
  await broker.restore();
  const listener = await listen(broker, { host: '127.0.0.1', port: 0 });
  const sockets: net.Socket[] = [];
  // The engine's ClientInfo is its Connection: the server side of the socket, to read what it wrote.
  broker.on('client_connected', (client) => sockets.push((client as Connection).socket));
  t.after(async () => {
    for (const w of writes) w.resolve();
    await broker.close();
    await listener.close();
  });
  return { broker, listener, writes, sockets };
}

/** Lets the flush scheduler's setImmediate (commits, then writes) run, a few times over. */
async function turns(n = 3): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
}

async function until(predicate: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 400 && !predicate(); i++) await new Promise((r) => setTimeout(r, 5));
  assert.ok(predicate(), what);
}


/** A raw client (persistent session): its parsed packets in order; `release` settles the engine's writes the CONNACK waits for. */
async function rawClient(port: number, clientId: string, release: () => Promise<void>): Promise<{ socket: net.Socket; packets: mqttPacket.Packet[]; ended: Promise<void> }> {
  const socket = net.connect(port, '127.0.0.1');
  await new Promise((r) => socket.once('connect', r));
  const packets = readPackets(socket);
  const ended = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  socket.write(frame({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: false, clientId, keepalive: 0 }));
  await release();
  await until(() => packets.some((p) => p.cmd === 'connack'), 'CONNACK');
  return { socket, packets, ended };
}

/** The CONNACK of a persistent session waits for the session's first write: let it through. */
async function firstWrite(engine: { writes: HeldWrite[] }): Promise<void> {
  await until(() => engine.writes.length === 1, 'the persistent session is being written');
  engine.writes[0]!.resolve();
}

async function persistentDevice(engine: { listener: Listener; writes: HeldWrite[] }, clientId: string): Promise<mqtt.MqttClient> {
  const device = mqtt.connect(`mqtt://127.0.0.1:${engine.listener.port}`, { clientId, clean: false, reconnectPeriod: 0 });
  const connected = new Promise((resolve, reject) => { device.once('connect', resolve); device.once('error', reject); });
  await firstWrite(engine);
  await connected;
  return device;
}

test('[MQTT-4.6.0-2] a PUBACK leaves only once its state is written, in order; another gateway\'s PINGRESP does not wait', { timeout: 20_000 }, async (t) => {
  const a = await heldEngine(t);
  const quiet = await heldEngine(t); // the other gateway: its own engine, its own gate
  const device = await persistentDevice(a, 'held');
  t.after(() => device.end(true));
  const server = a.sockets[0]!;
  const before = server.bytesWritten;

  let acked = 0;
  const first = device.publishAsync('t/1', 'one', { qos: 1, retain: true }).then(() => acked++);
  await until(() => a.writes.length === 2, 'the first message\'s state is being written');
  const second = device.publishAsync('t/2', 'two', { qos: 1, retain: true }).then(() => acked++);
  await until(() => a.writes.length === 3, 'the second message\'s state is being written');
  await turns();
  assert.equal(server.bytesWritten, before, 'no PUBACK left while its state is unwritten');

  // Meanwhile the quiet gateway answers its device at once.
  const neighbour = await rawClient(quiet.listener.port, 'neighbour', () => firstWrite(quiet));
  t.after(() => neighbour.socket.destroy());
  neighbour.socket.write(frame({ cmd: 'pingreq' }));
  await until(() => neighbour.packets.some((p) => p.cmd === 'pingresp'), 'PINGRESP from the other gateway while the first one\'s commits are in flight');

  // The second commit settling first lets nothing out: the first PUBACK is still owed before it.
  a.writes[2]!.resolve();
  await turns();
  assert.equal(server.bytesWritten, before, 'a later commit does not release output waiting for an earlier one');
  assert.equal(acked, 0);
  a.writes[1]!.resolve();
  await Promise.all([first, second]);
  assert.equal(acked, 2);
});

test('a write that fails still lets its acknowledgement out, as a failed synchronous write did (the failure is logged)', { timeout: 20_000 }, async (t) => {
  const a = await heldEngine(t);
  const device = await persistentDevice(a, 'failing');
  t.after(() => device.end(true));
  const acked = device.publishAsync('t/x', 'x', { qos: 1, retain: true });
  await until(() => a.writes.length === 2, 'the message is being written');
  a.writes[1]!.reject(new Error('disk full'));
  await acked;
});

test('a connection closed for a protocol error still sends the PUBACK it owes after the commit, then ends', { timeout: 20_000 }, async (t) => {
  const a = await heldEngine(t);
  const client = await rawClient(a.listener.port, 'closing', () => firstWrite(a));
  t.after(() => client.socket.destroy());
  await turns();
  const server = a.sockets[0]!;
  const before = server.bytesWritten;
  // A QoS 1 PUBLISH and, in the same chunk, a PUBREL of length 0 [MQTT-3.6.1-1]: the second closes the connection.
  const publish = frame({ cmd: 'publish', topic: 'c/1', payload: Buffer.from('p'), qos: 1, messageId: 7, retain: true, dup: false });
  client.socket.write(Buffer.concat([publish, Buffer.from([0x60, 0x00])]));
  await until(() => a.writes.length === 2, 'the message is being written');
  await turns();
  assert.equal(server.bytesWritten, before, 'the PUBACK waits for its commit, even on the way out');
  assert.equal(server.writableEnded, false, 'the socket is not ended before what it owes has left');
  a.writes[1]!.resolve();
  await client.ended;
  assert.deepEqual(client.packets.filter((p) => p.cmd !== 'connack').map((p) => [p.cmd, (p as { messageId?: number }).messageId]), [['puback', 7]]);
});

test('the gate counts bytes from the moment they are recorded until their commit settles, and relieves readers at half its limit', { timeout: 5_000 }, async () => {
  const gate = new CommitGate(1000);
  const pressure: boolean[] = [];
  gate.onPressure = (overloaded) => pressure.push(overloaded);
  gate.add(600);
  assert.equal(gate.overloaded, false);
  gate.add(600); // recorded this turn, its commit not started yet: already counted
  assert.equal(gate.overloaded, true);
  assert.equal(gate.overloads, 1);
  let relieved = false;
  const relief = gate.relieved().then(() => { relieved = true; });
  let settleFirst!: () => void;
  let failSecond!: (e: Error) => void;
  gate.track(new Promise<void>((r) => { settleFirst = r; }), 600);
  gate.track(new Promise<void>((_, reject) => { failSecond = reject; }), 600);
  assert.equal(gate.uncommittedBytes, 1200);
  // The later commit fails first: its bytes are no longer waiting, whatever the order.
  failSecond(new Error('disk full'));
  await new Promise((r) => setImmediate(r));
  assert.equal(gate.uncommittedBytes, 600);
  assert.equal(gate.overloaded, false);
  assert.equal(relieved, false, 'not relieved above half the limit (500)');
  settleFirst();
  await relief;
  assert.equal(gate.uncommittedBytes, 0);
  assert.deepEqual(pressure, [true, false]);
  // Bytes written synchronously are released without a commit.
  gate.add(1200);
  gate.release(1200);
  assert.equal(gate.uncommittedBytes, 0);
  await gate.relieved();
  assert.deepEqual(pressure, [true, false, true, false]);
});
