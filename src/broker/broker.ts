/**
 * The MQTT engine: sessions, routing, retained messages, wills and timers. It knows nothing about
 * gateways or products; those plug in through `BrokerHooks` and listen to `BrokerEvents`.
 */
import { EventEmitter } from 'node:events';
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import type { DecodeLimits, QoS } from '../mqtt/codec.ts';
import { RC } from '../mqtt/reason-codes.ts';
import { TOPIC_LEVELS_CEILING } from '../mqtt/topics.ts';
import { silentLogger, type Logger } from '../core/logger.ts';
import { logText } from '../core/log-text.ts';
import { DEFAULT_BROKER_OPTIONS, type BrokerOptions, type LiveLimits } from './options.ts';
import { createStats, type BrokerStats } from './stats.ts';
import type { BrokerEvents, BrokerHooks, ClientInfo } from './hooks.ts';
import { Router, type Delivery, type RemotePick } from './router.ts';
import { RetainedStore, type RetainedBodies } from './retained.ts';
import { createMessage, type Message } from './message.ts';
import { DROPPED, Session, type DeliveryEnd, type FlowHooks, type Subscription, type SubscriptionOptions } from './session.ts';
import { Connection, type ConnectionState } from './connection.ts';
import { LongTimer } from './long-timer.ts';
import { Admission, type SharedAdmission } from './admission.ts';
import { LingeringSockets } from './lingering-sockets.ts';
import { Journal } from './journal.ts';
import { CommitGate } from './commit-gate.ts';
import { storedSubscription, type BrokerPersistence, type StoredMessage, type StoredSubscription } from './persistence.ts';
import type { ClusterLink, LinkEndpoint, MovedFlow, MovedSession, Qos2Intent, RecordedWill, SessionClaim, SessionsHere, StoredDelivery } from './cluster-link.ts';
import { parseSharedFilter, topicMatches, topicOverLimit, topicWithinLimits } from '../mqtt/topics.ts';
import type { BrokerContext } from './context.ts';
import { dispatch } from './handlers/index.ts';

/** Session Expiry Interval meaning "never expires" [MQTT-3.1.2-?, §3.1.2.11.2]. */
const NEVER_EXPIRES = 0xffffffff;
const SWEEP_INTERVAL_MS = 250;
/** A retained or cluster-stored message's fixed part (record, key, frame header) in the commit gate's byte estimate. */
const RETAINED_HOLD_OVERHEAD = 64;
/** Other members a shared group's QoS 1 message is offered to after its first pick never got it (then dropped, counted). */
const MAX_SHARED_REPICKS = 16;
/** Retained topics looked at per sweep for expired messages: 4,000 a second, a few hundred microseconds each time. */
const RETAINED_SWEEP_BUDGET = 1_000;
/** What a QoS 2 flow restored at its PUBREL holds in place of its message (the client has it already). */
const RELEASED_PLACEHOLDER: Message = createMessage({
  topic: '', payload: Buffer.alloc(0), qos: 2, retain: false, properties: undefined, expiresAt: 0, senderId: '',
});
/** How long a socket we ended may wait for the peer to close it. */
const LINGER_MS = 2000;

/**
 * How a `deliverTo` ended: sent at QoS 0, acknowledged at QoS 1/2, refused by the client (its PUBACK or PUBREC
 * with a reason code ≥ 0x80, in `reasonCode`), or why not (dropped: online and subscribed, not sent).
 */
export type DirectOutcome = 'offline' | 'not_subscribed' | 'sent' | 'acked' | 'refused' | 'timeout' | 'dropped';
export interface DirectDelivery {
  outcome: DirectOutcome;
  /** The client's reason code when it answered (0 for success, and in MQTT 3.1.1); absent when it did not. */
  reasonCode?: number;
}

export interface BrokerInit {
  options?: Partial<BrokerOptions>;
  hooks?: BrokerHooks;
  logger?: Logger;
  /** Durable retained messages and persistent sessions; in memory only when absent. */
  persistence?: BrokerPersistence;
  /** The other nodes of a cluster (cluster-link.ts); a single process has none. */
  link?: ClusterLink;
  /** Under GATEHOUSE_WORKERS, the machine's per-address tables (the primary's); a single process counts alone. */
  sharedAdmission?: SharedAdmission;
}

export class Broker extends EventEmitter<BrokerEvents> implements BrokerContext {
  readonly options: BrokerOptions;
  readonly stats: BrokerStats = createStats();
  readonly logger: Logger;
  readonly hooks: BrokerHooks;
  readonly router: Router;
  /** Per-address limits and accept times of raw sockets, for listeners in front of this engine. */
  readonly admission: Admission;
  readonly retained: RetainedStore;
  readonly commits: CommitGate;
  readonly dispatch = dispatch;
  readonly #sessions = new Map<string, Session>();
  readonly #connections = new Set<Connection>();
  /** Persistent sessions whose filters changed in this turn, for the cluster's record (`#clusterSubscriptionsChanged`). */
  readonly #subscriptionsToTell = new Set<Session>();
  /** Connections past CONNACK (`maxConnections` counts these). */
  #connected = 0;
  /** Sessions per owner (`maxSessionsPerOwner`), kept as sessions are created, claimed and ended. */
  readonly #sessionsByOwner = new Map<string, number>();
  readonly #lingering = new LingeringSockets(LINGER_MS);
  #sweep: NodeJS.Timeout;
  #closed = false;
  readonly #persistence: BrokerPersistence | undefined;
  readonly #journal: Journal | null;
  readonly #link: ClusterLink | null;

