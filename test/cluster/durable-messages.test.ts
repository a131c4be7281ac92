/**
 * Issue 16 item 2, step a: a cluster node acknowledges a QoS 1/2 PUBLISH only once the cluster's JetStream stream
 * holds it, and every node's subscribers get it from that stream. Node A as `npm start` runs it (127.0.0.2, killed
 * with -9), node B in-process reaching NATS through a relay the test cuts (127.0.0.3), node C in-process (127.0.0.4).
 * - kill -9 of A right after its PUBACKs / PUBRECs under QoS 1 and QoS 2 load, B cut off from NATS during the load
 *   until after the kill: every acknowledged message reaches B's subscribers, the QoS 2 one's exactly once;
 * - B cut off from NATS a moment while C publishes: back, B reads what it missed from the stream, in order, once;
 * - a message the stream refuses is answered 0x97 and reaches no one, and /metrics counts it.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type mqtt from 'mqtt';
import type { TestGatehouse } from '../harness/gatehouse.ts';
import type { GatehouseProcess } from '../harness/gatehouse-process.ts';
import { clusterCounter, clusterNatsUrl, clusterSkip, collectAtPublish, gatewayCounter, natsRelay, TestCluster, waitFor, type GatewayJson, type NatsRelay } from '../harness/cluster.ts';
import { loadNatsClient } from '../../src/cluster/nats-client.ts';

const A = '127.0.0.2';
const B = '127.0.0.3';
const C = '127.0.0.4';
const LEASE = { heartbeatMs: 500, leaseMs: 60_000 };

/** What a subscriber received, per payload, in order. */
function collect(client: mqtt.MqttClient): { all: string[]; count(payload: string): number } {
  const all: string[] = [];
  client.on('message', (_topic, payload) => all.push(payload.toString()));
  return { all, count: (payload) => all.filter((p) => p === payload).length };
}

