/**
 * Issue 16 item 2 step c and item 8: a NATS restart under QoS 1 and QoS 2 load. Two in-process nodes (A on
 * 127.0.0.2, B on 127.0.0.3) on a private nats-server (its own port and JetStream store) that is killed with -9
 * while publishers on A send QoS 1 and QoS 2 continuously, and started again on the same port and store. Persistent
 * subscribers, MQTT 5 on B and MQTT 3.1.1 on A, take both topics. Asserted: every message acknowledged to its
 * publisher (PUBACK, PUBCOMP) reaches each subscriber — QoS 2 exactly once [MQTT-4.3.3-1], QoS 1 at least once
 * [MQTT-4.3.2-1] (duplicates counted) — in the order it was published per topic [MQTT-4.6.0-2]; nothing is
 * acknowledged while NATS is away (fail closed); the publishers, reconnecting by themselves, get in once it is back,
 * and /ready is 200 again on both nodes.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type mqtt from 'mqtt';
import type { TestGatehouse } from '../harness/gatehouse.ts';
import { clusterSkip, collectAtPublish, natsOutage, TestCluster, waitFor, type GatewayJson } from '../harness/cluster.ts';
import type { PrivateNatsServer } from '../harness/nats-server.ts';

const A = '127.0.0.2';
const B = '127.0.0.3';
// Longer than the outage: the subscribers stay connected through it (a node cut off past its lease ends them all).
const LEASE = { heartbeatMs: 250, leaseMs: 20_000 };
/** Messages a publisher may have unacknowledged at once. */
const WINDOW = 16;

interface Ledger {
  /** Sequence numbers sent (PUBLISH written), with when. */
  sent: Map<number, number>;
  /** Sequence numbers acknowledged (PUBACK / PUBCOMP), with when. */
  acked: Map<number, number>;
  next: number;
  inFlight: number;
}

/** Publishes `<prefix>-<n>` on `topic` continuously at `qos`, up to WINDOW unacknowledged, while `running()`. */
function publishLoop(client: mqtt.MqttClient, topic: string, qos: 1 | 2, running: () => boolean): { ledger: Ledger; done: Promise<void> } {
  const ledger: Ledger = { sent: new Map(), acked: new Map(), next: 0, inFlight: 0 };
  const done = (async () => {
    // Ends with the client too (the after hook ends every client): a failed test must not leave it polling.
    while (running() && !client.disconnecting) {
      if (!client.connected || ledger.inFlight >= WINDOW) {
        await new Promise((resolve) => setTimeout(resolve, 5));
        continue;
      }
      const n = ledger.next++;
      ledger.inFlight++;
      ledger.sent.set(n, Date.now());
      client.publish(topic, `${topic}-${n}`, { qos }, (err, packet) => {
        ledger.inFlight--;
        // A reason code of 0x80 or more in MQTT 5's PUBACK / PUBREC is a refusal, not an acknowledgement.
        const code = (packet as { reasonCode?: number } | undefined)?.reasonCode ?? 0;
        if (!err && code < 0x80) ledger.acked.set(n, Date.now());
      });
      await new Promise((resolve) => setImmediate(resolve));
    }
  })();
  return { ledger, done };
}

/** Per topic, the sequence numbers received, in the order their PUBLISH packets arrived (see collectAtPublish). */
function collect(client: mqtt.MqttClient): { get(topic: string): number[] } {
  const got = collectAtPublish(client);
  return { get: (topic) => got.payloads(topic).map((payload) => Number(payload.slice(topic.length + 1))) };
}

