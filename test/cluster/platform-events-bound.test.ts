/**
 * Every uplink of a cluster node is also a platform event published on core NATS for the other nodes' streams
 * (src/cluster/platform-peers.ts). `nc.publish` never waits, so with NATS not answering (here: a relay that
 * holds everything, the connection itself staying up) a device's flood used to pile up in the NATS client's
 * buffer without a bound (issue 12). Now what NATS has not confirmed is bounded in bytes: past the bound events
 * are dropped and counted (the streams are at most once by design), and sharing resumes once NATS answers.
 * One in-process node on 127.0.0.2, PostgreSQL and the CI's nats-server behind the relay.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import mqtt from 'mqtt';
import { MAX_UNCONFIRMED_EVENT_BYTES } from '../../src/cluster/platform-peers.ts';
import { clusterSkip, startRelayedNode, waitFor, type RelayedNode } from '../harness/cluster.ts';

const A = '127.0.0.2';
const PAYLOAD = 64 * 1024;
const MESSAGES = Math.ceil((MAX_UNCONFIRMED_EVENT_BYTES * 2) / PAYLOAD); // twice the bound
/** An event's frame: the payload and its JSON header (ids, topic, device, times). */
const FRAME_OVERHEAD = 1024;

if (clusterSkip !== undefined) {
  test('platform events on their way to NATS are bounded in bytes', { skip: clusterSkip, timeout: 1_000 }, () => {});
} else {
  describe('platform events on their way to the other nodes are bounded in bytes (issue 12, issue 16 item 7)', { timeout: 180_000 }, () => {
    let relayed: (RelayedNode & { stop(): Promise<void> }) | undefined;

    before(async () => { relayed = await startRelayedNode('ev-a', A, 'events_bound_gw'); }, { timeout: 60_000 });

    after(() => relayed?.stop(), { timeout: 60_000 });

    test('a flood of uplinks while NATS does not answer: at most the bound is published, the rest dropped and counted; sharing resumes after', { timeout: 120_000 }, async (t) => {
      const { cluster, relay, node, gateway } = relayed!;
      const peers = node.gatehouse.cluster!.peers;
      const device = await cluster.addDevice(node, gateway);
      const client = await mqtt.connectAsync({
        host: A, port: gateway.port, protocol: 'mqtts', ca: cluster.pki.root.certPem, servername: 'localhost',
        clientId: `c-${device}`, username: device, password: `pw-${device}`, reconnectPeriod: 0, protocolVersion: 5,
      });
      t.after(() => client.end(true));
      const offered = () => peers.counters.shared + peers.counters.dropped;
      const before = { shared: peers.counters.shared, offered: offered() };
      let peak = 0;
      const sampler = setInterval(() => { peak = Math.max(peak, peers.budget.unconfirmed); }, 1);
      t.after(() => clearInterval(sampler));

      relay.stall();
      for (let i = 0; i < MESSAGES; i++) client.publish(`ev/${i}`, Buffer.alloc(PAYLOAD, i & 0xff), { qos: 0 });
      await waitFor('every uplink offered to the other nodes', () => (offered() - before.offered >= MESSAGES ? true : undefined), 60_000);
      peak = Math.max(peak, peers.budget.unconfirmed);
      // Nothing is confirmed while the relay holds everything, so what is unconfirmed now is all that was published.
      assert.ok(peak <= MAX_UNCONFIRMED_EVENT_BYTES + PAYLOAD + FRAME_OVERHEAD, `unconfirmed events stayed within the bound: ${peak}`);
      // At most the bound's worth of uplinks went out (the node's own small events, its device's online event, may
      // have taken some of it); every other uplink was dropped and counted.
      const mostPublished = Math.floor((MAX_UNCONFIRMED_EVENT_BYTES + PAYLOAD) / PAYLOAD);
      assert.ok(peers.counters.dropped >= MESSAGES - mostPublished,
        `dropped and counted: ${peers.counters.dropped} of ${MESSAGES} (shared ${peers.counters.shared - before.shared})`);
      const metrics = await (await fetch(`${node.gatehouse.url}/api/v1/metrics`, { headers: { authorization: 'Bearer e2e-admin-token-0123456789abcdef' } })).text();
      assert.match(metrics, new RegExp(`gatehouse_cluster_platform_total\\{kind="dropped"\\} ${peers.counters.dropped}\\b`));

      relay.flow();
      await waitFor('NATS confirmed what was published', () => (peers.budget.unconfirmed === 0 ? true : undefined), 30_000);
      const sharedBefore = peers.counters.shared;
      await client.publishAsync('ev/after', Buffer.from('back'), { qos: 1 });
      await waitFor('the next uplink shared again', () => (peers.counters.shared > sharedBefore ? true : undefined), 15_000);
    });
  });
}