if (clusterSkip !== undefined) {
  test('QoS 1/2 through the cluster stream', { skip: clusterSkip, timeout: 1_000 }, () => {});
} else {
  describe('QoS 1/2 messages durable in the cluster\'s stream (issue 16 item 2)', { timeout: 300_000 }, () => {
    const cluster = new TestCluster();
    let relay: NatsRelay;
    let nodeA: GatehouseProcess;
    let nodeB: TestGatehouse;
    let nodeC: TestGatehouse;
    let gateway: GatewayJson;

    before(async () => {
      await cluster.setUp();
      relay = await natsRelay(clusterNatsUrl!);
      nodeA = await cluster.startProcess('durable-a', A); // first: it migrates the schema
      nodeB = await cluster.startNode('durable-b', B, { natsUrl: relay.url, leaseTimings: LEASE });
      nodeC = await cluster.startNode('durable-c', C, { leaseTimings: LEASE });
      gateway = await cluster.createGateway(nodeA, 'durable_gw');
      await cluster.listening(B, gateway);
      await cluster.listening(C, gateway);
    }, { timeout: 120_000 });

    after(async () => {
      relay?.restore();
      await cluster.dispose();
      await relay?.close();
    }, { timeout: 60_000 });

    test('kill -9 of node A right after its PUBACKs and PUBRECs, B cut off meanwhile: every acknowledged message reaches B\'s subscribers, QoS 2 exactly once', { timeout: 120_000 }, async () => {
      const sub1 = await cluster.connect(B, gateway, await cluster.addDevice(nodeA, gateway));
      const sub2 = await cluster.connect(B, gateway, await cluster.addDevice(nodeA, gateway));
      const got1 = collect(sub1);
      const got2 = collectAtPublish(sub2); // QoS 1 (load/q1) and QoS 2 (load/q2) messages in its flow
      await sub1.subscribeAsync('load/#', { qos: 1 });
      await sub2.subscribeAsync('load/#', { qos: 2 });
      const publisher = await cluster.connect(A, gateway, await cluster.addDevice(nodeA, gateway));

      // Acknowledged: a PUBACK (QoS 1) or PUBREC (QoS 2) with reason code 0 came back for the packet.
      const sent = new Map<number, string>();
      const acked: { qos1: string[]; qos2: string[] } = { qos1: [], qos2: [] };
      publisher.on('packetsend', (packet) => {
        if (packet.cmd === 'publish' && packet.messageId !== undefined) sent.set(packet.messageId, packet.payload.toString());
      });
      let killed: Promise<void> | undefined;
      const seen: string[] = []; // why the publisher's connection went, should A not die as planned
      publisher.on('disconnect', (p) => seen.push(`disconnect ${p.reasonCode}`));
      publisher.on('error', (e) => seen.push(`error ${e.message}`));
      publisher.on('close', () => seen.push('close'));
      publisher.on('packetreceive', (packet) => {
        if (killed !== undefined) return; // what comes after the kill was sent before it: not counted either way
        if ((packet.cmd === 'puback' || packet.cmd === 'pubrec') && (packet.reasonCode ?? 0) === 0) {
          const payload = sent.get(packet.messageId!);
          if (payload !== undefined) (packet.cmd === 'puback' ? acked.qos1 : acked.qos2).push(payload);
        }
        // Right after an acknowledgement, in its turn: A dies with publishes of both kinds still in its hands.
        if (acked.qos1.length >= 100 && acked.qos2.length >= 50) killed = nodeA.kill9();
      });
      // B stops hearing NATS while A takes the load: what A acknowledges reaches B only if it is in the stream
      // (over core NATS, at most once, it would be gone with A).
      const clusterB = nodeB.gatehouse.cluster!;
      relay.sever();
      await waitFor('node B cut off', () => (clusterB.connection.state === 'disconnected' ? true : undefined));
      // Both kinds at once, without waiting for one before the next, until A dies under them.
      for (let i = 0; i < 1000; i++) {
        publisher.publish('load/q1', `q1-${i}`, { qos: 1 }, () => undefined);
        publisher.publish('load/q2', `q2-${i}`, { qos: 2 }, () => undefined);
      }
      await waitFor('A killed under load', () => (killed === undefined ? undefined : true), 60_000).catch((e: unknown) => { throw new Error(`${(e as Error).message}: ${acked.qos1.length} ${acked.qos2.length} sent ${sent.size} connected ${publisher.connected} ${seen.join(',')}`); });
      await killed;
      const ackedQos1 = [...acked.qos1];
      const ackedQos2 = [...acked.qos2];
      assert.ok(ackedQos1.length < 1000 && ackedQos2.length < 1000, 'A died under load');
      relay.restore();

      for (const payload of [...ackedQos1, ...ackedQos2]) {
        await waitFor(`${payload} on B`, () => (got1.count(payload) > 0 && got2.count(payload) > 0 ? true : undefined), 30_000);
      }
      // Markers through C: whatever the stream held from A has reached B before them.
      const marker = await cluster.connect(C, gateway, await cluster.addDevice(nodeB, gateway));
      await marker.publishAsync('load/marker', 'end', { qos: 2 });
      await waitFor('the marker on B', () => (got1.count('end') > 0 && got2.count('end') > 0 ? true : undefined), 30_000);
      // QoS 2: each message at most once, acknowledged or not [MQTT-4.3.3-?]; QoS 1 at least once [MQTT-4.3.2-?].
      for (const payload of new Set(got2.payloads().filter((p) => p.startsWith('q2-')))) assert.equal(got2.count(payload), 1, `${payload} twice at QoS 2`);
      // Per publisher and topic, in the order published [MQTT-4.6.0-5? ordered topic].
      for (const topicPrefix of ['q1-', 'q2-']) {
        const seq = got2.payloads().filter((p) => p.startsWith(topicPrefix)).map((p) => Number(p.slice(3)));
        assert.deepEqual(seq, [...seq].sort((x, y) => x - y), `${topicPrefix} in order`);
      }
    });

    test('node B cut off from NATS a moment while C publishes: back, B\'s subscribers get every acknowledged message from the stream, in order, once', { timeout: 120_000 }, async () => {
      const sub1 = await cluster.connect(B, gateway, await cluster.addDevice(nodeC, gateway));
      const sub2 = await cluster.connect(B, gateway, await cluster.addDevice(nodeC, gateway));
      const got1 = collect(sub1);
      const got2 = collectAtPublish(sub2); // QoS 1 and 2 messages alternate in its flow
      await sub1.subscribeAsync('gap/#', { qos: 1 });
      await sub2.subscribeAsync('gap/#', { qos: 2 });
      const publisher = await cluster.connect(C, gateway, await cluster.addDevice(nodeC, gateway));
      await publisher.publishAsync('gap/t', 'before', { qos: 1 });
      await waitFor('the first message on B', () => (got1.count('before') > 0 && got2.count('before') > 0 ? true : undefined));

      const clusterB = nodeB.gatehouse.cluster!;
      relay.sever();
      await waitFor('node B cut off', () => (clusterB.connection.state === 'disconnected' ? true : undefined));
      const during: string[] = [];
      for (let i = 0; i < 50; i++) {
        const payload = `during-${i}`;
        await publisher.publishAsync('gap/t', payload, { qos: i % 2 === 0 ? 1 : 2 }); // resolved on PUBACK / PUBCOMP
        during.push(payload);
      }
      relay.restore();
      await waitFor('node B back', () => (clusterB.connection.state === 'connected' ? true : undefined), 30_000);
      // Nothing published after B came back: B must read the gap from the stream by itself.
      const expected = ['before', ...during];
      await waitFor('every message on B', () => (expected.every((p) => got1.count(p) > 0 && got2.count(p) > 0) ? true : undefined), 30_000);
      await publisher.publishAsync('gap/t', 'after', { qos: 1 });
      await waitFor('the last message on B', () => (got1.count('after') > 0 && got2.count('after') > 0 ? true : undefined));
      // Once each, in the order published, to both subscribers.
      assert.deepEqual(got2.payloads(), [...expected, 'after']);
      assert.deepEqual(got1.all, [...expected, 'after']);
      assert.ok(await clusterCounter(nodeB.gatehouse, gateway, 'stored_received') >= expected.length + 1);
    });

    test('a message the stream refuses is answered 0x97, reaches no subscriber, and /metrics counts it', { timeout: 60_000 }, async () => {
      const sub = await cluster.connect(B, gateway, await cluster.addDevice(nodeC, gateway));
      const got = collect(sub);
      await sub.subscribeAsync('refused/#', { qos: 1 });
      const publisher = await cluster.connect(C, gateway, await cluster.addDevice(nodeC, gateway));
      // The stream refuses anything larger than 64 bytes for a moment (as a full disk or a stricter operator would).
      const client = await loadNatsClient();
      const nc = await client.connect({ servers: clusterNatsUrl! });
      const name = `gatehouse-messages-${nodeC.gatehouse.cluster!.connection.bucketSuffix}`;
      const jsm = await client.jetstreamManager(nc);
      const reasons: number[] = [];
      publisher.on('packetreceive', (packet) => {
        if (packet.cmd === 'puback' || packet.cmd === 'pubrec') reasons.push(packet.reasonCode ?? 0);
      });
      let config: Awaited<ReturnType<typeof jsm.streams.info>>['config'] | undefined;
      try {
        config = (await jsm.streams.info(name)).config;
        await jsm.streams.update(name, { ...config, max_msg_size: 64 });
        const refusedBefore = await gatewayCounter(nodeC.gatehouse, gateway, 'publishes_refused_cluster_stream');
        await publisher.publishAsync('refused/t', 'x'.repeat(200), { qos: 1 }).catch(() => undefined);
        await publisher.publishAsync('refused/t', 'y'.repeat(200), { qos: 2 }).catch(() => undefined);
        assert.deepEqual(reasons, [0x97, 0x97]);
        assert.equal(await gatewayCounter(nodeC.gatehouse, gateway, 'publishes_refused_cluster_stream'), refusedBefore + 2);
        assert.equal(await clusterCounter(nodeC.gatehouse, gateway, 'store_refused'), 2);
      } finally {
        if (config !== undefined) await jsm.streams.update(name, { ...config, max_msg_size: -1 });
        await nc.close();
      }
      // Accepted again; the refused ones never arrive (the marker comes after them on the same path).
      await publisher.publishAsync('refused/t', 'ok', { qos: 1 });
      await waitFor('the marker on B', () => (got.count('ok') > 0 ? true : undefined));
      assert.deepEqual(got.all, ['ok']);
    });
  });
}