if (clusterSkip !== undefined) {
  test('a NATS restart under QoS 1/2 load', { skip: clusterSkip, timeout: 1_000 }, () => {});
} else {
  describe('a NATS restart under QoS 1 and QoS 2 load (issue 16 item 2 step c, item 8)', { timeout: 180_000 }, () => {
    const cluster = new TestCluster();
    let nats: PrivateNatsServer;
    let nodeA: TestGatehouse;
    let nodeB: TestGatehouse;
    let gateway: GatewayJson;

    before(async () => {
      ({ nats, nodeA, nodeB, gateway } = await cluster.startTwoOnPrivateNats('restart', A, B, LEASE));
    }, { timeout: 90_000 });

    after(() => cluster.dispose(), { timeout: 60_000 });

    const ready = async (node: TestGatehouse): Promise<number> => (await fetch(`${node.gatehouse.url}/ready`)).status;

    // Found the stream storing a QoS 2 message published around the kill after later ones (each publish was retried
    // on its own), and a resend after a reconnect stored twice: src/cluster/message-stream.ts retries in order and
    // publish.ts's resend waits for the store on its way (test/cluster/stream-order, test/broker/cluster-store-ack).
    test('nats-server killed (-9) and started again while QoS 1 and 2 are published on A: every acknowledged message reaches the persistent subscribers on A and B, QoS 2 once, in order; nothing acknowledged while it is away', {
      timeout: 150_000,
    }, async () => {
      // Clients that keep trying as a device does: while NATS is away a publisher is disconnected (v5 0x9C) and its
      // reconnects are refused (0x88 / 3, fail closed); MQTT.js stops after a refused CONNACK unless told to go on.
      const retrying = { reconnectPeriod: 300, reconnectOnConnackError: true };
      const persistent5 = { clean: false, ...retrying, properties: { sessionExpiryInterval: 600 } };
      const persistent3 = { clean: false, ...retrying, protocolVersion: 4 as const };
      const sub5 = await cluster.connect(B, gateway, await cluster.addDevice(nodeA, gateway), persistent5);
      const sub3 = await cluster.connect(A, gateway, await cluster.addDevice(nodeA, gateway), persistent3);
      const got5 = collect(sub5);
      const got3 = collect(sub3);
      for (const sub of [sub5, sub3]) {
        await sub.subscribeAsync('load/q1', { qos: 1 });
        await sub.subscribeAsync('load/q2', { qos: 2 });
      }
      // Persistent publishers too: a QoS 2 PUBLISH resent after a reconnect is the same message only within a session.
      const pub1 = await cluster.connect(A, gateway, await cluster.addDevice(nodeA, gateway), persistent5);
      const pub2 = await cluster.connect(A, gateway, await cluster.addDevice(nodeA, gateway), persistent3);
      let publishing = true;
      const q1 = publishLoop(pub1, 'load/q1', 1, () => publishing);
      const q2 = publishLoop(pub2, 'load/q2', 2, () => publishing);

      await waitFor('load before the restart', () => (q1.ledger.acked.size >= 200 && q2.ledger.acked.size >= 200 ? true : undefined), 30_000)
        .catch((e: unknown) => assert.fail(`${String(e)}: QoS 1 ${q1.ledger.acked.size} of ${q1.ledger.next}, QoS 2 ${q2.ledger.acked.size} of ${q2.ledger.next}`));
      // A message published once NATS is gone cannot be stored until it is back: none may be acknowledged before.
      const { killedAt, until: awayUntil } = await natsOutage(nats, [nodeA.gatehouse.url, nodeB.gatehouse.url]);
      const [acked1, acked2] = [q1.ledger.acked.size, q2.ledger.acked.size];
      // The publishers reconnect by themselves and are acknowledged again.
      await waitFor('load after the restart', () => (q1.ledger.acked.size >= acked1 + 200 && q2.ledger.acked.size >= acked2 + 200 ? true : undefined), 30_000)
        .catch((e: unknown) => assert.fail(`${String(e)}: QoS 1 ${q1.ledger.acked.size - acked1} more (in flight ${q1.ledger.inFlight}, connected ${pub1.connected}), `
          + `QoS 2 ${q2.ledger.acked.size - acked2} more (in flight ${q2.ledger.inFlight}, connected ${pub2.connected})`));
      publishing = false;
      await Promise.all([q1.done, q2.done]);
      await waitFor('publishes settled', () => (q1.ledger.inFlight === 0 && q2.ledger.inFlight === 0 ? true : undefined), 15_000).catch(() => undefined);

      // Messages sent before the kill may be acknowledged during the outage: stored before it, their PUBACK was on its
      // way (the nodes, their NATS connections and these clients share one event loop), or their PUBREL is answered
      // PUBCOMP without NATS. (Asserting no acknowledgement at all in the window failed on that, 4 of ~400, once in CI.)
      const storedWhileAway = [q1.ledger, q2.ledger].flatMap((ledger) => [...ledger.acked]
        .filter(([n, at]) => (ledger.sent.get(n) ?? 0) > killedAt && at < awayUntil));
      assert.deepEqual(storedWhileAway, [], 'nothing published while NATS was away is acknowledged before it is back');

      const expected = { 'load/q1': [...q1.ledger.acked.keys()].sort((a, b) => a - b), 'load/q2': [...q2.ledger.acked.keys()].sort((a, b) => a - b) };
      const missing = (got: { get(topic: string): number[] }, topic: 'load/q1' | 'load/q2'): number[] => {
        const seen = new Set(got.get(topic) ?? []);
        return expected[topic].filter((n) => !seen.has(n));
      };
      await waitFor('every acknowledged message delivered', () => ([got5, got3].every((got) => missing(got, 'load/q1').length === 0
        && missing(got, 'load/q2').length === 0) ? true : undefined), 30_000).catch(() => undefined);

      for (const [name, got] of [['v5 on B', got5], ['3.1.1 on A', got3]] as const) {
        for (const topic of ['load/q1', 'load/q2'] as const) {
          const lost = missing(got, topic);
          assert.deepEqual(lost.slice(0, 20), [], `${name} ${topic}: ${lost.length} acknowledged messages lost of ${expected[topic].length}`);
          const received = got.get(topic) ?? [];
          const firsts = received.filter((n, i) => received.indexOf(n) === i);
          const outOfOrder = firsts.filter((n, i) => i > 0 && n < firsts[i - 1]!);
          assert.deepEqual(outOfOrder.slice(0, 20), [], `${name} ${topic}: in publishing order [MQTT-4.6.0-2]`);
          const duplicates = received.length - firsts.length;
          const twice = firsts.filter((n) => received.filter((m) => m === n).length > 1);
          if (topic === 'load/q2') {
            assert.equal(duplicates, 0, `${name} ${topic}: exactly once [MQTT-4.3.3-1]; more than once: ${twice.slice(0, 20).join(', ')} `
              + `(acknowledged to the publisher at ${twice.slice(0, 5).map((n) => (q2.ledger.acked.get(n) ?? 0) - killedAt).join(', ')} ms from the kill)`);
          }
          else console.log(`# ${name} ${topic}: ${received.length} received, ${firsts.length} distinct, ${duplicates} duplicates (QoS 1 allows them)`);
        }
      }
      console.log(`# published ${q1.ledger.next} QoS 1 (${q1.ledger.acked.size} acknowledged), ${q2.ledger.next} QoS 2 (${q2.ledger.acked.size} acknowledged)`);
      assert.equal(await ready(nodeA), 200);
      assert.equal(await ready(nodeB), 200);
    });
  });
}
