/**
 * A CONNECT that ends before its CONNACK, on a cluster node, whose last step (the session claim) waits for the
 * cluster: the engine runs with a link whose claims the test answers by hand (test/harness/hand-link.ts).
 * - the client goes while its claim is on its way: no session opens for it (found in review: it was counted
 *   connected, reported online and held the session for ever), and the record learns the end;
 * - the engine closes while a CONNECT waits (a gateway stopped or deleted): the client hears CONNACK 0x88 (v5) /
 *   3 (v3.1.1) server unavailable, not a bare close (MQTT.js then waits for a CONNACK that never comes).
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { test, type TestContext } from 'node:test';
import type mqttPacket from 'mqtt-packet';
import { Broker, listen, type ConnectionEnd } from '../../src/broker/index.ts';
import { RC } from '../../src/mqtt/reason-codes.ts';
import { handStoredLink, type PendingClaim } from '../harness/hand-link.ts';
import { frame, readPackets } from '../harness/raw-mqtt.ts';

async function waitFor(what: string, probe: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !probe(); i++) await new Promise((resolve) => setTimeout(resolve, 10));
  assert.ok(probe(), `timed out waiting for ${what}`);
}

/** An engine whose session claims wait for the test, listening on loopback; what its link was told of ended connections. */
async function claimingEngine(t: TestContext): Promise<{ engine: Broker; port: number; claims: PendingClaim[]; ended: [string, ConnectionEnd][]; close: () => Promise<void> }> {
  const { link, claims } = handStoredLink({ claimsByHand: true });
  const ended: [string, ConnectionEnd][] = [];
  link.connectionEnded = (clientId, end) => {
    ended.push([clientId, end]);
    return Promise.resolve(true);
  };
  const engine = new Broker({ link });
  await engine.restore();
  const listener = await listen(engine, { host: '127.0.0.1', port: 0 });
  let closed = false;
  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    await engine.close();
    await listener.close();
  };
  t.after(close);
  return { engine, port: listener.port, claims, ended, close };
}

async function openSocket(port: number): Promise<net.Socket> {
  const socket = net.connect(port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  return socket;
}

const connectPacket = (clientId: string, protocolVersion: 4 | 5) => (protocolVersion === 5
  ? { cmd: 'connect', protocolId: 'MQTT', protocolVersion, clean: false, clientId, keepalive: 0, properties: { sessionExpiryInterval: 600 } }
  : { cmd: 'connect', protocolId: 'MQTT', protocolVersion, clean: false, clientId, keepalive: 0 });

test('a client gone while its session claim is on its way: no session opens, nothing counts it connected, the record learns the end without a will', { timeout: 15_000 }, async (t) => {
  const { engine, port, claims, ended } = await claimingEngine(t);
  const connected: string[] = [];
  engine.on('client_connected', (conn: { clientId: string }) => connected.push(conn.clientId));
  const socket = await openSocket(port);
  socket.write(frame({ ...connectPacket('leaver', 5), will: { topic: 'wills/leaver', payload: Buffer.from('gone'), qos: 0, retain: false } }, 5));
  await waitFor('the claim asked', () => claims.length === 1);
  socket.destroy();
  await waitFor('the connection closed in the engine', () => engine.connectionCount === 0);
  claims[0]!.done({ local: true, displacedWill: null });
  await waitFor('the record told of the end', () => ended.length === 1);
  assert.deepEqual(ended, [['leaver', { will: null, sessionEnds: false }]]);
  assert.equal(engine.connectedCount, 0);
  assert.equal(engine.sessionCount, 0, 'no session for a connection never accepted');
  assert.deepEqual(connected, []);

  // The client id is free: the next CONNECT gets its session (new: the first was never accepted).
  const again = await openSocket(port);
  t.after(() => again.destroy());
  const packets = readPackets(again, 5);
  again.write(frame(connectPacket('leaver', 5), 5));
  await waitFor('the second claim asked', () => claims.length === 2);
  claims[1]!.done({ local: true, displacedWill: null });
  await waitFor('CONNACK', () => packets.some((p) => p.cmd === 'connack'));
  const connack = packets[0] as mqttPacket.IConnackPacket;
  assert.deepEqual([connack.reasonCode, connack.sessionPresent], [RC.SUCCESS, false]);
  assert.equal(engine.connectedCount, 1);
  assert.deepEqual(connected, ['leaver']);
});

test('an engine closing while CONNECTs wait for their claims: CONNACK 0x88 (v5) / 3 (v3.1.1) server unavailable, then the close [MQTT-3.2.2-7]', { timeout: 15_000 }, async (t) => {
  const { engine, port, claims, close } = await claimingEngine(t);
  const v5 = await openSocket(port);
  const v3 = await openSocket(port);
  t.after(() => {
    v5.destroy();
    v3.destroy();
  });
  const fromV5 = readPackets(v5, 5);
  const fromV3 = readPackets(v3, 4);
  const closed = (socket: net.Socket) => new Promise<void>((resolve) => socket.once('close', () => resolve()));
  const bothClosed = Promise.all([closed(v5), closed(v3)]);
  v5.write(frame(connectPacket('waiting-v5', 5), 5));
  v3.write(frame(connectPacket('waiting-v3', 4), 4));
  await waitFor('both claims asked', () => claims.length === 2);
  await close();
  await bothClosed;
  assert.deepEqual(fromV5.map((p) => [p.cmd, (p as mqttPacket.IConnackPacket).reasonCode]), [['connack', RC.SERVER_UNAVAILABLE]]);
  assert.deepEqual(fromV3.map((p) => [p.cmd, (p as mqttPacket.IConnackPacket).returnCode]), [['connack', 3]]);
  // The claims answer late: nothing more is sent, nothing opens.
  for (const claim of claims) claim.done({ local: true, displacedWill: null });
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(engine.connectedCount, 0);
  assert.equal(engine.sessionCount, 0);
});
