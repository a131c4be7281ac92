/**
 * Backpressure from the disk (src/broker/commit-gate.ts): the message path's writes run on a writer
 * thread, so nothing slows a client's input down to the disk's pace by itself. A 3.1.1 client may
 * publish QoS 1 without waiting for its PUBACKs (3.1.1 has no Receive Maximum); with the disk stalled
 * (here: another connection holds SQLite's write lock on the real state file, as a backup tool or a
 * slow volume would) the state waiting for the writer must stay bounded in bytes, the client's reads
 * pause instead, and once the disk takes writes again everything is written and acknowledged.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import type mqttPacket from 'mqtt-packet';
import { frame, readPackets } from '../harness/raw-mqtt.ts';
import { Broker, listen, type Listener } from '../../src/broker/index.ts';
import type { Connection } from '../../src/broker/connection.ts';
import { SqliteStateStores } from '../../src/storage/sqlite-state-stores.ts';

const LIMIT = 256 * 1024;
const PAYLOAD = 16 * 1024;
const MESSAGES = 200; // 3.2 MB of retained state, twelve times the bound


async function until(predicate: () => boolean, what: string, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!predicate() && Date.now() < end) await new Promise((r) => setTimeout(r, 2));
  assert.ok(predicate(), what);
}

interface RawClient { socket: net.Socket; packets: mqttPacket.Packet[] }

async function rawClient(port: number, clientId: string, keepalive: number): Promise<RawClient> {
  const socket = net.connect(port, '127.0.0.1');
  await new Promise((r) => socket.once('connect', r));
  const packets = readPackets(socket);
  socket.write(frame({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId, keepalive }));
  await until(() => packets.some((p) => p.cmd === 'connack'), `CONNACK for ${clientId}`);
  return { socket, packets };
}

async function engine(stores: SqliteStateStores, gatewayId: string): Promise<{ broker: Broker; listener: Listener }> {
  const broker = new Broker({ persistence: stores.open(gatewayId), options: { maxUncommittedBytes: LIMIT } });
  await broker.restore();
  const listener = await listen(broker, { host: '127.0.0.1', port: 0 });
  return { broker, listener };
}

test('a QoS 1 flood faster than a stalled disk pauses the gateway\'s reads within its byte bound; another gateway answers; nothing is lost once the disk is back', { timeout: 60_000 }, async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'gh-writes-behind-'));
  const file = path.join(dir, 'mqtt-state.db');
  const stores = new SqliteStateStores(file);
  const flooded = await engine(stores, 'flooded');
  const quiet = await engine(stores, 'quiet');
  const clients: net.Socket[] = [];
  let unlock = (): void => undefined;
  t.after(async () => {
    // The lock first: closing the stores waits for the writer, which waits for the lock.
    unlock();
    for (const s of clients) s.destroy();
    await flooded.broker.close();
    await quiet.broker.close();
    await flooded.listener.close();
    await quiet.listener.close();
    await stores.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const serverSides: Connection[] = [];
  flooded.broker.on('client_connected', (client) => serverSides.push(client as Connection));
  // Keep alive 1 s: the sweep must not count the time this server does not read as the client's silence [MQTT-3.1.2-24].
  const flooder = await rawClient(flooded.listener.port, 'flooder', 1);
  clients.push(flooder.socket);
  const neighbour = await rawClient(quiet.listener.port, 'neighbour', 0);
  clients.push(neighbour.socket);

  // The disk stops taking writes: another connection holds the file's write lock.
  const locker = new BetterSqlite3(file);
  locker.prepare('BEGIN IMMEDIATE').run();
  let locked = true;
  unlock = (): void => {
    if (!locked) return;
    locked = false;
    locker.prepare('ROLLBACK').run();
    locker.close();
  };

  const gate = flooded.broker.commits;
  let peak = 0;
  const sampler = setInterval(() => { peak = Math.max(peak, gate.uncommittedBytes); }, 1);
  t.after(() => clearInterval(sampler));

  const frames: Buffer[] = [];
  for (let i = 1; i <= MESSAGES; i++) {
    frames.push(frame({ cmd: 'publish', topic: `flood/${i}`, payload: Buffer.alloc(PAYLOAD, i & 0xff), qos: 1, messageId: i, retain: true, dup: false }));
  }
  flooder.socket.write(Buffer.concat(frames));

  await until(() => flooded.broker.stats.readsPausedForWrites > 0 || flooded.broker.stats.messagesReceived === MESSAGES,
    'the flood was read until its reads paused, or all of it');
  assert.ok(flooded.broker.stats.readsPausedForWrites > 0, 'the flooder\'s reads paused while the disk was stalled');
  const received = flooded.broker.stats.messagesReceived;
  assert.ok(received < MESSAGES, `reading stopped short of the flood (${received} of ${MESSAGES} read)`);
  peak = Math.max(peak, gate.uncommittedBytes);
  // One packet may cross the bound (the check follows each packet); everything else waits in the socket.
  assert.ok(peak <= LIMIT + PAYLOAD + 1024, `unwritten state stayed within its bound: ${peak} bytes (limit ${LIMIT})`);
  assert.equal(flooder.packets.filter((p) => p.cmd === 'puback').length, 0, 'no PUBACK before its state is written');

  // The other gateway's device is answered meanwhile: its engine has nothing waiting for the writer.
  neighbour.socket.write(frame({ cmd: 'pingreq' }));
  await until(() => neighbour.packets.some((p) => p.cmd === 'pingresp'), 'PINGRESP from the other gateway while the first one\'s writes are stalled');

  // Stalled past 1.5 × the flooder's keep alive: this server is the one not reading, so it is not disconnected.
  // (A window is the only way to see that a disconnect does not happen; it is longer than one sweep, 250 ms, past the deadline.)
  await new Promise((r) => setTimeout(r, 1_800));
  assert.equal(serverSides[0]?.state, 'connected', 'the paused client was not disconnected for keep alive');
  peak = Math.max(peak, gate.uncommittedBytes);
  assert.ok(peak <= LIMIT + PAYLOAD + 1024, `still within the bound after the stall: ${peak} bytes`);

  unlock();
  // Every PUBLISH is read, written and acknowledged, in order [MQTT-4.6.0-2].
  await until(() => flooder.packets.filter((p) => p.cmd === 'puback').length === MESSAGES, 'every PUBACK once the disk is back', 30_000);
  const acked = flooder.packets.filter((p): p is mqttPacket.IPubackPacket => p.cmd === 'puback').map((p) => p.messageId);
  assert.deepEqual(acked, Array.from({ length: MESSAGES }, (_, i) => i + 1));
  assert.equal(flooded.broker.stats.messagesReceived, MESSAGES);
  assert.ok(peak <= LIMIT + PAYLOAD + 1024, `within the bound throughout: ${peak} bytes`);
  assert.equal(gate.uncommittedBytes, 0, 'nothing left waiting for the writer');

  // Written, not only acknowledged: the retained rows are in the file.
  const reader = new BetterSqlite3(file, { readonly: true });
  t.after(() => reader.close());
  const rows = reader.prepare("SELECT count(*) AS n, sum(length(payload)) AS bytes FROM mqtt_retained WHERE gateway_id = 'flooded'").get() as { n: number; bytes: number };
  assert.deepEqual(rows, { n: MESSAGES, bytes: MESSAGES * PAYLOAD });
});
