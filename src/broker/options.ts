import type { AdmissionLimits } from './admission.ts';

/** Limits and behaviour of one broker engine. Every field has a default in `DEFAULT_BROKER_OPTIONS`. */
export interface BrokerOptions extends AdmissionLimits {
  /** A socket whose CONNECT has not arrived this long after the TCP accept (TLS handshake included) is closed. */
  connectTimeoutMs: number;
  /** Largest keep alive (seconds) a client may use; 0 = no limit. A v5 client that asks for more
   * (or for 0) is told the server's value in CONNACK's Server Keep Alive [MQTT-3.2.2-21]. */
  maxKeepalive: number;
  /** Receive Maximum we advertise: unacknowledged inbound QoS 1/2 PUBLISHes a client may have open. */
  receiveMaximum: number;
  /** Cap on unacknowledged outbound QoS 1/2 messages per client (the client's own Receive Maximum may be lower). */
  maxInflight: number;
  /** Largest packet (bytes, whole packet) we accept; advertised as Maximum Packet Size in v5. */
  maxPacketSize: number;
  /** Messages kept per session while it is offline or its inflight window is full. */
  maxQueued: number;
  /** Bytes (payload + topic) of the messages queued per session; past it the queue overflows as by count. */
  maxQueuedBytes: number;
  /** What is dropped when a session's queue is full: the oldest queued message or the new one. */
  queueOverflow: 'drop-oldest' | 'drop-new';
  /** Topic aliases a v5 client may set towards us (Topic Alias Maximum in CONNACK). */
  topicAliasMaximum: number;
  /** Subscriptions one client may hold; more are refused in SUBACK (0x97 quota exceeded / 0x80). */
  maxSubscriptionsPerClient: number;
  /** Longest session expiry (seconds) we keep; a longer request is lowered and told in CONNACK. */
  maxSessionExpiry: number;
  /** Bytes buffered towards one socket before QoS 0 deliveries to it are dropped (slow consumer). */
  maxWriteBuffer: number;
  /** Highest QoS we support. */
  maximumQoS: 0 | 1 | 2;
  retainAvailable: boolean;
  /** Retained messages kept in all (new topics beyond this are refused with 0x97 / dropped). */
  maxRetained: number;
  /** Bytes (payload + topic) of all retained messages; a message that would pass it is refused (0x97). */
  maxRetainedBytes: number;
  /** Payload bytes of written retained messages kept in memory (least recently used beyond are read
   * back from the persistence when owed); applies only with a persistence that can read them. */
  retainedCacheBytes: number;
  /** Bytes (UTF-8) of a client identifier; longer ones are refused (0x85 / v3.1.1 2). */
  maxClientIdLength: number;
  /** Levels in a topic name or filter (EMQX's default); deeper ones are refused (0x90 / 0x8F). Kept
   * below the router trie's own limit, which throws. */
  maxTopicLevels: number;
  /** Bytes (UTF-8) in a topic name or filter; longer ones are refused (0x90 / 0x8F). */
  maxTopicLength: number;
  /** Connected clients at once; a CONNECT beyond it is refused before authentication (0x97 / v3.1.1 3). 0 = no limit. */
  maxConnections: number;
  /** Sessions one owner (`AuthResult.owner`, a gateway's device) may hold under distinct client ids; a CONNECT
   * that would open one more is refused (0x97 / v3.1.1 3). 0 = no limit. */
  maxSessionsPerOwner: number;
  /** PUBLISH packets per second one connection may send; past it its reads pause until it is back under
   * the rate (paced, never dropped, as EMQX's limiter). 0 = no limit. */
  messagesPerSecondPerClient: number;
  /** Bytes (whole PUBLISH packets) per second one connection may send; paced like the message rate. 0 = no limit. */
  bytesPerSecondPerClient: number;
  /** User properties in one packet (will properties included); a packet with more is refused before it
   * is decoded (v5 DISCONNECT / CONNACK 0x97). */
  maxUserProperties: number;
  /** Topic filters in one SUBSCRIBE or UNSUBSCRIBE; a packet with more is refused whole before it is
   * decoded (v5 DISCONNECT 0x97). Below it, filters past `maxSubscriptionsPerClient` get 0x97 each. */
  maxFiltersPerPacket: number;
  /** Bytes of durable state (payloads, topics, filters) recorded and not yet written by the store's writer
   * thread; past it every connection of the engine stops reading until half of it is written. 0 = no limit. */
  maxUncommittedBytes: number;
}

export const DEFAULT_BROKER_OPTIONS: Readonly<BrokerOptions> = Object.freeze({
  connectTimeoutMs: 10_000,
  handshakeTimeoutMs: 5_000,
  // The bare engine (development, conformance, benchmarks) has no per-address limits; gateways set them.
  maxConnectionsPerAddress: 0,
  connectionRatePerAddress: 0,
  maxKeepalive: 0,
  receiveMaximum: 1024,
  maxInflight: 1024,
  maxPacketSize: 1024 * 1024,
  maxQueued: 1000,
  maxQueuedBytes: 16 * 1024 * 1024,
  queueOverflow: 'drop-oldest',
  topicAliasMaximum: 64,
  maxSubscriptionsPerClient: 1000,
  maxSessionExpiry: 7 * 24 * 3600,
  maxWriteBuffer: 4 * 1024 * 1024,
  maximumQoS: 2,
  retainAvailable: true,
  maxRetained: 100_000,
  maxRetainedBytes: 128 * 1024 * 1024,
  retainedCacheBytes: 8 * 1024 * 1024,
  maxClientIdLength: 256,
  maxTopicLevels: 128,
  maxTopicLength: 4096,
  maxConnections: 0,
  maxSessionsPerOwner: 0,
  messagesPerSecondPerClient: 0,
  bytesPerSecondPerClient: 0,
  maxUserProperties: 128,
  maxFiltersPerPacket: 1000,
  maxUncommittedBytes: 16 * 1024 * 1024,
});

/** The limits `Broker.setLimits` changes on a running engine (a gateway's `limits`, edited live). */
export type LiveLimits = Pick<BrokerOptions,
  | 'maxConnections' | 'maxSessionsPerOwner' | 'messagesPerSecondPerClient' | 'bytesPerSecondPerClient'
  | 'maxSubscriptionsPerClient' | 'maxRetained' | 'maxPacketSize' | 'maxQueued' | 'maxSessionExpiry'
  | 'maxConnectionsPerAddress' | 'connectionRatePerAddress' | 'maxRetainedBytes' | 'maxQueuedBytes' | 'maxTopicLevels' | 'maxTopicLength'
  | 'maxClientIdLength' | 'maxUserProperties' | 'maxFiltersPerPacket'>;
