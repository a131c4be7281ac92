/**
 * A cluster node's parts (issue 16): the NATS connection, the node's lease, the registry's event bus
 * and the engines' links. `app.ts` starts them when GATEHOUSE_NATS_URL is set and hands the bus to the
 * registry and the links to the gateway runtime, which know only their ports.
 */
import type { Logger } from '../core/logger.ts';
import { ClusterConnection } from './connection.ts';
import { DEFAULT_MESSAGE_STREAM_LIMITS } from './message-stream.ts';
import { NatsClusterLinks } from './links.ts';
import { DEFAULT_LEASE_TIMINGS, NodeLeases, type LeaseTimings } from './node-leases.ts';
import { NatsRegistryBus } from './registry-bus.ts';
import { NatsPlatformPeers } from './platform-peers.ts';
import { SessionRecords } from './session-records.ts';
import { WillReaper } from './will-reaper.ts';
import { ClusterThrottles } from './attempt-throttles.ts';

export { ClusterConnection, type ClusterState } from './connection.ts';
export { NatsClusterLinks, type LinkCounters } from './links.ts';
export { DEFAULT_LEASE_TIMINGS, NodeLeases, type NodeLease, type DeadLease, type LeaseTimings } from './node-leases.ts';
export { WillReaper } from './will-reaper.ts';
export { ClusterThrottles, type AttemptGate, type AttemptTurn } from './attempt-throttles.ts';
export { NatsRegistryBus } from './registry-bus.ts';
export { NatsPlatformPeers, type PeerCounters } from './platform-peers.ts';
export { PresenceReaper } from './presence-reaper.ts';
export { registerClusterMetrics } from './metrics.ts';

export interface ClusterNode {
  readonly connection: ClusterConnection;
  readonly leases: NodeLeases;
  readonly bus: NatsRegistryBus;
  readonly links: NatsClusterLinks;
  /** Publishes the wills of dead nodes' clients (one survivor each). */
  readonly reaper: WillReaper;
  /** The platform's view of the other nodes: shared /stream events, downlinks, sessions (item 7). */
  readonly peers: NatsPlatformPeers;
  /** The gateways' CONNECT throttles across the nodes: each source address judged by one home node. */
  readonly throttles: ClusterThrottles;
  /** Gives the lease back and closes the connection (after the engines closed their links). */
  close(): Promise<void>;
}

export interface ClusterNodeOptions {
  servers: string;
  nodeId: string;
  installationId: string;
  apiUrl: string | null;
  logger: Logger;
  leaseTimings?: LeaseTimings;
  /** The QoS 1/2 message stream's size (DEFAULT_MESSAGE_STREAM_LIMITS when absent). */
  streamMaxBytes?: number;
}

export async function startClusterNode(options: ClusterNodeOptions): Promise<ClusterNode> {
  const logger = options.logger.child({ component: 'cluster', nodeId: options.nodeId });
  const connection = await ClusterConnection.open({ servers: options.servers, nodeId: options.nodeId, installationId: options.installationId, logger });
  const timings = options.leaseTimings ?? DEFAULT_LEASE_TIMINGS;
  let leases: NodeLeases;
  try {
    leases = await NodeLeases.join(connection, { apiUrl: options.apiUrl }, logger, timings);
  } catch (error) {
    await connection.close();
    throw error;
  }
  const me = { nodeId: options.nodeId, instance: leases.instance };
  const records = SessionRecords.opener(connection);
  // Cut off for as long as a lease lasts, the node is dead to the others: its engines end their connections.
  const links = new NatsClusterLinks(connection, logger, timings.leaseMs, me, records,
    options.streamMaxBytes === undefined ? DEFAULT_MESSAGE_STREAM_LIMITS : { ...DEFAULT_MESSAGE_STREAM_LIMITS, maxBytes: options.streamMaxBytes },
    timings.heartbeatMs, () => leases.liveInstances());
  const reaper = new WillReaper(connection, leases, records, me, (gatewayId) => links.ownership(gatewayId),
    (gatewayId, sinceMs, each) => links.storedIdsSince(gatewayId, sinceMs, each), logger, timings.heartbeatMs);
  const peers = new NatsPlatformPeers(connection, logger, timings.leaseMs, leases.instance,
    async () => (await leases.live()).filter((lease) => lease.nodeId !== options.nodeId).length);
  reaper.onDeaths = (instances) => {
    links.nodesDead(instances);
    peers.nodesDead(instances);
  };
  // Each renewal of the lease says what this node hands shared groups' members; the survivor reaping a dead node
  // picks again what of it nobody keeps (dead-node-shares.ts).
  leases.reportShares = () => links.sharesHeld();
  links.renewLease = () => leases.renew();
  links.leaseWrittenAt = (instance) => leases.writtenAt(instance);
  reaper.onReaped = (dead) => links.repickDeadShares(dead, timings.heartbeatMs);
  // The live nodes known from the start, so that every node homes an address alike from its first CONNECT.
  await leases.live().catch((err: unknown) => logger.warn({ err }, 'cluster_leases_unread'));
  const throttles = new ClusterThrottles(connection, leases.instance, () => leases.liveInstances(), logger);
  return {
    connection,
    leases,
    bus: new NatsRegistryBus(connection, logger, leases.instance, () => leases.liveHearingChanges(), () => leases.hearsChanges()),
    links,
    reaper,
    throttles,
    peers,
    async close() {
      reaper.close();
      peers.close();
      throttles.close();
      links.close();
      await leases.close();
      await connection.close();
    },
  };
}
