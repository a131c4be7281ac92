/**
 * Every uplink of a cluster node is also a platform event published on core NATS for the other nodes' streams
 * (src/cluster/platform-peers.ts), and every QoS 0 PUBLISH is forwarded on core NATS to the other nodes'
 * subscribers (src/cluster/links.ts). `nc.publish` never waits, so with NATS not answering (here: a relay that
 * holds everything, the connection itself staying up) a device's flood used to pile up in the NATS client's
 * buffer without a bound (issue 12). Now what the node has published and NATS not confirmed is bounded in bytes,
 * both kinds together: past the bound they are dropped and counted (both are at most once by design), and
 * publishing resumes once NATS answers. One in-process node on 127.0.0.2, PostgreSQL and the CI's nats-server
 * behind the relay.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import mqtt from 'mqtt';
import { MAX_UNCONFIRMED_PUBLISH_BYTES } from '../../src/cluster/publish-budget.ts';
import { clusterSkip, natsObserver, startRelayedNode, waitFor, type RelayedNode } from '../harness/cluster.ts';

const A = '127.0.0.2';
const B = '127.0.0.3';
const PAYLOAD = 64 * 1024;
const MESSAGES = Math.ceil((MAX_UNCONFIRMED_PUBLISH_BYTES * 2) / PAYLOAD); // twice the bound
/** An event's or a forward's frame: the payload and its header (ids, topic, device, times). */
const FRAME_OVERHEAD = 1024;
const mostPublished = Math.floor((MAX_UNCONFIRMED_PUBLISH_BYTES + PAYLOAD) / PAYLOAD);

