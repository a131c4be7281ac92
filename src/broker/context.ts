/** What packet handlers may use of the engine: a narrow view of `Broker`. */
import type { Logger } from '../core/logger.ts';
import type { BrokerOptions } from './options.ts';
import type { BrokerStats } from './stats.ts';
import type { BrokerHooks, ClientInfo } from './hooks.ts';
import type { Router } from './router.ts';
import type { RetainedStore } from './retained.ts';
import type { Message } from './message.ts';
import type { MovedSession, Qos2Intent } from './cluster-link.ts';
import type { Session, Subscription, SubscriptionOptions } from './session.ts';
import type { Connection, ConnectionState } from './connection.ts';
import type { Socket } from 'node:net';
import type { DecodeLimits, Packet } from '../mqtt/codec.ts';
import type { RecordedWill, SessionClaim } from './cluster-link.ts';
import type { CommitGate } from './commit-gate.ts';

export interface BrokerContext {
  readonly options: BrokerOptions;
  readonly stats: BrokerStats;
  readonly logger: Logger;
  readonly hooks: BrokerHooks;
  readonly router: Router;
  readonly retained: RetainedStore;
  /** Commits of this engine's durable state in flight: output that depends on them waits (`Connection.flush`). */
  readonly commits: CommitGate;
  /** A topic name or filter within `maxTopicLevels` and `maxTopicLength`; a refusal is counted by the limit it passed. */
  topicWithinLimits(topic: string): boolean;
  /** Element limits per packet for the generic decoder (user properties, topic filters). */
  readonly decodeLimits: DecodeLimits;
  /** Runs the handler of one decoded packet (a promise when it must wait for a hook). */
  dispatch(conn: Connection, packet: Packet): void | Promise<void>;
  /** Wall clock in ms (one seam for time). */
  now(): number;
  /** A fresh server-assigned client identifier [MQTT-3.1.3-6]. */
  assignClientId(): string;
  /**
   * Binds an authenticated connection to its session: takes over a connected one [MQTT-3.1.4-3],
   * discards it on Clean Start [MQTT-3.1.2-4] or resumes it [MQTT-3.1.2-5]. Returns Session Present.
   * A new session records `owner`.
   */
  openSession(conn: Connection, cleanStart: boolean, owner?: string, moved?: MovedSession): { session: Session; present: boolean };
  /** A cluster node's persistent session opened: the cluster's record follows it from now (no-op without a cluster). */
  clusterSessionOpened(session: Session): void;
  /**
   * A cluster node claims the session of `clientId` in the cluster's record (`conn`'s will recorded there);
   * undefined without a cluster.
   */
  claimSession(conn: Connection, clientId: string, owner: string | undefined, sessionExpiry: number, clean: boolean): Promise<SessionClaim | 'owned' | 'lost'> | undefined;
  /** Publishes, once, the will of a connection on another node that this node's claim ended. */
  publishDisplacedWill(conn: Connection, will: RecordedWill): void;
  /** `conn` closed while its claim of `clientId` was on its way: the record learns the end (no will; `sessionEnds`: expiry 0). */
  claimAbandoned(conn: Connection, clientId: string, claim: SessionClaim, sessionEnds: boolean): void;
  /** Clients past CONNACK right now (`maxConnections` in a single process). */
  readonly connectedCount: number;
  /** `maxConnections` in force: on a cluster node the gateway's connections on every node (issue 16). */
  readonly connectionsHeld: number;
  /** `connectionsHeld` read from the cluster's count now (a cluster node's view may lag). */
  connectionsHeldNow(): Promise<number>;
  /** A node of a cluster. */
  readonly clustered: boolean;
  /** A CONNECT refused for `maxConnections`: counted (and for the cluster's usage on a cluster node). */
  connectionLimitHit(): void;
  /** A cluster node's place for `conn` among the gateway's maxConnections (always true without a cluster). */
  takeConnectionPlace(conn: Connection, force: boolean): boolean | Promise<boolean>;
  /** Whether the session of `clientId` is connected on another node (false without a cluster). */
  connectedElsewhere(clientId: string): Promise<boolean> | false;
  /** Sessions created by `owner` that still exist (`maxSessionsPerOwner`): on a cluster node, on every live node. */
  sessionsOwnedBy(owner: string): number;
  /**
   * A cluster node's place for one more session of `owner` (the engine's own count without a cluster: true, judged by
   * `sessionsOwnedBy`); rejects when the cluster's count cannot be written.
   */
  takeSessionPlace(conn: Connection, owner: string): true | Promise<boolean>;
  /** Whether the cluster's record holds a session of `clientId` created by `owner` (false without a cluster). */
  sessionRecorded(clientId: string, owner: string): Promise<boolean> | false;
  /** The session kept under a client id, connected or not. */
  getSession(clientId: string): Session | undefined;
  /**
   * Routes an accepted message to subscribers and the retained store; on a cluster node, a promise resolved once
   * the cluster holds what it must (a QoS 1/2 message in its stream, a retained message in its store): true, or
   * false when the stream refused the message (delivered nowhere).
   */
  publish(message: Message, from: ClientInfo | null, storeId?: string): Promise<boolean> | undefined;
  subscribe(sub: Subscription): void;
  /** The session's non-shared `sub`, subscribed again: takes the new options in place [MQTT-3.8.4-3]. */
  resubscribe(sub: Subscription, options: SubscriptionOptions): void;
  unsubscribe(sub: Subscription): void;
  /** Resolves once other nodes' messages reach the subscriptions made so far; undefined when they already do (or no cluster). */
  clusterSettled(withRetained?: boolean): Promise<void> | undefined;
  /** Whether the other nodes of a cluster can be reached (always true without one): false refuses CONNECTs and QoS 1/2 PUBLISHes. */
  clusterReachable(): boolean;
  /** An inbound QoS 2 PUBLISH about to be handed on: on a cluster node its store id, in the session's record first. */
  qos2Receiving(session: Session, packetId: number): Qos2Intent | undefined;
  /** That message is in the cluster's stream. */
  qos2Received(session: Session, packetId: number): void;
  /** An inbound QoS 2 packet id released: what its PUBCOMP waits for (the record letting it go), if anything. */
  qos2Released(session: Session, packetId: number): Promise<boolean> | undefined;
  /** The connection finished CONNECT/CONNACK. */
  connectionReady(conn: Connection): void;
  /** `was`: the connection's state before it closed. */
  connectionClosed(conn: Connection, reason: string, was: ConnectionState): void;
  /** A socket we ended: destroyed if the peer has not finished closing it within the linger time. */
  lingerAfterEnd(socket: Socket): void;
}
