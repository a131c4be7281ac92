/** Prometheus view of a cluster node: its NATS connection and the messages its links carried, copied at scrape time. */
import { Gauge, type Registry } from 'prom-client';
import type { ClusterConnection } from './connection.ts';
import type { LinkCounters, NatsClusterLinks } from './links.ts';
import type { NatsPlatformPeers, PeerCounters } from './platform-peers.ts';

const KINDS: readonly (keyof LinkCounters)[] = [
  'forwarded', 'received', 'malformed', 'forwardFailed', 'forwardDropped', 'retainedStored', 'retainedTooLarge', 'retainedPutBack',
  'sharedSent', 'sharedReceived', 'sharedRepicked', 'sharedUndeliverable', 'sharedUntracked', 'sharedDropped',
  'stored', 'storeRefused', 'storeRetried', 'storeDuplicates', 'storedReceived', 'storeDropped', 'replayed', 'replayReads',
];
const PEER_KINDS: readonly (keyof PeerCounters)[] = ['shared', 'dropped', 'heard', 'malformed', 'asked', 'unanswered'];

export function registerClusterMetrics(registry: Registry, node: { connection: ClusterConnection; links: NatsClusterLinks; peers: NatsPlatformPeers }): void {
  new Gauge({
    name: 'gatehouse_cluster_platform_total',
    help: 'The platform side between nodes: events shared with the others and heard from them, dropped (not shared: NATS had not '
      + 'confirmed 8 MiB of this node\'s publishes before them), malformed frames (dropped), '
      + 'requests asked of the others (downlink, sessions, disconnect) and answers that did not come in time',
    labelNames: ['kind'], registers: [registry],
    collect() {
      for (const kind of PEER_KINDS) this.set({ kind }, node.peers.counters[kind]);
    },
  });
  new Gauge({
    name: 'gatehouse_cluster_connected', help: 'Whether this node is connected to NATS (1) or cut off from the cluster (0)',
    registers: [registry], collect() { this.set(node.connection.state === 'connected' ? 1 : 0); },
  });
  new Gauge({
    name: 'gatehouse_cluster_messages_total',
    help: 'Messages of a gateway between this node and the others: forwarded, received, malformed (dropped), forward_failed (dropped), '
      + 'forward_dropped and shared_dropped (QoS 0, not sent: NATS had not confirmed 8 MiB of this node\'s publishes before them), '
      + 'retained_stored (retained messages written to the cluster\'s store), retained_too_large (over NATS max_payload: kept on this node only), '
      + 'retained_put_back (this node\'s retained messages written again to the cluster\'s store after it lost them: NATS back without its store), '
      + 'shared_sent / shared_received (messages for a shared group\'s member on another node: picked there at a QoS 1/2 '
      + 'message\'s store, or a QoS 0 one sent there), shared_repicked (sent again: that node died '
      + 'before its member completed them, or had no member left), shared_undeliverable (no member left, dropped), shared_untracked '
      + '(QoS 1/2 messages past the bound kept for redelivery), '
      + 'stored (QoS 1/2 messages written to the cluster\'s stream), store_refused (refused by it: over NATS max_payload or a stream error, '
      + 'answered 0x97), store_retried (publishes to it tried again), store_duplicates (stores it answered as duplicates of an earlier store under the same message id: a retry whose first try landed, or an inbound QoS 2 resend whose first store a dead node made), stored_received (its messages handed to this node\'s subscribers), '
      + 'store_dropped (gaps this node could not read back: removed by the stream\'s limits), replayed (stored messages read back '
      + 'for persistent sessions resumed here from another node), replay_reads (the stream reads those replays made: one serves every '
      + 'replay that reaches the same message meanwhile)',
    labelNames: ['gateway_id', 'kind'], registers: [registry],
    collect() {
      this.reset();
      for (const [gatewayId, counters] of node.links.counters()) {
        for (const kind of KINDS) this.set({ gateway_id: gatewayId, kind: kind.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`) }, counters[kind]);
      }
    },
  });
}
