/**
 * Per-gateway limits (issues 12 and 13): how much one gateway, and one device on it, may take. Each is a
 * whole number or null (no limit). The defaults are what every gateway had before limits were settable,
 * so nothing changes for a fleet until its operator sets them. The data plane maps them onto the engine's
 * options (`gateway/limits.ts`).
 */
import { GatehouseError } from '../core/errors.ts';
import { TOPIC_LEVELS_CEILING } from '../mqtt/topics.ts';

export interface GatewayLimits {
  /** Devices connected at once; more are refused (v5 CONNACK 0x97, v3.1.1 3). */
  maxConnections: number | null;
  /** PUBLISH packets per second per connection; faster devices are paced (reads pause), never dropped. */
  messagesPerSecondPerDevice: number | null;
  /** Bytes (whole PUBLISH packets) per second per connection; paced likewise. */
  bytesPerSecondPerDevice: number | null;
  /** Subscriptions one session holds; more get 0x97 per filter (v3.1.1 0x80). */
  maxSubscriptionsPerDevice: number | null;
  /** Retained topics of the gateway; a new one beyond is not stored (v5 PUBACK 0x97). */
  maxRetainedMessages: number | null;
  /** Largest MQTT packet accepted, in bytes (v5 CONNACK Maximum Packet Size); larger ones end the connection (0x95). */
  maxPacketSize: number | null;
  /** QoS 1/2 messages queued for one session while it is offline or busy; the oldest is dropped beyond. */
  maxQueuedMessagesPerDevice: number | null;
  /** Longest session expiry granted, in seconds (v5 CONNACK carries the granted interval when it is lower). */
  maxSessionExpirySeconds: number | null;
  /** Sessions (distinct client ids) one device may hold; one more is refused (0x97 / v3.1.1 3). */
  maxSessionsPerDevice: number | null;
  /** Open sockets from one source address, before TLS; more are closed at once. */
  maxConnectionsPerAddress: number | null;
  /** New sockets per second from one source address (bursts of twice as many); more are closed at once. */
  connectionRatePerAddress: number | null;
  /** Bytes (payloads and topics) of all the gateway's retained messages; a message that would pass it is not stored (v5 PUBACK 0x97). */
  maxRetainedBytes: number | null;
  /** Bytes of QoS 1/2 messages queued for one session; the oldest are dropped beyond (a larger message alone: it is dropped). */
  maxQueuedBytesPerDevice: number | null;
  /** Levels in a topic name or filter; deeper ones are refused (v5 0x90 / 0x8F, v3.1.1 the connection closes). */
  maxTopicLevels: number | null;
  /** Bytes (UTF-8) of a topic name or filter; longer ones are refused like deeper ones. */
  maxTopicLength: number | null;
  /** Bytes (UTF-8) of a client identifier; longer ones are refused (v5 CONNACK 0x85, v3.1.1 2). */
  maxClientIdLength: number | null;
  /** User properties in one packet, a will's included; a packet with more ends the connection (v5 0x97). */
  maxUserPropertiesPerPacket: number | null;
  /** Topic filters in one SUBSCRIBE or UNSUBSCRIBE; a packet with more ends the connection (v5 0x97). */
  maxFiltersPerSubscribe: number | null;
}

export type GatewayLimitName = keyof GatewayLimits;

/** One limit's use on a running gateway: `current` against the limit now (null where a level means nothing, e.g. a rate), `hits` since the listener started. */
export interface LimitUse {
  current: number | null;
  hits: number;
}

export type GatewayLimitsUsage = Record<GatewayLimitName, LimitUse>;

/** What every gateway had before limits were settable (the engine's defaults and the per-address caps). */
export const DEFAULT_GATEWAY_LIMITS: Readonly<GatewayLimits> = Object.freeze({
  maxConnections: null,
  messagesPerSecondPerDevice: null,
  bytesPerSecondPerDevice: null,
  maxSubscriptionsPerDevice: 1000,
  maxRetainedMessages: 100_000,
  maxPacketSize: 1024 * 1024,
  maxQueuedMessagesPerDevice: 1000,
  maxSessionExpirySeconds: 7 * 24 * 3600,
  maxSessionsPerDevice: null,
  maxConnectionsPerAddress: 1000,
  connectionRatePerAddress: 200,
  maxRetainedBytes: 128 * 1024 * 1024,
  maxQueuedBytesPerDevice: 16 * 1024 * 1024,
  maxTopicLevels: 128,
  maxTopicLength: 4096,
  maxClientIdLength: 256,
  maxUserPropertiesPerPacket: 128,
  maxFiltersPerSubscribe: 1000,
});

