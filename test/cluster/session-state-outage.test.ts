/**
 * Issue 16 items 2 and 8: a persistent session's state keeps being written to its record after a NATS outage its
 * connection lived through, so a later kill -9 of its node resumes it elsewhere from where it stood.
 *
 * Node A (`npm start`, killed with -9 at the end) holds a persistent MQTT 5 subscriber at QoS 2; a publisher on node B
 * sends QoS 2 messages continuously; the private nats-server is killed with -9 under that load and started again
 * (shorter than the lease, so the subscriber stays connected to A). After the outage the load goes on, then stops,
 * every acknowledged message reaches the subscriber, and A is killed. The subscriber resumes on B (Session Present 1)
 * from its record: a QoS 2 message it completed on A must not come again as a new message [MQTT-4.3.3-1] — which is
 * what a floor from before the outage replays.
 *
 * And a write of the session's record that NATS stored but whose answer never reached the node (a relay drops what
 * NATS sends, then cuts the connection): back, the node finds the record at a later revision it wrote itself, and
 * still holds the session — not "lost while cut off", which disconnected a client no other node had taken.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { GatehouseProcess } from '../harness/gatehouse-process.ts';
import type { TestGatehouse } from '../harness/gatehouse.ts';
import { clusterSkip, collectAtPublish, natsOutage, startRelayedNode, TestCluster, waitFor, type GatewayJson, type RelayedNode } from '../harness/cluster.ts';
import type { PrivateNatsServer } from '../harness/nats-server.ts';

const A = '127.0.0.2';
const B = '127.0.0.3';

if (clusterSkip !== undefined) {
  test('session state written after a NATS outage', { skip: clusterSkip, timeout: 1_000 }, () => {});
} else {
  describe('a persistent session\'s state after a NATS outage (issue 16 items 2, 8)', { timeout: 240_000 }, () => {
    const cluster = new TestCluster();
    let nats: PrivateNatsServer;
    let nodeA: GatehouseProcess;
    let nodeB: TestGatehouse;
    let gateway: GatewayJson;

    before(async () => {
      nats = await cluster.setUpOnPrivateNats();
      nodeA = await cluster.startProcess('outage-a', A, { GATEHOUSE_NATS_URL: nats.url });
      nodeB = await cluster.startNode('outage-b', B, { natsUrl: nats.url });
      gateway = await cluster.createGateway(nodeA, 'outage_gw', [A, B]);
    }, { timeout: 120_000 });

    after(() => cluster.dispose(), { timeout: 60_000 });

    test('kill -9 of NATS under QoS 2 load, then kill -9 of the subscriber\'s node: it resumes on B with what it had completed on A, no QoS 2 message twice', { timeout: 200_000 }, async () => {
      // Clients that keep trying as devices do (MQTT.js stops after a refused CONNACK unless told to go on).
      const retrying = { reconnectPeriod: 300, reconnectOnConnackError: true };
      const servers = [{ host: A, port: gateway.port }, { host: B, port: gateway.port }];
      const sub = await cluster.connect(A, gateway, await cluster.addDevice(nodeA, gateway), {
        clean: false, properties: { sessionExpiryInterval: 3600 }, servers, ...retrying,
      });
      sub.on('error', () => undefined); // its node is killed under it
      // Session Present of each reconnect (the first CONNACK came before this listener).
      const present: boolean[] = [];
      sub.on('connect', (connack) => present.push(connack.sessionPresent));
      const got = collectAtPublish(sub);
      await sub.subscribeAsync('st/#', { qos: 2 });
      const pub = await cluster.connect(B, gateway, await cluster.addDevice(nodeA, gateway), {
        clean: false, properties: { sessionExpiryInterval: 600 }, ...retrying,
      });
      pub.on('error', () => undefined);

      // QoS 2, up to 8 unacknowledged, while `publishing`; acknowledged = PUBREC without an error code.
      const acked = new Set<number>();
      let next = 0;
      let inFlight = 0;
      let publishing = true;
      const load = (async () => {
        while (publishing && !pub.disconnecting) {
          if (!pub.connected || inFlight >= 8) {
            await new Promise((resolve) => setTimeout(resolve, 5));
            continue;
          }
          const n = next++;
          inFlight++;
          pub.publish('st/q2', `m-${n}`, { qos: 2 }, (err, packet) => {
            inFlight--;
            if (!err && ((packet as { reasonCode?: number } | undefined)?.reasonCode ?? 0) < 0x80) acked.add(n);
          });
          await new Promise((resolve) => setTimeout(resolve, 2));
        }
      })();
      try {
        await waitFor('load before the outage', () => (acked.size >= 150 ? true : undefined), 30_000);
        await natsOutage(nats, [nodeA.url, nodeB.gatehouse.url]);
        const before = acked.size;
        await waitFor('load after the outage', () => (acked.size >= before + 150 ? true : undefined), 60_000)
          .catch((e: unknown) => assert.fail(`${String(e)}: ${acked.size - before} more, publisher connected ${pub.connected}`));
      } finally {
        publishing = false;
        await load;
      }
      await waitFor('publishes settled', () => (inFlight === 0 ? true : undefined), 30_000);
      const received = (): Set<number> => new Set(got.payloads('st/q2').map((p) => Number(p.slice(2))));
      await waitFor('every acknowledged message at the subscriber on A', () => ([...acked].every((n) => received().has(n)) ? true : undefined), 30_000);
      assert.equal(present.length, 0, 'the subscriber stayed connected to A through the outage (shorter than the lease)');
      // Its floor is written once a second while it moves: two of those after the last completion.
      await new Promise((resolve) => setTimeout(resolve, 2_500));
      const beforeKill = got.payloads('st/q2').length;

      await nodeA.kill9();
      await waitFor('the subscriber resumed on B', () => (sub.connected && present.length >= 1 ? true : undefined), 60_000);
      assert.equal(present.at(-1), true, 'Session Present 1 on B [MQTT-3.2.2-2]');
      const end = new Promise<void>((resolve) => sub.on('message', (topic) => (topic === 'st/end' ? resolve() : undefined)));
      await pub.publishAsync('st/end', 'end', { qos: 2 });
      await end;

      const all = got.payloads('st/q2');
      const twice = all.filter((p, i) => all.indexOf(p) !== i);
      assert.deepEqual(twice.slice(0, 20), [], `QoS 2 delivered again after the resume on B [MQTT-4.3.3-1]: ${twice.length} of ${all.length - beforeKill} `
        + `deliveries there; ${acked.size} acknowledged to the publisher`);
      assert.deepEqual([...acked].filter((n) => !received().has(n)), [], 'every acknowledged message delivered');
    });
  });

  describe('a session record write whose answer was lost (issue 16 items 2, 3)', { timeout: 120_000 }, () => {
    const HOST = '127.0.0.4';
    let relayed: RelayedNode & { stop(): Promise<void> };

    before(async () => {
      relayed = await startRelayedNode('deaf-a', HOST, 'deaf_gw');
    }, { timeout: 90_000 });

    after(() => relayed?.stop(), { timeout: 60_000 });

    test('NATS stored the write, its answer was dropped: once back the node still holds the session, the client stays connected and gets what it subscribed to', { timeout: 60_000 }, async () => {
      const { cluster, relay, node, gateway } = relayed;
      const sub = await cluster.connect(HOST, gateway, await cluster.addDevice(node, gateway), { clean: false, properties: { sessionExpiryInterval: 3600 } });
      let closed = false;
      sub.on('close', () => (closed = true));
      await sub.subscribeAsync('first', { qos: 1 });
      // The subscription is written to the session's record (the SUBACK waits for it, bounded): that write reaches
      // NATS, and from it on nothing NATS sends reaches the node.
      relay.deafenAfter(/H?PUB \$KV\.gatehouse-sessions-/);
      await sub.subscribeAsync('second', { qos: 1 });
      // Past the write's timeout (5 s): the node knows it as failed, not as done.
      await new Promise((resolve) => setTimeout(resolve, 6_000));
      relay.sever();
      relay.restore();
      await waitFor('ready again', async () => ((await fetch(`${node.gatehouse.url}/ready`)).status === 200 ? true : undefined), 30_000);
      // Reconnected, the node reads its records again (and writes the session's state once more within a second).
      await new Promise((resolve) => setTimeout(resolve, 2_500));
      assert.equal(closed, false, 'the client stayed connected: no other node took its session');
      const pub = await cluster.connect(HOST, gateway, await cluster.addDevice(node, gateway));
      const got = new Promise<string>((resolve) => sub.once('message', (topic) => resolve(topic)));
      await pub.publishAsync('second', 'after', { qos: 1 });
      assert.equal(await got, 'second');
    });
  });
}
