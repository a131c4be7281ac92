/**
 * A gateway's `limits` on its engine: each maps onto an engine option (null = the engine's "no limit"),
 * set at start and live on every edit; and the use of each, read at scrape or API time.
 */
import type { Broker, LiveLimits } from '../broker/index.ts';
import { TOPIC_LEVELS_CEILING } from '../mqtt/topics.ts';
import { MQTT_MAX_PACKET_SIZE, MQTT_MAX_STRING_BYTES, type GatewayLimits, type GatewayLimitsUsage } from '../registry/gateway-limits.ts';

/** Session Expiry Interval that never expires [§3.1.2.11.2]: what "no limit" grants. */
const NEVER_EXPIRES = 0xffffffff;

/** The engine options a gateway's limits set. */
export function engineLimitsOf(limits: GatewayLimits): LiveLimits {
  const count = (v: number | null): number => v ?? Number.MAX_SAFE_INTEGER;
  const zeroIsNone = (v: number | null): number => v ?? 0;
  return {
    maxConnections: zeroIsNone(limits.maxConnections),
    messagesPerSecondPerClient: zeroIsNone(limits.messagesPerSecondPerDevice),
    bytesPerSecondPerClient: zeroIsNone(limits.bytesPerSecondPerDevice),
    maxSubscriptionsPerClient: count(limits.maxSubscriptionsPerDevice),
    maxRetained: count(limits.maxRetainedMessages),
    // Advertised in v5 CONNACK: "no limit" is the protocol's own largest packet.
    maxPacketSize: limits.maxPacketSize ?? MQTT_MAX_PACKET_SIZE,
    maxQueued: count(limits.maxQueuedMessagesPerDevice),
    maxSessionExpiry: limits.maxSessionExpirySeconds ?? NEVER_EXPIRES,
    maxSessionsPerOwner: zeroIsNone(limits.maxSessionsPerDevice),
    maxConnectionsPerAddress: zeroIsNone(limits.maxConnectionsPerAddress),
    connectionRatePerAddress: zeroIsNone(limits.connectionRatePerAddress),
    maxRetainedBytes: count(limits.maxRetainedBytes),
    maxQueuedBytes: count(limits.maxQueuedBytesPerDevice),
    // Where the engine needs a number, "no limit" is the most it supports: the router's depth, the protocol's string.
    maxTopicLevels: limits.maxTopicLevels ?? TOPIC_LEVELS_CEILING,
    maxTopicLength: limits.maxTopicLength ?? MQTT_MAX_STRING_BYTES,
    maxClientIdLength: limits.maxClientIdLength ?? MQTT_MAX_STRING_BYTES,
    maxUserProperties: count(limits.maxUserPropertiesPerPacket),
    maxFiltersPerPacket: count(limits.maxFiltersPerSubscribe),
  };
}

/**
 * Use of each limit. Per-device limits show the highest use of any one device (session, address),
 * which is what meets the limit first. O(sessions): read when scraped or asked, never per packet.
 */
export function limitsUsageOf(broker: Broker): GatewayLimitsUsage {
  let mostSubscriptions = 0;
  let mostQueued = 0;
  let mostQueuedBytes = 0;
  for (const session of broker.sessions()) {
    if (session.subscriptionCount > mostSubscriptions) mostSubscriptions = session.subscriptionCount;
    if (session.queuedCount > mostQueued) mostQueued = session.queuedCount;
    if (session.queuedBytes > mostQueuedBytes) mostQueuedBytes = session.queuedBytes;
  }
  const s = broker.stats;
  return {
    // The gateway's across the nodes of a cluster (the limit is), this engine's in a single process.
    maxConnections: broker.connectionLimitUsage(),
    messagesPerSecondPerDevice: { current: null, hits: s.publishesPaced },
    bytesPerSecondPerDevice: { current: null, hits: s.publishesPaced },
    maxSubscriptionsPerDevice: { current: mostSubscriptions, hits: s.subscriptionsOverLimit },
    maxRetainedMessages: { current: broker.retained.size, hits: s.droppedRetainedQuota - s.retainedOverBytes },
    maxPacketSize: { current: null, hits: s.packetsTooLarge },
    maxQueuedMessagesPerDevice: { current: mostQueued, hits: s.droppedQueueFull - s.queueDropsOverBytes },
    maxSessionExpirySeconds: { current: null, hits: s.sessionExpiryLowered },
    maxSessionsPerDevice: { current: broker.mostSessionsOfAnOwner, hits: s.connectsOverSessionLimit },
    maxConnectionsPerAddress: { current: broker.admission.mostOpenFromOneAddress, hits: s.socketsRefused },
    connectionRatePerAddress: { current: null, hits: s.socketsRefused },
    maxRetainedBytes: { current: broker.retained.bytes, hits: s.retainedOverBytes },
    maxQueuedBytesPerDevice: { current: mostQueuedBytes, hits: s.queueDropsOverBytes },
    maxTopicLevels: { current: null, hits: s.topicsOverLevels },
    maxTopicLength: { current: null, hits: s.topicsOverLength },
    maxClientIdLength: { current: null, hits: s.clientIdsTooLong },
    maxUserPropertiesPerPacket: { current: null, hits: s.packetsOverUserProperties },
    maxFiltersPerSubscribe: { current: null, hits: s.packetsOverFilters },
  };
}