/** The longest UTF-8 string of the protocol [MQTT-1.5.4]: a topic's or client id's "no limit". */
export const MQTT_MAX_STRING_BYTES = 65_535;

/** The largest MQTT packet: a 1-byte header, 4 bytes of Remaining Length, and 268 435 455 bytes [MQTT-2.2.3]. */
export const MQTT_MAX_PACKET_SIZE = 268_435_460;

/**
 * Allowed values of each limit (inclusive). The lower bounds keep a gateway usable (a packet limit below
 * a CONNECT's size would refuse every device); the upper bounds are the protocol's or the engine's own.
 */
export const GATEWAY_LIMIT_RANGES: Readonly<Record<GatewayLimitName, readonly [number, number]>> = Object.freeze({
  maxConnections: [1, 10_000_000],
  messagesPerSecondPerDevice: [1, 1_000_000],
  bytesPerSecondPerDevice: [1024, 1024 * 1024 * 1024],
  maxSubscriptionsPerDevice: [1, 100_000],
  maxRetainedMessages: [0, 10_000_000],
  maxPacketSize: [1024, MQTT_MAX_PACKET_SIZE],
  maxQueuedMessagesPerDevice: [0, 1_000_000],
  maxSessionExpirySeconds: [0, 0xfffffffe],
  maxSessionsPerDevice: [1, 100_000],
  maxConnectionsPerAddress: [1, 1_000_000],
  connectionRatePerAddress: [1, 1_000_000],
  maxRetainedBytes: [0, 64 * 1024 ** 3],
  maxQueuedBytesPerDevice: [0, 4 * 1024 ** 3],
  maxTopicLevels: [1, TOPIC_LEVELS_CEILING],
  maxTopicLength: [1, MQTT_MAX_STRING_BYTES],
  // A server must accept client ids of 1 to 23 bytes [MQTT-3.1.3-5].
  maxClientIdLength: [23, MQTT_MAX_STRING_BYTES],
  maxUserPropertiesPerPacket: [0, 100_000],
  maxFiltersPerSubscribe: [1, 100_000],
});

export const GATEWAY_LIMIT_NAMES = Object.keys(DEFAULT_GATEWAY_LIMITS) as GatewayLimitName[];

/**
 * Checks a whole limits object (defaults merged in already); returns a clean copy. Throws
 * GW_ERR_LIMIT_UNKNOWN, GW_ERR_LIMIT_NOT_INTEGER or GW_ERR_LIMIT_OUT_OF_RANGE naming `limits.<name>`.
 */
export function checkGatewayLimits(value: unknown, field = 'limits'): GatewayLimits {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new GatehouseError('GW_ERR_VALIDATION', `${field} must be an object`, field);
  const given = value as Record<string, unknown>;
  const unknown = Object.keys(given).find((k) => !(k in DEFAULT_GATEWAY_LIMITS));
  if (unknown !== undefined) {
    throw new GatehouseError('GW_ERR_LIMIT_UNKNOWN', `${field}.${unknown} is not a limit; the limits are ${GATEWAY_LIMIT_NAMES.join(', ')}`, `${field}.${unknown}`);
  }
  const out = { ...DEFAULT_GATEWAY_LIMITS };
  for (const name of GATEWAY_LIMIT_NAMES) {
    const v = given[name];
    if (v === undefined) continue;
    if (v === null) {
      out[name] = null;
      continue;
    }
    const [min, max] = GATEWAY_LIMIT_RANGES[name];
    if (typeof v !== 'number' || !Number.isInteger(v)) {
      throw new GatehouseError('GW_ERR_LIMIT_NOT_INTEGER', `${field}.${name} must be a whole number (${min}-${max}) or null for no limit`, `${field}.${name}`);
    }
    if (v < min || v > max) {
      throw new GatehouseError('GW_ERR_LIMIT_OUT_OF_RANGE', `${field}.${name} must be from ${min} to ${max}, or null for no limit (got ${v})`, `${field}.${name}`);
    }
    out[name] = v;
  }
  return out;
}