if (clusterSkip !== undefined) {
  test('platform events on their way to NATS are bounded in bytes', { skip: clusterSkip, timeout: 1_000 }, () => {});
} else {
  describe('platform events and QoS 0 forwards on their way to the other nodes are bounded in bytes (issue 12, issue 16 items 1 and 7)', { timeout: 180_000 }, () => {
    let relayed: (RelayedNode & { stop(): Promise<void> }) | undefined;

    before(async () => { relayed = await startRelayedNode('ev-a', A, 'events_bound_gw'); }, { timeout: 60_000 });

    after(() => relayed?.stop(), { timeout: 60_000 });

    test('a flood of QoS 0 uplinks while NATS does not answer: events and forwards together publish at most the bound, the rest dropped and counted; both resume after', { timeout: 120_000 }, async (t) => {
      const { cluster, relay, node, gateway } = relayed!;
      const { peers, connection, links } = node.gatehouse.cluster!;
      const forwards = (): { forwarded: number; forwardDropped: number } => links.counters().get(gateway.id) ?? { forwarded: 0, forwardDropped: 0 };
      const device = await cluster.addDevice(node, gateway);
      const client = await mqtt.connectAsync({
        host: A, port: gateway.port, protocol: 'mqtts', ca: cluster.pki.root.certPem, servername: 'localhost',
        clientId: `c-${device}`, username: device, password: `pw-${device}`, reconnectPeriod: 0, protocolVersion: 5,
      });
      t.after(() => client.end(true));
      // A node shares its events only while another node hears them (a /stream open there): one says it does.
      const listener = await natsObserver();
      t.after(() => listener.close());
      await listener.listen(connection.prefix, 'events-bound-listener');
      assert.equal(peers.listeners, 1);
      const offered = () => peers.counters.shared + peers.counters.dropped;
      const before = { shared: peers.counters.shared, dropped: peers.counters.dropped, offered: offered(), ...forwards() };
      let peak = 0;
      const sampler = setInterval(() => { peak = Math.max(peak, connection.budget.unconfirmed); }, 1);
      t.after(() => clearInterval(sampler));

      relay.stall();
      for (let i = 0; i < MESSAGES; i++) client.publish(`ev/${i}`, Buffer.alloc(PAYLOAD, i & 0xff), { qos: 0 });
      const forwardsOffered = (): number => forwards().forwarded + forwards().forwardDropped - before.forwarded - before.forwardDropped;
      await waitFor('every uplink offered to the other nodes, as an event and as a forward',
        () => (offered() - before.offered >= MESSAGES && forwardsOffered() >= MESSAGES ? true : undefined), 60_000);
      peak = Math.max(peak, connection.budget.unconfirmed);
      // Nothing is confirmed while the relay holds everything, so what is unconfirmed now is all that was published.
      assert.ok(peak <= MAX_UNCONFIRMED_PUBLISH_BYTES + PAYLOAD + FRAME_OVERHEAD, `unconfirmed publishes stayed within the bound: ${peak}`);
      // At most the bound's worth of 64 KB events and forwards together went out: of the 2 x MESSAGES offered, the
      // rest was dropped and counted (the node's small events, its device's online event, take some of the bound
      // too, and are counted among the shared ones), each kind past its own share.
      const eventsDropped = peers.counters.dropped - before.dropped;
      const forwardsDropped = forwards().forwardDropped - before.forwardDropped;
      assert.ok(eventsDropped + forwardsDropped >= 2 * MESSAGES - mostPublished && eventsDropped >= MESSAGES - mostPublished
        && forwardsDropped >= MESSAGES - mostPublished,
      `dropped and counted: ${eventsDropped} events, ${forwardsDropped} forwards of ${MESSAGES} each `
        + `(published ${peers.counters.shared - before.shared} events, ${forwards().forwarded - before.forwarded} forwards)`);
      const metrics = await (await fetch(`${node.gatehouse.url}/api/v1/metrics`, { headers: { authorization: 'Bearer e2e-admin-token-0123456789abcdef' } })).text();
      assert.match(metrics, new RegExp(`gatehouse_cluster_platform_total\\{kind="dropped"\\} ${peers.counters.dropped}\\b`));
      assert.match(metrics, new RegExp(`gatehouse_cluster_messages_total\\{gateway_id="${gateway.id}",kind="forward_dropped"\\} ${forwards().forwardDropped}\\b`));

      relay.flow();
      await waitFor('NATS confirmed what was published', () => (connection.budget.unconfirmed === 0 ? true : undefined), 30_000);
      const sharedBefore = peers.counters.shared;
      const forwardedBefore = forwards().forwarded;
      await client.publishAsync('ev/after', Buffer.from('back'), { qos: 0 });
      await waitFor('the next uplink shared and forwarded again',
        () => (peers.counters.shared > sharedBefore && forwards().forwarded > forwardedBefore ? true : undefined), 15_000);
    });

    test('a QoS 0 flood for a shared group whose member is on another node: sent under the same bound, the rest dropped and counted', { timeout: 120_000 }, async (t) => {
      const { cluster, relay, node, gateway } = relayed!;
      const { connection, links } = node.gatehouse.cluster!;
      await cluster.startNode('ev-b', B);
      await cluster.listening(B, gateway);
      const connect = async (host: string): Promise<mqtt.MqttClient> => {
        const device = await cluster.addDevice(node, gateway);
        const client = await mqtt.connectAsync({
          host, port: gateway.port, protocol: 'mqtts', ca: cluster.pki.root.certPem, servername: 'localhost',
          clientId: `c-${device}`, username: device, password: `pw-${device}`, reconnectPeriod: 0, protocolVersion: 5,
        });
        t.after(() => client.end(true));
        return client;
      };
      const member = await connect(B);
      let heard = 0;
      member.on('message', () => { heard++; });
      await member.subscribeAsync('$share/g/sh/#', { qos: 0 });
      const publisher = await connect(A);
      // Node A knows of the member on B once a message published on A reaches it.
      await waitFor('the member on B known to A', async () => {
        await publisher.publishAsync('sh/probe', Buffer.from('p'), { qos: 0 });
        return heard > 0 ? true : undefined;
      }, 30_000);
      const shared = (): { sharedSent: number; sharedDropped: number } => links.counters().get(gateway.id) ?? { sharedSent: 0, sharedDropped: 0 };
      const before = { ...shared() }; // a copy: the counters are live
      let peak = 0;
      const sampler = setInterval(() => { peak = Math.max(peak, connection.budget.unconfirmed); }, 1);
      t.after(() => clearInterval(sampler));

      relay.stall();
      for (let i = 0; i < MESSAGES; i++) publisher.publish(`sh/${i}`, Buffer.alloc(PAYLOAD, i & 0xff), { qos: 0 });
      await waitFor('every message offered to the node of the member',
        () => (shared().sharedSent + shared().sharedDropped - before.sharedSent - before.sharedDropped >= MESSAGES ? true : undefined), 60_000);
      peak = Math.max(peak, connection.budget.unconfirmed);
      assert.ok(peak <= MAX_UNCONFIRMED_PUBLISH_BYTES + PAYLOAD + FRAME_OVERHEAD, `unconfirmed publishes stayed within the bound: ${peak}`);
      const dropped = shared().sharedDropped - before.sharedDropped;
      assert.ok(dropped >= MESSAGES - mostPublished, `dropped and counted: ${dropped} of ${MESSAGES} (sent ${shared().sharedSent - before.sharedSent})`);
      const metrics = await (await fetch(`${node.gatehouse.url}/api/v1/metrics`, { headers: { authorization: 'Bearer e2e-admin-token-0123456789abcdef' } })).text();
      assert.match(metrics, new RegExp(`gatehouse_cluster_messages_total\\{gateway_id="${gateway.id}",kind="shared_dropped"\\} ${shared().sharedDropped}\\b`));

      relay.flow();
      await waitFor('NATS confirmed what was published', () => (connection.budget.unconfirmed === 0 ? true : undefined), 30_000);
      const heardBefore = heard;
      await waitFor('the member hears the group again', async () => {
        await publisher.publishAsync('sh/after', Buffer.from('back'), { qos: 0 });
        return heard > heardBefore ? true : undefined;
      }, 30_000);
    });
  });
}
