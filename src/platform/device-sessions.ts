/**
 * A device's MQTT sessions as its page shows them (issue 14, item 2): read from the engine of the gateway
 * that serves its product, at the time of asking. A device may hold several sessions (one per client id);
 * a session belongs to the device that created it (its owner), connected or kept for its expiry.
 */
import type { ClientInfo, PendingMessage } from '../broker/index.ts';
import type { GatewayInstance } from '../gateway/instance.ts';

/** Messages listed per session at most (the counts are whole). */
export const PENDING_LISTED = 50;

export interface DeviceSessionView {
  gatewayId: string;
  clientId: string;
  connected: boolean;
  /** Of the connection holding it now; null while the session waits offline. */
  address: string | null;
  protocolVersion: number | null;
  /** How long the session outlives its connection; 4294967295 = never expires. */
  expiryIntervalSeconds: number;
  /** When its last connection closed; null while connected. */
  disconnectedAt: string | null;
  subscriptions: { filter: string; qos: number; noLocal: boolean; retainAsPublished: boolean; retainHandling: number }[];
  inflight: number;
  queued: number;
  queuedBytes: number;
  /** In flight first, then queued, oldest first, at most PENDING_LISTED. */
  pending: PendingMessage[];
}

export function deviceSessions(instances: Iterable<GatewayInstance>, productKey: string, deviceName: string): DeviceSessionView[] {
  const views: DeviceSessionView[] = [];
  for (const instance of instances) {
    if (instance.config.productKey !== productKey) continue;
    const connections = new Map<string, ClientInfo>(instance.broker.clients().map((c) => [c.clientId, c]));
    for (const session of instance.broker.sessions()) {
      if (session.owner !== deviceName) continue;
      const connection = session.link === null ? undefined : connections.get(session.clientId);
      views.push({
        gatewayId: instance.config.id,
        clientId: session.clientId,
        connected: connection !== undefined,
        address: connection?.remoteAddress ?? null,
        protocolVersion: connection?.protocolVersion ?? null,
        expiryIntervalSeconds: session.expiryInterval,
        disconnectedAt: session.disconnectedAt === null ? null : new Date(session.disconnectedAt).toISOString(),
        subscriptions: [...session.subscriptions.values()].map((s) => ({
          filter: s.raw, qos: s.qos, noLocal: s.noLocal, retainAsPublished: s.retainAsPublished, retainHandling: s.retainHandling,
        })).sort((a, b) => (a.filter < b.filter ? -1 : a.filter > b.filter ? 1 : 0)),
        inflight: session.inflightCount,
        queued: session.queuedCount,
        queuedBytes: session.queuedBytes,
        pending: session.pendingMessages(PENDING_LISTED),
      });
    }
  }
  return sortViews(views);
}

/** Connected first, then by client id. */
function sortViews(views: DeviceSessionView[]): DeviceSessionView[] {
  return views.sort((a, b) => Number(b.connected) - Number(a.connected) || (a.clientId < b.clientId ? -1 : a.clientId > b.clientId ? 1 : 0));
}

/**
 * The sessions of a device across the nodes of a cluster (issue 16 item 7): each node lists those it holds.
 * A client id held by two nodes (kept offline on one, connected to the other since) is listed once, as the
 * node holding its connection sees it.
 */
export function mergeSessionViews(lists: readonly (readonly DeviceSessionView[])[]): DeviceSessionView[] {
  const byClient = new Map<string, DeviceSessionView>();
  for (const list of lists) {
    for (const view of list) {
      const key = `${view.gatewayId}\u0000${view.clientId}`;
      const seen = byClient.get(key);
      if (seen === undefined || (!seen.connected && view.connected)) byClient.set(key, view);
    }
  }
  return sortViews([...byClient.values()]);
}