  constructor(init: BrokerInit = {}) {
    super();
    this.options = { ...DEFAULT_BROKER_OPTIONS, ...init.options };
    checkTopicLevels(this.options.maxTopicLevels);
    this.hooks = init.hooks ?? {};
    this.logger = init.logger ?? silentLogger;
    // A persistence that reads payloads back lets the retained store keep only a cache of them in memory.
    const p = init.persistence;
    const bodies = p?.readRetainedPayload === undefined ? undefined : p as RetainedBodies;
    this.retained = new RetainedStore(this.options.maxRetained, this.options.maxRetainedBytes, bodies, this.options.retainedCacheBytes);
    // Built for the deepest topic any limit can allow: `maxTopicLevels` may be raised live (setLimits).
    this.router = new Router(TOPIC_LEVELS_CEILING);
    this.admission = new Admission(this.options, this.stats, (address, limit) => {
      if (this.listenerCount('socket_refused') > 0) this.emit('socket_refused', address, limit);
    }, init.sharedAdmission ?? null);
    this.commits = new CommitGate(this.options.maxUncommittedBytes);
    this.commits.onPressure = (overloaded, bytes) => {
      // Once per episode, not per paused read: the disk (or the writer's thread) is behind this gateway's input.
      if (overloaded) this.logger.warn({ uncommittedBytes: bytes, limit: this.options.maxUncommittedBytes }, 'writes_behind_reads_paused');
      else this.logger.info({ uncommittedBytes: bytes }, 'writes_caught_up_reads_resumed');
    };
    this.#persistence = init.persistence;
    this.#journal = init.persistence === undefined ? null : new Journal(init.persistence, this.logger, this.commits, (m) => this.retained.written(m));
    this.#link = init.link ?? null;
    const link = this.#link;
    link?.connections.limit(this.options.maxConnections);
    link?.sessionCounts.limit(this.options.maxSessionsPerOwner, this.#sessionsHere);
    if (link !== null) this.router.onLocalGroup = (group, filter, present) => link.sharedInterest(group, filter, present);
    this.retained.onExpired = (topic) => this.#journal?.retained(topic, null);
    this.#sweep = setInterval(() => {
      this.#sweepConnections();
      // Expired retained messages leave the index (and the disk) even if no subscriber asks for them.
      this.contain(() => this.retained.sweepExpired(this.now(), RETAINED_SWEEP_BUDGET), 'retained_sweep_failed');
    }, SWEEP_INTERVAL_MS);
    this.#sweep.unref();
  }

  now(): number {
    return Date.now();
  }

  get connectionCount(): number {
    return this.#connections.size;
  }

  /** Clients past CONNACK right now. */
  get connectedCount(): number {
    return this.#connected;
  }

  /**
   * `maxConnections` in force: the connections of the gateway on every node of a cluster (this node's places, granted
   * CONNECTs on their way included, and the other live nodes' as last seen), this engine's connections otherwise.
   */
  get connectionsHeld(): number {
    return this.#link === null ? this.#connected : this.#link.connections.usage().current;
  }

  /** `connectionsHeld` from the cluster's count as it is now (read; the engine's own count without a cluster). */
  async connectionsHeldNow(): Promise<number> {
    if (this.#link === null) return this.#connected;
    await this.#link.connections.refresh();
    return this.#link.connections.usage().current;
  }

  /** Use against `maxConnections` and its refusals: the whole cluster's on a cluster node (limitsUsage). */
  connectionLimitUsage(): { current: number; hits: number } {
    return this.#link === null ? { current: this.#connected, hits: this.stats.connectsOverConnectionLimit } : this.#link.connections.usage();
  }

  /** A CONNECT refused for `maxConnections` (counted here, and for the cluster's usage on a cluster node). */
  connectionLimitHit(): void {
    this.stats.connectsOverConnectionLimit++;
    this.#link?.connections.refused();
  }

  /** A node of a cluster (the engine has a link to the other nodes). */
  get clustered(): boolean {
    return this.#link !== null;
  }

  /**
   * A cluster node's place for `conn` among the gateway's maxConnections (true: taken; false: the cluster is full;
   * always true without a cluster, where the engine's own count is the limit's). A place granted to a connection that
   * closed meanwhile is given back at once.
   */
  takeConnectionPlace(conn: Connection, force: boolean): boolean | Promise<boolean> {
    const link = this.#link;
    if (link === null) return true;
    const hold = (granted: boolean): boolean => {
      if (!granted) return false;
      if (conn.state === 'closed') link.connections.give();
      else conn.holdsPlace = true;
      return true;
    };
    const taking = link.connections.take(force);
    return typeof taking === 'boolean' ? hold(taking) : taking.then(hold);
  }

  /** Whether the session of `clientId` is connected on another node of the cluster (false without one). */
  connectedElsewhere(clientId: string): Promise<boolean> | false {
    return this.#link === null ? false : this.#link.connectedElsewhere(clientId);
  }

  /** Sessions (connected or kept) created by `owner`: on a cluster node with the limit set, on every live node. */
  sessionsOwnedBy(owner: string): number {
    if (this.#link !== null && this.options.maxSessionsPerOwner > 0) return this.#link.sessionCounts.count(owner);
    return this.#sessionsByOwner.get(owner) ?? 0;
  }

  /** This engine's sessions per owner: its part of a cluster's count. */
  readonly #sessionsHere: SessionsHere = {
    of: (owner) => this.#sessionsByOwner.get(owner) ?? 0,
    all: () => this.#sessionsByOwner.entries(),
  };

  takeSessionPlace(conn: Connection, owner: string): true | Promise<boolean> {
    const link = this.#link;
    if (link === null) return true;
    return link.sessionCounts.take(owner).then((granted) => {
      if (!granted) return false;
      // Held until the session opens (openSession) or the CONNECT ends without it (connectionClosed).
      if (conn.state === 'closed') link.sessionCounts.settle(owner);
      else conn.sessionPlaceOf = owner;
      return true;
    });
  }

  sessionRecorded(clientId: string, owner: string): Promise<boolean> | false {
    return this.#link === null ? false : this.#link.sessionRecorded(clientId, owner);
  }

  #settleSessionPlace(conn: Connection): void {
    const owner = conn.sessionPlaceOf;
    if (owner === undefined) return;
    conn.sessionPlaceOf = undefined;
    this.#link?.sessionCounts.settle(owner);
  }

  /** The most sessions any one owner holds (metrics: use against `maxSessionsPerOwner`; a cluster node's: on every node). */
  get mostSessionsOfAnOwner(): number {
    if (this.#link !== null && this.options.maxSessionsPerOwner > 0) return this.#link.sessionCounts.most();
    let most = 0;
    for (const n of this.#sessionsByOwner.values()) if (n > most) most = n;
    return most;
  }

  /**
   * Changes limits of the running engine (a gateway edited live). Counts and rates apply to the next
   * packet or CONNECT; a lowered cap never ends what is already there (a connected client, a kept
   * retained message, a subscription) but refuses more. `maxPacketSize` applies to connections whose CONNACK
   * follows: the ones connected were told the old value in theirs.
   */
  setLimits(limits: Partial<LiveLimits>): void {
    if (limits.maxTopicLevels !== undefined) checkTopicLevels(limits.maxTopicLevels);
    Object.assign(this.options, limits);
    this.retained.setLimits(this.options.maxRetained, this.options.maxRetainedBytes);
    this.#link?.connections.limit(this.options.maxConnections);
    this.#link?.sessionCounts.limit(this.options.maxSessionsPerOwner, this.#sessionsHere);
  }

  /** A topic name or filter within `maxTopicLevels` and `maxTopicLength`; a refusal is counted by the limit it passed. */
  topicWithinLimits(topic: string): boolean {
    const over = topicOverLimit(topic, this.options.maxTopicLevels, this.options.maxTopicLength);
    if (over === null) return true;
    if (over === 'levels') this.stats.topicsOverLevels++;
    else this.stats.topicsOverLength++;
    return false;
  }

  #decodeLimits: DecodeLimits = { maxUserProperties: 0, maxTopicFilters: 0 };
  /** Element limits per packet for the decoder, from the options (read again if they change). */
  get decodeLimits(): DecodeLimits {
    const { maxUserProperties, maxFiltersPerPacket } = this.options;
    const current = this.#decodeLimits;
    if (current.maxUserProperties !== maxUserProperties || current.maxTopicFilters !== maxFiltersPerPacket) {
      this.#decodeLimits = { maxUserProperties, maxTopicFilters: maxFiltersPerPacket };
    }
    return this.#decodeLimits;
  }

  get sessionCount(): number {
    return this.#sessions.size;
  }

  /** Connected clients (read-only views). */
  clients(): ClientInfo[] {
    return [...this.#connections].filter((c) => c.state === 'connected');
  }

  /** Disconnects connected clients matching a predicate (v5: with the reason code). Returns how many. */
  disconnectWhere(predicate: (client: ClientInfo) => boolean, reasonCode: number, reason = 'disconnected_by_server'): number {
    let n = 0;
    for (const conn of [...this.#connections]) {
      if (conn.state === 'connected' && predicate(conn)) {
        conn.disconnect(reasonCode, reason);
        n++;
      }
    }
    return n;
  }

  /** Every session, connected or kept (metrics read their sizes at scrape time). */
  sessions(): IterableIterator<Session> {
    return this.#sessions.values();
  }

  getSession(clientId: string): Session | undefined {
    return this.#sessions.get(clientId);
  }

  /** Takes ownership of an accepted socket (plain or TLS). */
  handle(socket: Socket): void {
    if (this.#closed) {
      socket.destroy();
      return;
    }
    socket.setNoDelay(true);
    this.stats.connectionsAccepted++;
    this.#connections.add(new Connection(socket, this));
  }

  assignClientId(): string {
    return `gh-${randomBytes(9).toString('base64url')}`;
  }

  /** `owner` was checked by the CONNECT (a session of another owner is never opened here); a new session records it. */
  openSession(conn: Connection, cleanStart: boolean, owner?: string, moved?: MovedSession): { session: Session; present: boolean } {
    const clientId = conn.clientId;
    let session = this.#sessions.get(clientId);
    if (session?.link instanceof Connection && session.link !== conn) this.#takeOver(session.link, session);
    if (session !== undefined) {
      session.expiryTimer?.cancel();
      // A will delayed for this session is not sent once the session resumes [MQTT-3.1.3-9].
      session.willTimer?.cancel();
      session.willTimer = undefined;
    }
    let present = false;
    if (session !== undefined && cleanStart) {
      this.#destroySession(session); // [MQTT-3.1.2-4] Clean Start discards the old session
      session = undefined;
    }
    if (session === undefined) {
      session = this.#newSession(clientId);
      this.#own(session, owner);
      // Its state moved here from another node's record (issue 16 item 2): resumed [MQTT-3.2.2-3].
      if (moved !== undefined) {
        this.#resumeMoved(session, moved);
        present = true;
      }
    } else {
      if (session.owner === undefined) this.#own(session, owner); // a session stored before owners were recorded is claimed by its first owner
      present = true; // [MQTT-3.2.2-3]
      if (session.replaying && session.restoredFromStore && this.#link !== null) this.#replayRestored(this.#link, session);
    }
    conn.session = session;
    this.#settleSessionPlace(conn);
    return { session, present };
  }

  /** [MQTT-3.1.4-3] the existing connection is closed; v5 clients hear 0x8E. */
  #takeOver(old: Connection, session: Session): void {
    session.link = null;
    old.session = null;
    old.farewell = { sent: old.isV5 ? RC.SESSION_TAKEN_OVER : null, reasonCode: RC.SESSION_TAKEN_OVER };
    this.#handleLostConnection(old, session, 'session_taken_over');
    old.disconnect(RC.SESSION_TAKEN_OVER, 'session_taken_over');
  }

  /**
   * A CONNECT on a cluster node claims the session in the cluster's record before it opens it here (undefined
   * without a cluster: nothing to wait for). The will goes into the record only if the client may publish it.
   */
  claimSession(conn: Connection, clientId: string, owner: string | undefined, sessionExpiry: number, clean: boolean): Promise<SessionClaim | 'owned' | 'lost'> | undefined {
    const link = this.#link;
    if (link === null) return undefined;
    const will = conn.will;
    const claim = (recorded: RecordedWill | null): Promise<SessionClaim | 'owned' | 'lost'> =>
      link.claimSession(clientId, owner, recorded, clean).then((c) => this.#movedFlows(link, clientId, c));
    if (will === null) return claim(null);
    const recorded = (verdict: number): RecordedWill | null =>
      (verdict === RC.SUCCESS ? { message: will, delay: Math.min(conn.willDelay, sessionExpiry), expiry: conn.willExpiry } : null);
    const authorize = this.hooks.authorizePublish;
    const verdict = authorize === undefined ? RC.SUCCESS : authorize(conn, will.topic, will);
    if (typeof verdict === 'number') return claim(recorded(verdict));
    return verdict.then((rc) => claim(recorded(rc)));
  }

  /**
   * A claim with the session's state from the cluster's record (issue 16 item 2): this engine resumes from it unless it
   * holds the session itself (claimed here last and still in memory), and then first reads back the messages its flows
   * in flight resend.
   */
  #movedFlows(link: ClusterLink, clientId: string, claim: SessionClaim | 'owned' | 'lost'): SessionClaim | 'owned' | 'lost' | Promise<SessionClaim> {
    if (typeof claim !== 'object' || claim.moved === undefined) return claim;
    const moved = claim.moved;
    const held = this.#sessions.get(clientId);
    if (claim.local && held !== undefined && !held.restoredFromStore) return { local: true, displacedWill: claim.displacedWill };
    // A session this engine only restored from its file is older than the record's state: the stream went on while the
    // node was away, and the record's floor says what the session still needs from it. The claim may say local all the
    // same (this process adopted the record to publish its predecessor's will): the file's session goes, the record's
    // resumes (not local: a Clean Start of the engine's copy, then the moved state).
    return link.readFlows(moved.inflight).then((inflight) => ({ ...claim, local: false, moved: { ...moved, inflight } }));
  }

  /**
   * A connection that closed while its session was being claimed (before CONNACK): the record the claim wrote learns
   * the end, with no will (a connection never accepted has none); the will of a connection the claim displaced on
   * another node is still this node's to publish, once.
   */
  claimAbandoned(conn: Connection, clientId: string, claim: SessionClaim, sessionEnds: boolean): void {
    const link = this.#link;
    if (link === null) return;
    conn.clientId = clientId; // the will's sender, and what the logs name
    if (claim.displacedWill != null) this.contain(() => this.publishDisplacedWill(conn, claim.displacedWill!), 'will_failed', clientId);
    link.connectionEnded(clientId, { will: null, sessionEnds })
      .catch((err: unknown) => this.logger.error({ err, clientId: logText(clientId) }, 'cluster_connection_end_failed'));
  }

  /** The will of a connection on another node that a claim here ended (its Will Delay was 0): published once, here. */
  publishDisplacedWill(conn: Connection, will: RecordedWill): void {
    this.#publishWill(conn, will.message, will.expiry);
  }

  /**
   * Another node claimed the session: the connection here goes (0x8E), without its will (the claiming node
   * handles it), and the session's state here with it (it is not this node's any more).
   */
  #sessionMoved(clientId: string): void {
    const session = this.#sessions.get(clientId);
    if (session === undefined) return;
    this.stats.sessionsMovedAway++;
    session.willTimer?.cancel();
    session.willTimer = undefined;
    if (session.link instanceof Connection) {
      session.link.will = null;
      this.#takeOver(session.link, session);
    }
    this.#destroySession(session);
  }

  /**
   * A persistent session taken over from another node's record: its subscriptions, the flows it had in flight there
   * (resent at CONNACK under their packet ids, with DUP, or their PUBREL [MQTT-4.4.0-1]), and the stored messages
   * after its floor, replayed from the cluster's stream for it alone before it joins the live feed.
   */
  #resumeMoved(session: Session, moved: MovedSession): void {
    const link = this.#link!;
    session.replaying = true;
    for (const sub of moved.subscriptions) {
      const shared = parseSharedFilter(sub.raw);
      if (shared === 'invalid' || !topicWithinLimits(sub.raw, this.options.maxTopicLevels, this.options.maxTopicLength)) continue;
      const attached: Subscription = {
        session, raw: sub.raw, filter: shared === null ? sub.raw : shared.filter, group: shared?.group,
        qos: sub.qos, noLocal: sub.noLocal, retainAsPublished: sub.retainAsPublished,
        retainHandling: sub.retainHandling, subscriptionId: sub.subscriptionId,
      };
      this.#attach(attached);
      session.subscriptionChanged(attached.raw, attached);
    }
    this.stats.clusterSessionsResumed++;
    // QoS 2 messages the stream holds from the client, their PUBREL still to come: a resend is acknowledged, not stored again.
    for (const packetId of moved.received) session.takeQos2(packetId);
    // Those whose store the node that held the session was making: a resend is stored again under the same stream message id.
    for (const r of moved.receiving) if (!session.incomingQos2.has(r.packetId)) session.takeQos2Unconfirmed(r.packetId);
    // First: the replay's record of the session must exist before its flows are told to it (same turn, no reads yet).
    this.#replay(link, session, moved);
    for (const flow of moved.inflight) {
      if (flow.packetId !== 0) this.#restoreFlow(session, flow); // id 0: a QoS 2 delivery completed there, only skipped
    }
  }

  /**
   * A cluster node restarted as itself: a session of its file has every stored message up to `floor` (the feed's
   * position its last batch wrote, or its own while it was replaying). What the stream stored after it — while this
   * node was down, and from now until the client is back — reaches it by a replay from there when the client resumes
   * it here (`openSession`), not by the live feed, which starts at the stream's end: before, a session whose record
   * held no state (too large to keep, or none written) never got what was stored while its node was down. A record
   * with the session's state resumes from that instead (`#movedFlows`). A floor taken from the gateway's position is
   * written into the session's row, since that position moves on for the other sessions meanwhile.
   */
  #awaitReplay(session: Session, own: number | undefined, position: number | undefined): void {
    const floor = own ?? position;
    if (this.#link === null || floor === undefined || session.subscriptions.size === 0) return;
    session.replaying = true;
    session.streamFloor = floor;
    if (own === undefined) this.#journal?.session(session);
  }

  /**
   * Replays the cluster's stream after `moved.floor` for `session` alone, until it reaches the live feed. Where it
   * stands is the session's `streamFloor`, written with its row: should this node die meanwhile and come back as itself
   * with a record that holds no state, the session replays from there (`restore`). Not exact for a session resumed
   * with flows in flight above its floor (the replay skips them, the file holds them): such a restart would send
   * those again as new deliveries.
   */
  #replay(link: ClusterLink, session: Session, moved: MovedSession): void {
    const queued = new Map(moved.queued.map((q) => [q.seq, q.qos]));
    // The subscriptions the replayed messages were stored under, whatever becomes of the session's own meanwhile.
    const recorded = moved.subscriptions.filter((sub) => parseSharedFilter(sub.raw) === null);
    session.replaying = true;
    this.#streamFloor(session, moved.floor);
    link.replay(session.clientId, moved,
      (message, seq) => this.contain(() => {
        // Moved past a message it got: its row says so (with the message's own). One it does not get stays below the
        // floor, so a fleet replaying a backlog writes a row per message it receives, not per message read; a restart
        // reads the others again, and they still reach nothing.
        if (this.#replayOne(session, message, seq, queued.get(seq) ?? recordedQos(recorded, message, session.clientId))) this.#streamFloor(session, seq);
      }, 'cluster_replay_failed', message.senderId),
      () => {
        session.replaying = false;
        // From here the live feed's position holds for it (this turn's batch carries it).
        this.#streamFloor(session, undefined);
      },
      () => (this.#sessions.get(session.clientId) === session ? session.queueHalfFull : null));
  }

  #streamFloor(session: Session, floor: number | undefined): void {
    if (session.streamFloor === floor || this.#sessions.get(session.clientId) !== session) return;
    session.streamFloor = floor;
    this.#journal?.session(session);
  }

  /**
   * A session this node restored from its file, waiting since (`restore`), whose client is back with a record that
   * held no state for it (too large to keep, or none written): it gets what the stream stored for it after its floor,
   * what was stored while this node was down included, as a session resumed from a record does. Its file's queue and
   * flows are its own (not the record's): they go first.
   */
  #replayRestored(link: ClusterLink, session: Session): void {
    this.#replay(link, session, {
      subscriptions: [...session.subscriptions.values()].map(storedSubscription), floor: session.streamFloor!, inflight: [], queued: [],
      received: [...session.incomingQos2], receiving: [], qos2Epoch: undefined, qos2Uses: [],
    });
  }

  /** One flow another node had in flight, put back in the session to be resent at its CONNACK [MQTT-4.4.0-1]. */
  #restoreFlow(session: Session, flow: MovedFlow): void {
    const tracked = this.#link!.delivered(session.clientId, flow.seq, flow.qos);
    const hooks: FlowHooks | undefined = tracked === undefined ? undefined : { received: this.#pubrelRecorded(session, tracked) };
    if (flow.released) {
      // Its PUBREC came: the client has the message, only the PUBREL is owed [MQTT-4.3.3].
      if (!session.restoreFlow({
        packetId: flow.packetId, message: RELEASED_PLACEHOLDER, qos: 2, retain: false, subIds: undefined, state: 'pubrel',
        onComplete: tracked?.onComplete, hooks,
      })) tracked?.onComplete(DROPPED);
      return;
    }
    const message = flow.message!;
    // Its subscription as it is now gives RETAIN and the identifiers; the QoS is the one it was sent at.
    const d = this.router.match(message.topic, message.senderId, null).find((m) => m.session === session);
    if (!session.restoreFlow({
      packetId: flow.packetId, message, qos: flow.qos, retain: d !== undefined && d.retainAsPublished && message.retain,
      subIds: d?.subIds, state: 'publish', onComplete: tracked?.onComplete, hooks,
    })) tracked?.onComplete(DROPPED);
  }

  /**
   * One replayed stored message, for the resumed session only (shared groups were picked when it was stored).
   * `owed`: the QoS the session owed it at as it moved: queued for it on the node it moved from, or matched by a
   * subscription of the session's record (stored while the session was held there, or while no node held it);
   * delivered at it even when no subscription matches it now — one removed meanwhile, by the client, or by the access
   * rules as the session resumed here before the replay reached it — as a node holding it in its queue would have
   * [MQTT-4.1.0-1]. The rules still decide (`mayReceive`), as they do for a queue.
   */
  #replayOne(session: Session, message: Message, seq: number, owed: QoS | undefined): boolean {
    if (this.#sessions.get(session.clientId) !== session) return false;
    const deliveries = this.router.match(message.topic, message.senderId, null);
    let matched = false;
    for (let i = 0; i < deliveries.length; i++) {
      const d = deliveries[i]!;
      if (d.session !== session) continue;
      matched = true;
      this.#deliverStored(d, message, seq);
    }
    if (!matched && owed !== undefined && owed > 0 && this.hooks.mayReceive?.(session.identity, message.topic) !== false) {
      // Its subscription is gone: no RETAIN as published and no identifiers, as for a flow restored without one.
      this.#deliverStored({ session, qos: owed, retainAsPublished: false, subIds: undefined, shared: undefined }, message, seq);
      return true;
    }
    return matched;
  }

  /**
   * A stored message (stream sequence `seq`) to one delivery; a tracked session's record follows its flow: a QoS 2
   * PUBLISH leaves only once its packet id is in the record (a commit of the engine's gate), so a node that resumes
   * the session after this one's death resends it under that id, never as a new message [MQTT-4.4.0-1].
   */
  #deliverStored(d: Delivery, message: Message, seq: number): void {
    const qos = (message.qos < d.qos ? message.qos : d.qos);
    const retain = d.retainAsPublished && message.retain;
    if (qos === 0) {
      d.session.deliver(message, 0, retain, d.subIds);
      return;
    }
    const tracked = this.#link!.delivered(d.session.clientId, seq, qos);
    const hooks: FlowHooks | undefined = tracked === undefined ? undefined : {
      sent: (packetId, sentQos) => {
        const written = tracked.onSent(packetId, sentQos);
        if (written === undefined) return;
        // Settled before the gate lets the PUBLISH go (this reaction comes first): a session lost meanwhile keeps it.
        const conn = d.session.link;
        this.commits.track(written.then((held) => this.#withholdIfLost(held, conn, d.session.clientId)));
      },
      received: qos === 2 ? this.#pubrelRecorded(d.session, tracked) : undefined,
    };
    // Refused at once (its queue full): done for the record's floor as well.
    if (!d.session.deliver(message, qos, retain, d.subIds, tracked?.onComplete, hooks)) tracked?.onComplete(DROPPED);
  }

  /** A QoS 2 delivery's PUBREC: its PUBREL waits for the record, and does not leave if the session was lost meanwhile. */
  #pubrelRecorded(session: Session, tracked: StoredDelivery): (packetId: number) => Promise<void> {
    return (packetId) => {
      const conn = session.link;
      return tracked.onReceived(packetId).then((held) => this.#withholdIfLost(held, conn, session.clientId));
    };
  }

  /**
   * A QoS 2 PUBLISH or PUBREL whose record write found the session claimed by another node (`held` false): the node
   * that claimed it sends that flow from its record, so nothing held on this connection leaves — it closes (0x8E)
   * without it [MQTT-4.3.3]. Before, the takeover's close waited behind the write and the PUBLISH left with it: the
   * session's message reached the connection taken over and, again, the one that took it over.
   */
  #withholdIfLost(held: boolean, conn: Session['link'], clientId: string): void {
    if (held || !(conn instanceof Connection)) return;
    this.logger.info({ clientId: logText(clientId) }, 'cluster_session_lost_flow_withheld');
    conn.abandonHeld();
  }

  /**
   * A cluster node's persistent session opened (its client connected): the cluster's record follows its
   * subscriptions and floor from now (another node can resume it). Undefined without a cluster.
   */
  clusterSessionOpened(session: Session): void {
    session.restoredFromStore = false;
    if (this.#link === null || session.expiryInterval === 0) return;
    this.#link.sessionChanged(session.clientId, [...session.subscriptions.values()].map(storedSubscription));
  }

  #own(session: Session, owner: string | undefined): void {
    session.owner = owner;
    if (owner === undefined) return;
    this.#sessionsByOwner.set(owner, (this.#sessionsByOwner.get(owner) ?? 0) + 1);
    this.#link?.sessionCounts.changed(owner);
  }

  #disown(session: Session): void {
    const owner = session.owner;
    if (owner === undefined) return;
    const n = (this.#sessionsByOwner.get(owner) ?? 1) - 1;
    if (n > 0) this.#sessionsByOwner.set(owner, n);
    else this.#sessionsByOwner.delete(owner);
    this.#link?.sessionCounts.changed(owner);
  }

  #newSession(clientId: string): Session {
    const session = new Session(clientId, this.options, this.stats);
    session.journal = this.#journal;
    this.#sessions.set(clientId, session);
    return session;
  }

  /**
   * Loads retained messages and persistent sessions kept by the persistence, before listening.
   * Sessions restart their expiry from when their connection closed.
   */
  async restore(): Promise<void> {
    if (this.#persistence === undefined) {
      this.#bindLink();
      return;
    }
    const state = await this.#persistence.load();
    const now = Date.now();
    // A payload left out must be readable later; a persistence that leaves it out without saying how
    // to read it back is a bug of that persistence, logged instead of restoring messages with no body.
    const readable = this.#persistence.readRetainedPayload !== undefined;
    let unreadable = 0;
    for (const m of state.retained) {
      if (m.expiresAt !== 0 && m.expiresAt <= now) { // expired while the process was down: its row goes too
        this.#journal?.retained(m.topic, null);
        continue;
      }
      if (m.payload === undefined && !readable) unreadable++;
      else this.retained.restore(m);
    }
    if (unreadable > 0) this.logger.error({ unreadable }, 'retained_payloads_unreadable');
    const outboundByClient = new Map<string, typeof state.outbound>();
    for (const o of state.outbound) {
      let list = outboundByClient.get(o.clientId);
      if (list === undefined) outboundByClient.set(o.clientId, (list = []));
      list.push(o);
    }
    for (const stored of state.sessions) {
      const closedAt = stored.disconnectedAt ?? now;
      const leftMs = stored.expiryInterval === NEVER_EXPIRES ? Infinity : stored.expiryInterval * 1000 - (now - closedAt);
      const session = this.#newSession(stored.clientId);
      if (leftMs <= 0) {
        this.#destroySession(session);
        continue;
      }
      session.expiryInterval = stored.expiryInterval;
      session.disconnectedAt = closedAt;
      session.subscriptionsStored = true; // they come from the store: nothing to write back
      session.restoredFromStore = true;
      this.#own(session, stored.owner);
      for (const sub of stored.subscriptions) {
        const shared = parseSharedFilter(sub.raw);
        // Stored before a limit was lowered (or damaged): never handed to the router.
        if (shared === 'invalid' || !topicWithinLimits(sub.raw, this.options.maxTopicLevels, this.options.maxTopicLength)) continue;
        this.#attach({
          session, raw: sub.raw, filter: shared === null ? sub.raw : shared.filter, group: shared?.group,
          qos: sub.qos, noLocal: sub.noLocal, retainAsPublished: sub.retainAsPublished,
          retainHandling: sub.retainHandling, subscriptionId: sub.subscriptionId,
        });
      }
      for (const id of stored.incomingQos2) session.incomingQos2.add(id);
      session.restoreOutbound((outboundByClient.get(stored.clientId) ?? []).sort((a, b) => a.seq - b.seq), (r) => messageOf(r.message));
      if (leftMs !== Infinity) session.expiryTimer = new LongTimer(leftMs / 1000, () => this.#expireSessionContained(session));
      this.#awaitReplay(session, stored.streamFloor, state.streamPosition);
    }
    this.logger.info({ retained: this.retained.size, sessions: this.#sessions.size }, 'broker_state_restored');
    // In the same turn as the restored subscriptions: no message of another node falls between them and the link.
    this.#bindLink();
  }

  /**
   * The other nodes' messages and the cluster's retained set come in from here on: after this node's own
   * state is restored, so the cluster's newer retained messages replace the ones this node kept, never the reverse.
   */
  #bindLink(): void {
    this.#link?.bind({
      receive: (message, seq) => this.contain(() => (seq === undefined ? this.#route(message, null) : this.#routeStored(message, seq)),
        'cluster_delivery_failed', message.senderId),
      sharedElsewhere: (group, filter, nodes) => this.router.setRemotes(group, filter, nodes),
      receiveShared: (group, filter, message, done) => {
        let delivered = false;
        this.contain(() => (delivered = this.#deliverShared(this.router.pickLocal(group, filter), message, done)), 'cluster_delivery_failed', message.senderId);
        return delivered;
      },
      reshare: (group, filter, message, avoid) => {
        let placed = false;
        this.contain(() => {
          const pick = this.router.pick(group, filter, avoid);
          if (typeof pick === 'string') {
            this.#link?.forwardShared(pick, group, filter, message);
            placed = true;
          } else if (pick !== undefined && Math.min(message.qos, pick.qos) === 1) {
            // Delivered at QoS 1 here: a member that never completes it hands it on, as a single process does.
            this.#deliverToMember(pick, message, group, filter, 0);
            placed = true;
          } else {
            placed = this.#deliverShared(pick, message, undefined);
          }
        }, 'cluster_delivery_failed', message.senderId);
        return placed;
      },
      retained: (message) => this.contain(() => this.#followRetained(message), 'cluster_retained_failed', message.senderId),
      retainedHeld: () => this.#retainedHeld(),
      cutOff: () => this.#cutOff(),
      sessionMoved: (clientId) => this.contain(() => this.#sessionMoved(clientId), 'cluster_session_moved_failed', clientId),
      publishWill: (will) => this.contain(() => {
        this.stats.clusterWillsPublished++;
        this.#sendWill(null, will.message, will.expiry, RC.SUCCESS); // authorized at its CONNECT, on the node that recorded it
      }, 'will_failed', will.message.senderId),
      receivedQos2: (clientId) => {
        const held: ReturnType<LinkEndpoint['receivedQos2']> = { received: [], storing: [] };
        const session = this.#sessions.get(clientId);
        for (const id of session?.incomingQos2 ?? []) {
          const storing = session!.qos2Storing(id);
          if (storing === undefined) held.received.push(id);
          else held.storing.push([id, storing]);
        }
        return held;
      },
      landedQos2: (clientId, packetId) => {
        const session = this.#sessions.get(clientId);
        if (session !== undefined && !session.incomingQos2.has(packetId)) session.takeQos2(packetId);
      },
    });
  }

  connectionReady(conn: Connection): void {
    this.#connected++;
    if (this.logger.isLevelEnabled('debug')) this.logger.debug({ clientId: conn.clientId, remoteAddress: conn.remoteAddress }, 'client_connected');
    this.emit('client_connected', conn);
  }

  /** Publishes a message from outside MQTT (the platform's downlink, tests). */
  publishMessage(init: { topic: string; payload: Buffer; qos?: QoS; retain?: boolean; expirySeconds?: number }): void {
    void this.publish(createMessage({
      topic: init.topic,
      payload: init.payload,
      qos: init.qos ?? 0,
      retain: init.retain ?? false,
      properties: undefined,
      expiresAt: init.expirySeconds === undefined ? 0 : Date.now() + init.expirySeconds * 1000,
      senderId: '',
    }), null);
  }

  /**
   * Sends a message from outside MQTT to ONE connected client (the platform's downlink), through a
   * subscription of that client matching the topic, at the lower of the asked and the granted QoS.
   * Not routed to anyone else, not retained. For QoS 1 it resolves when the client's PUBACK for this
   * very packet arrives ('acked', or 'refused' with a failure reason code) or after `ackTimeoutMs` ('timeout'; the message stays in flight).
   */
  deliverTo(clientId: string, init: { topic: string; payload: Buffer; qos: QoS }, ackTimeoutMs = 10_000): Promise<DirectDelivery> {
    const session = this.#sessions.get(clientId);
    if (session === undefined || session.link === null) return Promise.resolve({ outcome: 'offline' });
    let granted = -1;
    const subIds: number[] = [];
    for (const sub of session.subscriptions.values()) {
      if (!topicMatches(sub.filter, init.topic)) continue;
      if (sub.qos > granted) granted = sub.qos;
      if (sub.subscriptionId !== undefined) subIds.push(sub.subscriptionId);
    }
    if (granted < 0) return Promise.resolve({ outcome: 'not_subscribed' });
    const qos = (init.qos < granted ? init.qos : granted) as QoS;
    const message = createMessage({
      topic: init.topic, payload: init.payload, qos, retain: false, properties: undefined, expiresAt: 0, senderId: '',
    });
    const ids = subIds.length > 0 ? subIds : undefined;
    // Dropped rather than sent (larger than the device accepts, its socket congested, its queue full):
    // said so, not reported as sent or left to time out.
    if (qos === 0) return Promise.resolve({ outcome: session.deliver(message, 0, false, ids) ? 'sent' : 'dropped' });
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve({ outcome: 'timeout' }), ackTimeoutMs);
      timer.unref();
      const end = (reasonCode: DeliveryEnd): void => {
        clearTimeout(timer);
        // A reason code of 0x80 or above is the client's refusal (MQTT 5 §3.4.2.1), not an acknowledgement of receipt.
        if (reasonCode === DROPPED) resolve({ outcome: 'dropped' });
        else resolve({ outcome: reasonCode >= 0x80 ? 'refused' : 'acked', reasonCode });
      };
      if (!session.deliver(message, qos, false, ids, end)) end(DROPPED);
    });
  }

  /**
   * Routes a message to every subscriber (here, then on the other nodes of a cluster). Returns undefined, or on a
   * cluster node a promise the PUBACK waits for: true once the cluster holds what it must (a QoS 1/2 message in its
   * stream, a retained message in its store), false when the cluster's stream refused the message.
   */
  publish(message: Message, from: ClientInfo | null, storeId?: string): Promise<boolean> | undefined {
    this.stats.messagesReceived++;
    this.emit('message_published', message, from);
    let replicated: Promise<void> | undefined;
    // [MQTT-3.3.1-5] the server stores the message as the topic's retained message.
    if (message.retain && this.retained.set(message)) {
      this.#journal?.retained(message.topic, message.payload.length === 0 ? null : message);
      if (this.#link !== null) {
        replicated = this.#link.retain(message);
        // A 3.1.1 client need not wait for its PUBACKs: what is on its way to the cluster's store counts
        // against the same byte bound as the disk's writes, or a stalled NATS would queue it without bound.
        this.commits.hold(replicated, RETAINED_HOLD_OVERHEAD + message.topic.length + message.payload.length);
      }
    }
    const link = this.#link;
    if (link === null) {
      this.#route(message, undefined);
      return undefined;
    }
    if (message.qos > 0) {
      // A cluster node's QoS 1/2 message is stored in the cluster's stream first and routed from there, here as on
      // every node (issue 16 item 2): acknowledged only once it survives this node's death, delivered once per node.
      // Each matching shared group's member is picked now, once for the whole cluster, and the picks travel with
      // the stored message: only the picked node delivers to that group [MQTT-4.8.2-2].
      const stored = link.store(message, this.router.sharedPicks(message.topic), storeId);
      // Under the same byte bound as the retained store's puts: a 3.1.1 flood while NATS is slow stops the reads.
      this.commits.hold(stored, RETAINED_HOLD_OVERHEAD + message.topic.length + message.payload.length);
      return replicated === undefined ? stored : Promise.all([stored, replicated]).then(([ok]) => ok);
    }
    // A shared group's pick may fall on another node: the message goes there for one member of it (item 5).
    this.#route(message, (node, group, filter) => link.forwardShared(node, group, filter, message));
    // After local routing: the other nodes' subscribers (QoS 0: at most once).
    link.forward(message);
    return replicated?.then(() => true);
  }

  /** A shared group's member here gets a message another node's pick (or a re-pick) sent here; false: none left. */
  #deliverShared(d: Delivery | undefined, message: Message, done: ((delivered: boolean) => void) | undefined): boolean {
    if (d === undefined) return false;
    // The member's granted QoS caps the delivery, as for any subscription [MQTT-4.8.2-3].
    const qos = (message.qos < d.qos ? message.qos : d.qos);
    // A QoS 1 one is done at its PUBACK, whatever its reason code [MQTT-4.8.2-6]; one that never reached the
    // member (its session ended first, its queue refused it) goes back to the sender for another member.
    let told = false;
    const ended = qos === 1 && done !== undefined ? (end: DeliveryEnd): void => {
      told = true;
      done(end !== DROPPED);
    } : undefined;
    // Refused at once by the member's queue (drop-new, too large for it): not every refusal is told through `ended`.
    if (!d.session.deliver(message, qos, d.retainAsPublished && message.retain, d.subIds, ended) && qos === 1 && !told) done?.(false);
    // A QoS 2 delivery is its member's to complete, never another member's [MQTT-4.8.2-4, MQTT-4.8.2-5]: the
    // sender stops keeping it now.
    if (qos !== 1) done?.(true);
    return true;
  }

  /** The cluster's store set or cleared a topic's retained message (on any node): this store follows it. */
  #followRetained(message: Message): void {
    this.retained.replicate(message);
    this.#journal?.retained(message.topic, message.payload.length === 0 ? null : message);
  }

  *#retainedHeld(): Generator<Message> {
    for (const topic of this.retained.topics()) {
      const message = this.retained.get(topic, Date.now());
      if (message !== undefined) yield message;
    }
  }

  /**
   * Delivers a message to this node's matching subscribers: one published here, or one another node
   * forwarded (which this node neither stores as retained nor announces as published: its own node did).
   */
  #route(message: Message, remote: RemotePick | null | undefined): void {
    const deliveries = this.router.match(message.topic, message.senderId, remote);
    for (let i = 0; i < deliveries.length; i++) {
      const d = deliveries[i]!;
      // Delivered at the lower of the published and the granted QoS [MQTT-3.8.4-8? §3.8.4];
      // RETAIN is kept only with Retain As Published [MQTT-3.3.1-12, MQTT-3.3.1-13].
      const qos = (message.qos < d.qos ? message.qos : d.qos);
      // A single process's shared group member gets a QoS 1 message that may have to go to another member
      // (a cluster node's QoS 1 messages take the stream's path, where the picking node does the same).
      const shared = d.shared;
      if (qos === 1 && shared?.group !== undefined && remote === undefined) this.#deliverToMember(d, message, shared.group, shared.filter, 0);
      else d.session.deliver(message, qos, d.retainAsPublished && message.retain, d.subIds);
    }
  }

  /**
   * A QoS 1 message to a shared group's member. If it never reaches that member — its session ends before the
   * PUBACK (a clean start gone), or its queue refuses it — another member of the group gets it: "If the Client's
   * Session terminates before the Client reconnects, the Server SHOULD send the Application Message to another
   * Client that is subscribed to the same Shared Subscription" (MQTT 5 §4.8.2). A PUBACK with any reason code
   * ends it [MQTT-4.8.2-6]. At most MAX_SHARED_REPICKS other members, so members that all refuse cannot bounce it forever.
   */
  #deliverToMember(d: Delivery, message: Message, group: string, filter: string, tries: number): void {
    let told = false;
    const ended = (end: DeliveryEnd): void => {
      told = true;
      // After the ending session's subscriptions are retired: the next pick cannot fall on it again.
      if (end === DROPPED) queueMicrotask(() => this.#repickMember(d, message, group, filter, tries));
    };
    if (!d.session.deliver(message, 1, d.retainAsPublished && message.retain, d.subIds, ended) && !told) this.#repickMember(d, message, group, filter, tries);
  }

  #repickMember(previous: Delivery, message: Message, group: string, filter: string, tries: number): void {
    if (this.#closed) return;
    const next = tries < MAX_SHARED_REPICKS ? this.router.pickOther(group, filter, previous.session) : undefined;
    if (next === undefined) {
      this.stats.sharedUndeliverable++;
      return;
    }
    this.stats.sharedRepicked++;
    this.contain(() => this.#deliverToMember(next, message, group, filter, tries + 1), 'shared_repick_failed', message.senderId);
  }

  /**
   * A QoS 1/2 message the cluster's stream handed this node (issue 16 item 2), in stream order: to this node's
   * non-shared subscribers (shared groups get it through their pick), except a session still replaying the stream.
   */
  #routeStored(message: Message, seq: number): void {
    const deliveries = this.router.match(message.topic, message.senderId, null);
    let persistent = false;
    for (let i = 0; i < deliveries.length; i++) {
      const d = deliveries[i]!;
      if (d.session.replaying) continue; // its replay reads this one from the stream, in order
      if (d.session.expiryInterval > 0) persistent = true;
      this.#deliverStored(d, message, seq);
    }
    // The file's sessions have every stored message up to here (a node restarted as itself replays after it).
    this.#journal?.streamPosition(seq, persistent);
  }

  subscribe(sub: Subscription): void {
    this.#attach(sub);
    sub.session.subscriptionChanged(sub.raw, sub);
    this.#clusterSubscriptionsChanged(sub.session);
  }

  /**
   * A session's non-shared subscription replaced by the same filter with new options [MQTT-3.8.4-3], in place: deliveries
   * read the options when they are matched, so the next message takes them and none in flight is touched, and the
   * router's trie is not walked twice for nothing (a filter may be 64 KiB, its levels hashed on each walk).
   */
  resubscribe(sub: Subscription, options: SubscriptionOptions): void {
    sub.qos = options.qos;
    sub.noLocal = options.noLocal;
    sub.retainAsPublished = options.retainAsPublished;
    sub.retainHandling = options.retainHandling;
    sub.subscriptionId = options.subscriptionId;
    sub.session.subscriptionChanged(sub.raw, sub);
    this.#clusterSubscriptionsChanged(sub.session);
  }

  /**
   * The cluster's record of a persistent session lists all its filters, so it is told once per turn of the sessions
   * whose filters changed, not once per filter: a SUBSCRIBE of 1,000 filters listed the session's filters 1,000 times
   * (half a million entries). Told before a SUBACK waits for the record (`clusterSettled`), and never after the
   * session ended here (`#destroySession`).
   */
  #clusterSubscriptionsChanged(session: Session): void {
    if (this.#link === null) return;
    if (this.#subscriptionsToTell.size === 0) queueMicrotask(() => this.#tellSubscriptions());
    this.#subscriptionsToTell.add(session);
  }

  #tellSubscriptions(): void {
    for (const session of this.#subscriptionsToTell) {
      if (session.expiryInterval === 0) continue;
      this.contain(() => this.#link?.sessionChanged(session.clientId, [...session.subscriptions.values()].map(storedSubscription)),
        'cluster_session_changed_failed', session.clientId);
    }
    this.#subscriptionsToTell.clear();
  }

  #attach(sub: Subscription): void {
    sub.session.subscriptions.set(sub.raw, sub);
    this.router.add(sub);
    if (this.#link !== null && this.router.subscriptionCount === 1) this.#link.interest(true);
  }

  #detach(sub: Subscription): void {
    this.router.remove(sub);
    if (this.#link !== null && this.router.subscriptionCount === 0) this.#link.interest(false);
  }

  /**
   * Resolves once other nodes' messages reach the subscriptions made so far and, `withRetained`, once this store
   * holds every retained message the cluster's held (undefined: both already hold, or no cluster).
   */
  clusterSettled(withRetained = false): Promise<void> | undefined {
    if (this.#link === null) return undefined;
    this.#tellSubscriptions();
    const interest = this.#link.settled();
    const retained = withRetained ? this.#link.retainedSettled() : undefined;
    if (retained === undefined) return interest;
    return interest === undefined ? retained : Promise.all([interest, retained]).then(() => undefined);
  }

  /** Whether the other nodes of the cluster can be reached (always, without a cluster). */
  clusterReachable(): boolean {
    return this.#link === null || this.#link.reachable();
  }

  /**
   * An inbound QoS 2 PUBLISH about to be handed on: on a cluster node, for a persistent session, the stream message id
   * it is stored under, written into the session's record before the store is made (a node resuming the session
   * after this one's death stores the client's resend under the same id: one copy in the stream [MQTT-4.3.3-10]).
   * Undefined: no cluster, or the session is not tracked (stored as any message).
   */
  qos2Receiving(session: Session, packetId: number): Qos2Intent | undefined {
    return this.#link?.qos2Receiving(session.clientId, packetId);
  }

  /** That message is in the stream: the record names the packet id as received with its next write. */
  qos2Received(session: Session, packetId: number): void {
    this.#link?.qos2Received(session.clientId, packetId);
  }

  /** An inbound QoS 2 packet id released (PUBREL): on a cluster node its PUBCOMP waits for the session's record to learn it. */
  qos2Released(session: Session, packetId: number): Promise<boolean> | undefined {
    return this.#link?.qos2Released(session.clientId, packetId);
  }

  /**
   * Cut off longer than the node's lease: the other nodes count this one dead, so every client goes
   * (v5: 0x9C use another server) and reconnects through the load balancer to a node that is alive.
   */
  #cutOff(): void {
    const n = this.disconnectWhere(() => true, RC.USE_ANOTHER_SERVER, 'cluster_cut_off');
    this.stats.clusterCutOffDisconnects += n;
    this.logger.warn({ disconnected: n }, 'cluster_cut_off_clients_disconnected');
  }

  unsubscribe(sub: Subscription): void {
    if (sub.session.subscriptions.get(sub.raw) !== sub) return;
    sub.session.subscriptions.delete(sub.raw);
    this.#detach(sub);
    sub.session.subscriptionChanged(sub.raw, null);
    this.#clusterSubscriptionsChanged(sub.session);
  }

  connectionClosed(conn: Connection, reason: string, was: ConnectionState): void {
    this.#connections.delete(conn);
    if (conn.holdsPlace) {
      conn.holdsPlace = false;
      this.#link?.connections.give();
    }
    this.#settleSessionPlace(conn);
    const wasConnected = was === 'connected';
    if (wasConnected) this.#connected--;
    else if ((was === 'awaiting-connect' || was === 'connecting') && this.listenerCount('connect_ended') > 0) {
      this.contain(() => this.emit('connect_ended', {
        socket: conn.socket, remoteAddress: conn.remoteAddress, clientId: conn.presented?.clientId, username: conn.presented?.username,
        protocolVersion: conn.presented === null ? undefined : conn.protocolVersion, cause: reason, stage: was, farewell: conn.farewell,
      }), 'connect_ended_listener_failed', conn.clientId);
    }
    const session = conn.session;
    if (!wasConnected || session === null) return;
    conn.session = null;
    if (session.link === conn) {
      session.link = null;
      // Runs from a socket's 'close' event: a throw here would reach the process, not the connection.
      this.contain(() => this.#handleLostConnection(conn, session, reason), 'session_cleanup_failed', conn.clientId);
    }
  }

  /**
   * Runs work done for one client (cleanup, timers) so that a failure is logged and counted instead of
   * escaping to the process: one client's state must never take every other client down with it.
   * (No client id: the engine's own periodic work.)
   */
  contain(work: () => void, event: string, clientId?: string): void {
    try {
      work();
    } catch (err) {
      this.stats.handlerCrashes++;
      this.logger.error(clientId === undefined ? { err } : { err, clientId }, event);
    }
  }

  /** Will and session expiry after the connection of a session went away. */
  #handleLostConnection(conn: Connection, session: Session, reason: string): void {
    this.logger.debug({ clientId: conn.clientId, reason }, 'client_disconnected');
    this.emit('client_disconnected', conn, reason, conn.farewell);
    const will = conn.will;
    conn.will = null;
    const expiry = session.expiryInterval;
    session.disconnectedAt = Date.now();
    session.changed();
    // The will waits for min(Will Delay, Session Expiry) [MQTT-3.1.3-9]; the session ending sends it now.
    const due = will !== null && !conn.normalDisconnect ? will : null;
    const delay = Math.min(conn.willDelay, expiry);
    // A cluster node publishes the will only once the session's record says this node still holds it (a takeover
    // on this node keeps the in-memory path: the claim that displaced this connection was this node's own).
    if (this.#link !== null && reason !== 'session_taken_over') this.#endInCluster(this.#link, conn, session, due, delay);
    else if (due !== null) {
      if (delay === 0) this.#publishWill(conn, due, conn.willExpiry);
      else session.willTimer = new LongTimer(delay, () => this.contain(() => {
        session.willTimer = undefined;
        this.#publishWill(conn, due, conn.willExpiry);
      }, 'will_failed', session.clientId));
    }
    // [MQTT-3.1.2-11? §3.1.2.11.2] Session Expiry 0 ends the session with the connection.
    if (expiry === 0) this.#destroySession(session);
    else if (expiry !== NEVER_EXPIRES) session.expiryTimer = new LongTimer(expiry, () => this.#expireSessionContained(session));
  }

  /**
   * The record learns the connection's end (and keeps a delayed will, for a survivor should this node die). A
   * write that fails (another node took the session, or NATS is away and the survivors will count this node dead)
   * publishes nothing here: whoever holds the record does, once.
   */
  #endInCluster(link: ClusterLink, conn: Connection, session: Session, will: Message | null, delay: number): void {
    const expiry = conn.willExpiry;
    const recorded: RecordedWill | null = will === null ? null : { message: will, delay, expiry };
    link.connectionEnded(conn.clientId, { will: recorded, sessionEnds: session.expiryInterval === 0 }).then((held) => {
      if (!held || will === null) return;
      if (delay === 0) return this.#publishWill(conn, will, expiry);
      // A new connection resumed the session meanwhile (its claim replaced the record's will), or it ended.
      if (session.link !== null || this.#sessions.get(session.clientId) !== session) return;
      session.willTimer = new LongTimer(delay, () => {
        session.willTimer = undefined;
        link.takeWill(conn.clientId).then(
          (taken) => { if (taken) this.contain(() => this.#publishWill(conn, will, expiry), 'will_failed', conn.clientId); },
          (err: unknown) => this.logger.error({ err, clientId: logText(conn.clientId) }, 'cluster_will_claim_failed'),
        );
      });
    }).catch((err: unknown) => this.logger.error({ err, clientId: logText(conn.clientId) }, 'cluster_connection_end_failed'));
  }

  #publishWill(conn: Connection, will: Message, expiry: number): void {
    // A will is the client's PUBLISH, made when it is sent: it passes the client's publish authorization
    // then, as any PUBLISH does (a gateway's topic rules), and a refused one is dropped and counted.
    const authorize = this.hooks.authorizePublish;
    const verdict = authorize === undefined ? RC.SUCCESS : authorize(conn, will.topic, will);
    if (typeof verdict === 'number') this.#sendWill(conn, will, expiry, verdict);
    else {
      verdict.then(
        (rc) => this.contain(() => this.#sendWill(conn, will, expiry, rc), 'will_failed', conn.clientId),
        (err: unknown) => this.logger.error({ err, clientId: logText(conn.clientId) }, 'will_authorization_failed'),
      );
    }
  }

  /** `conn` null: a will recorded in the cluster by a node that died, published by this one. */
  #sendWill(conn: Connection | null, will: Message, expiry: number, verdict: number): void {
    const clientId = conn?.clientId ?? will.senderId;
    if (verdict !== RC.SUCCESS) {
      this.stats.droppedUnauthorized++;
      this.logger.info({ clientId: logText(clientId), topic: logText(will.topic) }, 'will_refused');
      return;
    }
    // The will's expiry clock starts when it is published.
    const message = expiry > 0 ? { ...will, expiresAt: Date.now() + expiry * 1000 } : will;
    this.logger.debug({ clientId, topic: message.topic }, 'will_published');
    void this.publish(message, null);
  }

  #expireSessionContained(session: Session): void {
    this.contain(() => this.#expireSession(session), 'session_expiry_failed', session.clientId);
  }

  #expireSession(session: Session): void {
    if (session.link !== null) return;
    // The session ends before the will delay: the will goes now [MQTT-3.1.3-9].
    session.willTimer?.fireNow();
    this.#destroySession(session);
  }

  #destroySession(session: Session): void {
    this.#subscriptionsToTell.delete(session);
    this.#link?.sessionChanged(session.clientId, null);
    this.#journal?.sessionDeleted(session.clientId, session);
    session.journal = null;
    const before = this.router.subscriptionCount;
    this.router.retire(session.takeSubscriptions());
    if (this.#link !== null && before > 0 && this.router.subscriptionCount === 0) this.#link.interest(false);
    session.clearMessages();
    session.expiryTimer?.cancel();
    if (this.#sessions.get(session.clientId) === session) {
      this.#sessions.delete(session.clientId);
      this.#disown(session);
    }
  }

  lingerAfterEnd(socket: Socket): void {
    this.#lingering.add(socket);
  }

  #sweepConnections(): void {
    this.#lingering.reap();
    const now = this.now();
    const connectDeadline = now - this.options.connectTimeoutMs;
    for (const conn of this.#connections) {
      if (conn.state === 'awaiting-connect') {
        if (conn.createdAt < connectDeadline) this.contain(() => conn.close('connect_timeout'), 'connection_close_failed', conn.clientId);
      } else if (conn.state === 'connected' && conn.keepalive > 0 && !conn.readingSuspended) {
        // [MQTT-3.1.2-24] no packet within 1.5 × Keep Alive: the server closes the connection. Not while
        // this server is the one not reading (pacing, a pending step, writes behind): that silence is ours.
        if (now - conn.lastActivity > conn.keepalive * 1500) {
          this.contain(() => conn.disconnect(RC.KEEP_ALIVE_TIMEOUT, 'keepalive_timeout'), 'connection_close_failed', conn.clientId);
        }
      }
    }
  }

  /** Disconnects every client (v5: 0x8B server shutting down) and stops timers. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#sweep);
    // The persistent sessions' last states, while this node still holds them (after the link's close it writes nothing).
    if (this.#link !== null) await this.#link.saveSessions();
    this.#link?.close();
    for (const conn of [...this.#connections]) {
      // A CONNECT still being verified hears why it ends (v5 0x88 server unavailable, v3.1.1 3): a bare close
      // leaves some clients waiting for a CONNACK that never comes.
      if (conn.state === 'connecting') {
        conn.refuseConnect(RC.SERVER_UNAVAILABLE, { step: 'shutdown', reasonString: 'server shutting down', detail: 'server_shutting_down', cause: 'server_shutting_down' });
      } else conn.disconnect(RC.SERVER_SHUTTING_DOWN, 'server_shutting_down');
    }
    for (const session of this.#sessions.values()) {
      session.expiryTimer?.cancel();
      session.willTimer?.cancel();
    }
    await new Promise((r) => setImmediate(r));
    // The sweep has stopped: one last reaping for the sockets ended at shutdown.
    setTimeout(() => this.#lingering.destroyAll(), LINGER_MS).unref();
  }
}

/**
 * The QoS a stored message was owed at by the subscriptions of a moved session's record: the highest of those that
 * match it (No Local honoured); undefined when none does.
 */
function recordedQos(recorded: readonly StoredSubscription[], message: Message, clientId: string): QoS | undefined {
  let owed: QoS | undefined;
  for (const sub of recorded) {
    if (sub.noLocal && message.senderId === clientId) continue;
    if ((owed === undefined || sub.qos > owed) && topicMatches(sub.raw, message.topic)) owed = sub.qos;
  }
  return owed;
}

/** The router throws past its depth: no option may let a deeper topic through to it. */
function checkTopicLevels(levels: number): void {
  if (!(levels >= 1 && levels <= TOPIC_LEVELS_CEILING)) throw new RangeError(`maxTopicLevels must be from 1 to ${TOPIC_LEVELS_CEILING} (got ${levels})`);
}

function messageOf(m: StoredMessage): Message {
  return createMessage({ topic: m.topic, payload: m.payload, qos: m.qos, retain: m.retain, properties: m.properties, expiresAt: m.expiresAt, senderId: m.senderId });
}
