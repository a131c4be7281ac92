/**
 * A cluster node tells the cluster's record of a persistent session its filters (so another node can resume it):
 * once per turn of the sessions that changed, not once per filter. Each telling lists every filter of the session,
 * so per filter a SUBSCRIBE of 1,000 filters listed ~500,000 entries, and a device re-subscribing them in a loop made
 * the node do a thousand times the work it sent. The engine runs with a link of test/harness/hand-link.ts.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { test, type TestContext } from 'node:test';
import type mqttPacket from 'mqtt-packet';
import { Broker, listen, type StoredSubscription } from '../../src/broker/index.ts';
import { handStoredLink } from '../harness/hand-link.ts';
import { frame, readPackets } from '../harness/raw-mqtt.ts';

async function waitFor(what: string, probe: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !probe(); i++) await new Promise((resolve) => setTimeout(resolve, 10));
  assert.ok(probe(), `timed out waiting for ${what}`);
}

interface Told { clientId: string; filters: number | null }

/** An engine on a hand link that records what the record is told, and what it had been told when a SUBACK waited for it. */
async function recordingEngine(t: TestContext): Promise<{ port: number; told: Told[]; atSettle: number[] }> {
  const { link } = handStoredLink();
  const told: Told[] = [];
  const atSettle: number[] = [];
  link.sessionChanged = (clientId: string, subscriptions: StoredSubscription[] | null) => {
    told.push({ clientId, filters: subscriptions === null ? null : subscriptions.length });
  };
  link.settled = () => {
    atSettle.push(told.at(-1)?.filters ?? -1);
    return undefined;
  };
  const engine = new Broker({ link });
  await engine.restore();
  const listener = await listen(engine, { host: '127.0.0.1', port: 0 });
  t.after(async () => {
    await engine.close();
    await listener.close();
  });
  return { port: listener.port, told, atSettle };
}

test('a SUBSCRIBE of 300 filters tells the record of its session a few times, each with every filter, before the SUBACK', { timeout: 15_000 }, async (t) => {
  const { port, told, atSettle } = await recordingEngine(t);
  const socket = net.connect(port, '127.0.0.1');
  t.after(() => socket.destroy());
  const packets = readPackets(socket, 5);
  socket.write(frame({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clean: false, clientId: 'many', keepalive: 0, properties: { sessionExpiryInterval: 600 } }, 5));
  await waitFor('CONNACK', () => packets.some((p) => p.cmd === 'connack'));
  told.length = 0;
  const filters = Array.from({ length: 300 }, (_, i) => ({ topic: `many/${i}/#`, qos: 1 as const }));
  for (const messageId of [1, 2]) { // the second SUBSCRIBE replaces the same 300
    socket.write(frame({ cmd: 'subscribe', messageId, subscriptions: filters }, 5));
    await waitFor(`SUBACK ${messageId}`, () => packets.some((p) => p.cmd === 'suback' && p.messageId === messageId));
    const suback = packets.find((p) => p.cmd === 'suback' && p.messageId === messageId) as mqttPacket.ISubackPacket;
    assert.equal(suback.granted.length, 300);
  }
  assert.deepEqual(atSettle, [300, 300], 'each SUBACK waited for a record that had all 300 filters');
  const listed = told.reduce((n, x) => n + (x.filters ?? 0), 0);
  // Per filter, the two SUBSCRIBEs listed 45,150 + 90,000 entries; per turn, at most a few listings of 300 each.
  assert.ok(told.length <= 20 && listed <= 20 * 300, `told ${told.length} times, ${listed} entries listed`);
  assert.ok(told.every((x) => x.clientId === 'many' && x.filters !== null));
});

test('a session that does not outlive its connection is not told to the record', { timeout: 15_000 }, async (t) => {
  const { port, told } = await recordingEngine(t);
  const socket = net.connect(port, '127.0.0.1');
  t.after(() => socket.destroy());
  const packets = readPackets(socket, 5);
  socket.write(frame({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clean: true, clientId: 'brief', keepalive: 0 }, 5));
  socket.write(frame({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'brief/#', qos: 1 }] }, 5));
  await waitFor('SUBACK', () => packets.some((p) => p.cmd === 'suback'));
  assert.deepEqual(told.filter((x) => x.filters !== null), []);
});
