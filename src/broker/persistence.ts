/**
 * Durable engine state: retained messages and persistent sessions (subscriptions, queued and
 * in-flight QoS 1/2 messages, inbound QoS 2 ids). The engine records changes in a journal; the
 * journal is written as one batch per event-loop turn, before that turn's socket writes leave, so
 * an acknowledgement (PUBACK/PUBREC) never goes out for a message that is not yet stored.
 */
import type { ForwardedProperties, QoS } from '../mqtt/codec.ts';

export interface StoredMessage {
  topic: string;
  payload: Buffer;
  qos: QoS;
  retain: boolean;
  properties: ForwardedProperties | undefined;
  expiresAt: number;
  senderId: string;
}

export interface StoredSubscription {
  raw: string;
  qos: QoS;
  noLocal: boolean;
  retainAsPublished: boolean;
  retainHandling: number;
  subscriptionId: number | undefined;
}

/** The stored fields of a subscription (one row per filter); the engine's own object carries more. */
export function storedSubscription(s: StoredSubscription): StoredSubscription {
  return { raw: s.raw, qos: s.qos, noLocal: s.noLocal, retainAsPublished: s.retainAsPublished, retainHandling: s.retainHandling, subscriptionId: s.subscriptionId };
}

export interface StoredSession {
  clientId: string;
  /** Who may resume it (`AuthResult.owner`); absent for sessions without one. */
  owner?: string;
  expiryInterval: number;
  /** Epoch ms the last connection closed; null while connected. */
  disconnectedAt: number | null;
  /** Filled by `load()`; written one row each through `PersistenceBatch.subscriptions`, never as a whole. */
  subscriptions: StoredSubscription[];
  incomingQos2: number[];
  /**
   * On a cluster node: the cluster stream's sequence this session's state holds every stored message up to, when it is
   * not the gateway's `streamPosition` (the session was replaying the stream, or waits to: `Broker.restore`).
   */
  streamFloor?: number;
}

export interface StoredOutbound {
  clientId: string;
  /** Order within the session. */
  seq: number;
  message: StoredMessage;
  qos: QoS;
  retain: boolean;
  subIds: number[] | undefined;
  /** 0 while queued. */
  packetId: number;
  state: 'publish' | 'pubrel';
}

export interface PersistenceBatch {
  /** topic → message, or null to delete. */
  retained: Map<string, StoredMessage | null>;
  /** clientId → session to upsert (null: deleted, as in `sessionsEnded`). */
  sessions: Map<string, StoredSession | null>;
  /** `${clientId}\0${seq}` → message to upsert, or null to delete. */
  outbound: Map<string, StoredOutbound | null>;
  /**
   * clientId → raw filter → subscription to upsert, or null to delete. One row per filter: a SUBSCRIBE
   * writes what it changed, not the session's thousand other filters. Nested rather than one key of
   * both: a filter may be 64 KiB long, and a joined key is a new string copied and hashed whole on every
   * change (a flood of 4 KB filters spent a sixth of the event loop's time there); the filter's own
   * string has its hash already (the session looked it up).
   */
  subscriptions: Map<string, Map<string, StoredSubscription | null>>;
  /**
   * Sessions ended in this batch, applied before everything else: a client that cleans its session and
   * starts a new one within one turn gets the new session's rows only, none of the old one's.
   */
  sessionsEnded: Set<string>;
  /**
   * On a cluster node: the last message of the cluster's stream the engine was handed by the live feed, whose
   * deliveries are all in this batch or before it (undefined: unchanged). A node restarted as itself replays the
   * stream after it for the sessions of its file (`Broker.restore`), so what was stored while it was down reaches them.
   */
  streamPosition: number | undefined;
}

/** A retained message as `load()` returns it: the payload may be left out when `readRetainedPayload` can read it. */
export interface StoredRetained {
  topic: string;
  qos: QoS;
  properties: ForwardedProperties | undefined;
  expiresAt: number;
  senderId: string;
  /** Bytes of the payload, given or not. */
  payloadBytes: number;
  payload?: Buffer;
}

export interface PersistedState {
  retained: StoredRetained[];
  sessions: StoredSession[];
  outbound: StoredOutbound[];
  /** The last `PersistenceBatch.streamPosition` written (undefined: none, or a store that keeps none). */
  streamPosition?: number;
}

/** Where an engine keeps its durable state (one per gateway). */
export interface BrokerPersistence {
  load(): Promise<PersistedState>;
  /**
   * Applies a batch atomically: written on return, or when the promise settles (the engine then holds
   * the output that depends on it until then).
   */
  write(batch: PersistenceBatch): void | Promise<unknown>;
  /**
   * The written payload of a topic's retained message. A store that has it loads retained messages
   * without payloads, and the engine keeps only a bounded cache of them in memory.
   */
  readRetainedPayload?(topic: string): Buffer | undefined;
}

export function emptyBatch(): PersistenceBatch {
  return { retained: new Map(), sessions: new Map(), outbound: new Map(), subscriptions: new Map(), sessionsEnded: new Set(), streamPosition: undefined };
}

/** Nothing to write but, maybe, a stream position (which rides with the next batch that has rows: see `Journal.streamPosition`). */
export function isBatchEmpty(b: PersistenceBatch): boolean {
  return b.retained.size === 0 && b.sessions.size === 0 && b.outbound.size === 0 && b.subscriptions.size === 0 && b.sessionsEnded.size === 0;
}
