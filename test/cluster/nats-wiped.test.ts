/**
 * Issue 16 items 2 and 8: NATS comes back without its store (a server that lost its disk, or a container started
 * again without its volume). Its message stream is created anew and numbers its messages from 1 again, while the
 * nodes' feeds had handed their engines messages up to a higher sequence. Two in-process nodes (A on 127.0.0.2, B on
 * 127.0.0.3) on a private nats-server; QoS 1 subscribers on both, a publisher on A; 20 messages before the store is
 * lost, 5 after. Asserted: every message acknowledged after NATS is back reaches both subscribers, in order; before,
 * the feeds skipped each one as already handed until the new stream passed the old position (acknowledged, never
 * delivered). The KV buckets went with the store (leases, session records, …): the nodes make them again when they
 * reconnect, so a persistent session connected before the loss publishes QoS 2 again (its node lets it go once its
 * record is found gone, and it reconnects and claims a new one) and one connecting after does too, each message
 * delivered once; a retained message set after the loss reaches a later subscriber on the other node as retained,
 * the ones set before it are put back into the new bucket (a node started after the loss gets them all),
 * and a shared group with a member on each node spreads over both again, each message to one member (the members,
 * let go with their records, subscribe anew and so write the group's records again). Before that, the stream alone
 * deleted (by an operator) while NATS stays up: the feeds start over at the new stream's first message, and a
 * persistent session resumed on the other node from its record replays from the new stream's start rather than from
 * its floor, which lies past the new stream's end.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type mqtt from 'mqtt';
import type { TestGatehouse } from '../harness/gatehouse.ts';
import { clusterCounter, clusterSkip, collectAtPublish, TestCluster, waitFor, type GatewayJson } from '../harness/cluster.ts';
import { loadNatsClient } from '../../src/cluster/nats-client.ts';
import type { PrivateNatsServer } from '../harness/nats-server.ts';

const A = '127.0.0.2';
const B = '127.0.0.3';
const C = '127.0.0.4';
// Longer than the outage: the clients stay connected through it.
const LEASE = { heartbeatMs: 250, leaseMs: 30_000 };

if (clusterSkip !== undefined) {
  test('NATS back without its store', { skip: clusterSkip, timeout: 1_000 }, () => {});
} else {
  describe('NATS back without its store (issue 16 items 2, 8)', { timeout: 180_000 }, () => {
    const cluster = new TestCluster();
    let nats: PrivateNatsServer;
    let nodeA: TestGatehouse;
    let nodeB: TestGatehouse;
    let gateway: GatewayJson;

    before(async () => {
      ({ nats, nodeA, nodeB, gateway } = await cluster.startTwoOnPrivateNats('wiped', A, B, LEASE));
    }, { timeout: 90_000 });

    after(() => cluster.dispose(), { timeout: 60_000 });

    const ready = async (node: TestGatehouse): Promise<number> => (await fetch(`${node.gatehouse.url}/ready`)).status;

    test('the message stream deleted while NATS stays up: the feeds of both nodes start over with the new stream, and a persistent session resumed on B replays it from its start, not from its floor past its end [MQTT-4.3.2-1, MQTT-4.6.0-2]', { timeout: 120_000 }, async () => {
      const persistent = { clean: false, properties: { sessionExpiryInterval: 600 } };
      const live = await cluster.connect(B, gateway, await cluster.addDevice(nodeA, gateway));
      await live.subscribeAsync('deleted/#', { qos: 1 });
      const gotLive = collectAtPublish(live);
      const away = await cluster.addDevice(nodeA, gateway);
      const first = await cluster.connect(A, gateway, away, persistent);
      await first.subscribeAsync('deleted/#', { qos: 1 });
      const pub = await cluster.connect(A, gateway, await cluster.addDevice(nodeA, gateway));
      for (let i = 0; i < 20; i++) await pub.publishAsync('deleted/q1', `before ${i}`, { qos: 1 });
      await waitFor('the messages before', () => (gotLive.payloads('deleted/q1').length === 20 ? true : undefined));
      // The session's floor in its record is past the 20 (written within a second); then its client goes.
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      await first.endAsync();

      const client = await loadNatsClient();
      const nc = await client.connect({ servers: nats.url });
      try {
        const jsm = await client.jetstreamManager(nc);
        for await (const stream of jsm.streams.list()) {
          if (stream.config.name.startsWith('gatehouse-messages-')) await jsm.streams.delete(stream.config.name);
        }
      } finally {
        await nc.close();
      }
      for (let i = 0; i < 5; i++) await pub.publishAsync('deleted/q1', `after ${i}`, { qos: 1 });
      const after = ['after 0', 'after 1', 'after 2', 'after 3', 'after 4'];
      await waitFor('the messages after on B', () => (gotLive.payloads('deleted/q1').filter((p) => p.startsWith('after ')).length >= 5 ? true : undefined), 30_000);
      assert.deepEqual(gotLive.payloads('deleted/q1').filter((p) => p.startsWith('after ')), after, 'each acknowledged message once, in order');

      const back = cluster.open(B, gateway, away, persistent);
      const gotBack = collectAtPublish(back);
      await new Promise<void>((resolve, reject) => {
        back.once('connect', (connack) => (connack.sessionPresent ? resolve() : reject(new Error('no session on B'))));
        back.once('error', reject);
      });
      await waitFor('the messages stored while it was away', () => (gotBack.payloads('deleted/q1').length >= 5 ? true : undefined), 30_000);
      assert.deepEqual(gotBack.payloads('deleted/q1'), after, 'replayed from the new stream\'s start, each once, in order');
      await back.endAsync();
      await pub.endAsync();
      await live.endAsync();
    });

    test('nats-server killed, its store emptied, started again: the QoS 1 messages acknowledged after it reach the subscribers on both nodes, in order [MQTT-4.3.2-1, MQTT-4.6.0-2]', { timeout: 150_000 }, async () => {
      // Clients that come back by themselves: a node lets go of a connection whose session record went with the store.
      const retrying = { reconnectPeriod: 300, reconnectOnConnackError: true };
      const persistent = { clean: false, ...retrying, properties: { sessionExpiryInterval: 600 } };
      const subscribers: { host: string; sub: mqtt.MqttClient; got: ReturnType<typeof collectAtPublish> }[] = [];
      for (const host of [A, B]) {
        const sub = await cluster.connect(host, gateway, await cluster.addDevice(nodeA, gateway), retrying);
        await sub.subscribeAsync('wiped/#', { qos: 1 });
        subscribers.push({ host, sub, got: collectAtPublish(sub) });
      }
      const pub = await cluster.connect(A, gateway, await cluster.addDevice(nodeA, gateway), retrying);
      const before2 = await cluster.connect(B, gateway, await cluster.addDevice(nodeA, gateway), persistent);
      // A shared group with a member on each node (clean sessions: subscribed again if their connection is let go).
      const members: { host: string; got: ReturnType<typeof collectAtPublish>; member: mqtt.MqttClient }[] = [];
      for (const host of [A, B]) {
        const member = await cluster.connect(host, gateway, await cluster.addDevice(nodeA, gateway), retrying);
        await member.subscribeAsync('$share/g/wiped/shared', { qos: 1 });
        members.push({ host, got: collectAtPublish(member), member });
      }
      // More before the loss than after it: the new stream's sequences and the new buckets' revisions stay below the
      // ones the nodes reached.
      for (let i = 0; i < 20; i++) await pub.publishAsync('wiped/q1', `before ${i}`, { qos: 1 });
      for (let i = 0; i < 5; i++) await pub.publishAsync(`wiped/retained/${i}`, 'before', { qos: 1, retain: true });
      for (const { got } of subscribers) await waitFor('the messages before', () => (got.payloads('wiped/q1').length === 20 ? true : undefined));

      await nats.wipe();
      await waitFor('both nodes not ready', async () => ((await ready(nodeA)) === 503 && (await ready(nodeB)) === 503 ? true : undefined));
      await nats.start();
      await waitFor('both nodes ready again', async () => ((await ready(nodeA)) === 200 && (await ready(nodeB)) === 200 ? true : undefined), 60_000);
      // Every client connected and subscribed again (a connection let go reconnects and subscribes anew): a marker
      // published until both subscribers have one.
      let markers = 0;
      await waitFor('both subscribers back', async () => {
        if (pub.connected) await pub.publishAsync('wiped/marker', `${++markers}`, { qos: 1 }).catch(() => undefined);
        return subscribers.every(({ got }) => got.payloads('wiped/marker').length > 0) ? true : undefined;
      }, 60_000);
      for (let i = 0; i < 5; i++) await pub.publishAsync('wiped/q1', `after ${i}`, { qos: 1 });
      const after = ['after 0', 'after 1', 'after 2', 'after 3', 'after 4'];
      for (const { host, got } of subscribers) {
        await waitFor(`the messages after on ${host}`, () => (got.payloads('wiped/q1').filter((p) => p.startsWith('after ')).length >= 5 ? true : undefined), 30_000);
        assert.deepEqual(got.payloads('wiped/q1').filter((p) => p.startsWith('after ')), after, `${host}: each acknowledged message once, in order`);
      }
      // Retained messages set after the loss are seen at once on the other node (its replica reads the new bucket
      // from its start), and the shared group spreads over both nodes again (each node wrote its members' records anew).
      await pub.publishAsync('wiped/retained/new', 'after', { qos: 1, retain: true });
      // Routed to the live subscribers of both nodes first: a subscriber that comes later can only get it as retained.
      for (const { got } of subscribers) await waitFor('the retained message routed', () => (got.payloads('wiped/retained/new').length > 0 ? true : undefined));
      const late = await cluster.connect(B, gateway, await cluster.addDevice(nodeA, gateway));
      const retainedOnB: string[] = [];
      late.on('packetreceive', (packet) => {
        if (packet.cmd === 'publish' && packet.retain) retainedOnB.push(`${packet.topic} ${packet.payload.toString()}`);
      });
      await late.subscribeAsync('wiped/retained/new', { qos: 1 });
      await waitFor('the retained message set after the loss, on B', () => (retainedOnB.includes('wiped/retained/new after') ? true : undefined), 10_000);
      // The retained messages set before the loss are put back into the new bucket by the nodes that hold them: a node
      // that starts now (C, its data directory new) gets them as well as the one set after. Before, only the latter.
      const nodeC = await cluster.startNode('wiped-c', C, { natsUrl: nats.url, leaseTimings: LEASE });
      await cluster.listening(C, gateway);
      const onC = await cluster.connect(C, gateway, await cluster.addDevice(nodeC, gateway));
      const retainedOnC: string[] = [];
      onC.on('packetreceive', (packet) => {
        if (packet.cmd === 'publish' && packet.retain) retainedOnC.push(`${packet.topic} ${packet.payload.toString()}`);
      });
      await onC.subscribeAsync('wiped/retained/#', { qos: 1 });
      const expected = ['wiped/retained/0 before', 'wiped/retained/1 before', 'wiped/retained/2 before', 'wiped/retained/3 before', 'wiped/retained/4 before', 'wiped/retained/new after'];
      await waitFor('every retained message on C', () => (retainedOnC.length >= expected.length ? true : undefined), 10_000);
      assert.deepEqual([...retainedOnC].sort(), expected, 'each once, as last set');
      // Each put back once: the first node's create wins, the other's finds the key there (counted once its pass ends).
      const putBack = async (): Promise<number> => await clusterCounter(nodeA.gatehouse, gateway, 'retained_put_back') + await clusterCounter(nodeB.gatehouse, gateway, 'retained_put_back');
      await waitFor('5 put back', async () => ((await putBack()) >= 5 ? true : undefined), 10_000);
      assert.equal(await putBack(), 5);
      await onC.endAsync();
      const sharedSent: string[] = [];
      await waitFor('a shared message on each node\'s member', async () => {
        const text = `s${sharedSent.length}`;
        await pub.publishAsync('wiped/shared', text, { qos: 1 });
        sharedSent.push(text);
        return members.every(({ got }) => got.payloads('wiped/shared').length > 0) ? true : undefined;
      }, 30_000);
      await pub.publishAsync('wiped/q1', 'shared marker', { qos: 1 });
      for (const { got } of subscribers) await waitFor('the marker', () => (got.payloads('wiped/q1').includes('shared marker') ? true : undefined));
      const received = members.flatMap(({ got }) => got.payloads('wiped/shared')).filter((p) => sharedSent.includes(p));
      assert.deepEqual([...received].sort(), [...sharedSent].sort(), 'each shared message to one member, none twice');
      await late.endAsync();
      for (const { member } of members) await member.endAsync();
      // The buckets are made again: a session that was connected before, and one that connects now, publish QoS 2.
      await before2.publishAsync('wiped/q2', 'from a session of before', { qos: 2 });
      const after2 = await cluster.connect(A, gateway, await cluster.addDevice(nodeA, gateway), persistent);
      await after2.publishAsync('wiped/q2', 'from a session of after', { qos: 2 });
      for (const { host, got } of subscribers) {
        await waitFor(`both QoS 2 messages on ${host}`, () => (got.payloads('wiped/q2').length >= 2 ? true : undefined), 30_000);
        assert.deepEqual(got.payloads('wiped/q2').sort(), ['from a session of after', 'from a session of before'], `${host}: each once`);
      }
      await pub.endAsync();
      await before2.endAsync();
      await after2.endAsync();
      for (const { sub } of subscribers) await sub.endAsync();
    });
  });
}
