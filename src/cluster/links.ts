/**
 * The engine's cluster link on NATS: one subject per gateway (`<prefix>.route.<gatewayId>`), each
 * gateway its own topic space. A node publishes every message of a gateway there after routing it
 * locally, and subscribes to it only while its engine for that gateway has subscriptions, so NATS
 * hands a gateway's traffic only to the nodes where someone listens in it. The receiving engine's
 * router stays the one authority for matching (wildcards, the `$` rule, No Local, shared groups).
 *
 * Why one subject per gateway rather than a subject per topic: MQTT topics hold what NATS subjects
 * cannot (`.`, spaces, `*`, `>`, empty levels), so per-topic subjects need an escaping scheme and a
 * NATS subscription per distinct filter to keep in step with the trie; the gain is only for nodes that
 * listen to a small part of a busy gateway. The frame carries the topic (wire.ts), so finer subjects
 * can come later without changing what a node receives.
 *
 * Shared subscriptions: the node a message is published on picks each shared group's member, here or on
 * another node (shared-groups.ts); the message every node gets on the gateway's subject skips shared groups.
 *
 * Core NATS is at most once: only QoS 0 goes that way. A QoS 1/2 message goes through the cluster's stream
 * (issue 16 item 2, durable-messages.ts): acknowledged once stored, delivered from the stream on every node,
 * to each shared group by the node picked for it alone (the picks travel with the stored message).
 */
import type { Msg, Subscription } from '@nats-io/transport-node';
import type {
  ClusterLink, ConnectionEnd, LinkEndpoint, Message, MovedFlow, MovedSession, Qos2Intent, RecordedWill, SessionClaim, SharedPick, StoredDelivery, StoredSubscription,
} from '../broker/index.ts';
import type { Logger } from '../core/logger.ts';
import { settledWithin } from '../core/settled-within.ts';
import type { ClusterConnection } from './connection.ts';
import { connectionCountsBucket, GatewayConnectionCounts } from './connection-counts.ts';
import { GatewaySessionCounts, sessionCountsBucket } from './session-counts.ts';
import { repickDeadShares, type SharesHeld } from './dead-node-shares.ts';
import { ClaimedDoubts } from './claimed-doubts.ts';
import { DurableMessages, picksOf, type DurableCounters } from './durable-messages.ts';
import type { DeadLease } from './node-leases.ts';
import { DEFAULT_MESSAGE_STREAM_LIMITS, MessageStream, type MessageStreamLimits } from './message-stream.ts';
import { RetainedReplica, type RetainedCounters } from './retained-replica.ts';
import type { OpenRecords, SessionState } from './session-records.ts';
import { NOTICE_TIMEOUT_MS, SessionOwnership, type NoticeAnswer, type RecordIdentity, type SessionNotice } from './session-ownership.ts';
import { SessionStates } from './session-states.ts';
import { keeperOf, SharedDirectory, SharedRelay, sharedCounters, type SharedCounters } from './shared-groups.ts';
import { batchOverhead, decodeFrames, decodeMessage, encodeBatch, encodeMessage } from './wire.ts';

/** How long a SUBACK waits for NATS to confirm the node's interest before it goes anyway (NATS cut off). */
const SETTLE_TIMEOUT_MS = 2_000;
/** How long a notice's answer waits for a QoS 2 message still being stored: well within the claimer's wait for it. */
const STORING_WAIT_MS = NOTICE_TIMEOUT_MS / 2;
/** Bytes of in-flight messages a resumed session reads back to resend under their packet ids (the default queue bound). */
const MAX_FLOW_BYTES = 16 * 1024 * 1024;
/** Those read at once (each waits for one of the gateway's replay reads, durable-messages.ts). */
const FLOW_READS_AT_ONCE = 8;
/**
 * The QoS 0 forwards of one event-loop turn cross in one NATS message (wire.ts batch frame) of at most this many bytes
 * (a message larger goes alone): each NATS message costs the sending node, nats-server and the receiving node more
 * than its bytes. Within the budget's granularity (a batch is admitted or dropped whole) and far below max_payload.
 */
const MAX_FORWARD_BATCH_BYTES = 64 * 1024;

/** Messages of one gateway across nodes since the process started. */
export interface LinkCounters extends RetainedCounters, SharedCounters, DurableCounters {
  forwarded: number;
  received: number;
  /** Frames that were not messages (another version of Gatehouse on the same NATS), dropped. */
  malformed: number;
  /** Publishes the NATS client refused (closed, or its reconnect buffer full), dropped. */
  forwardFailed: number;
  /** QoS 0 messages not forwarded: NATS had not confirmed the node's publishes before them (MAX_UNCONFIRMED_PUBLISH_BYTES). */
  forwardDropped: number;
}

/**
 * The links of one node's engines. Fail closed (issue 16 item 8): while the NATS connection is down every
 * link says it cannot reach the cluster; once it has been down for `cutOffMs` (the node's lease: the other
 * nodes now count this one dead) every engine is told to end its connections. Reconnecting undoes both.
 */
export class NatsClusterLinks {
  readonly #conn: ClusterConnection;
  readonly #logger: Logger;
  readonly #counters = new Map<string, LinkCounters>();
  readonly #open = new Set<NatsGatewayLink>();
  /** The engine of each gateway running here (the last opened): session notices and adopted wills go to it. */
  readonly #byGateway = new Map<string, NatsGatewayLink>();
  readonly #cutOffMs: number;
  readonly #me: RecordIdentity;
  readonly #records: OpenRecords;
  readonly #notices: Subscription;
  /** Node processes found dead (their leases lapsed): shared groups' records of them are ignored. */
  readonly #dead = new Set<string>();
  readonly #relay: SharedRelay;
  readonly #stream: MessageStream;
  #cutOffTimer: NodeJS.Timeout | null = null;
  #wasCutOff = false;
  readonly #offState: () => void;
  /** The installation's bucket of connection counts (maxConnections across nodes), opened on first use. */
  readonly #countsBucket: ReturnType<typeof connectionCountsBucket>;
  /** The installation's bucket of sessions per owner (maxSessionsPerOwner across nodes), opened on first use. */
  readonly #sessionCountsBucket: ReturnType<typeof sessionCountsBucket>;
  readonly #liveInstances: () => readonly string[];
  /** Each engine's part of the counts is its own (an engine started again here is a new part). */
  #engines = 0;
  readonly #heartbeatMs: number;

  /** `cutOffMs` is the node's lease; `heartbeatMs` its renewal (the connection counts renew theirs as often). */
  constructor(conn: ClusterConnection, logger: Logger, cutOffMs: number, me: RecordIdentity, records: OpenRecords,
    streamLimits: MessageStreamLimits = DEFAULT_MESSAGE_STREAM_LIMITS, heartbeatMs = Math.max(250, Math.floor(cutOffMs / 5)),
    liveInstances: () => readonly string[] = () => []) {
    this.#conn = conn;
    this.#logger = logger;
    this.#cutOffMs = cutOffMs;
    this.#heartbeatMs = heartbeatMs;
    this.#countsBucket = connectionCountsBucket(conn);
    this.#sessionCountsBucket = sessionCountsBucket(conn);
    this.#liveInstances = liveInstances;
    this.#me = me;
    this.#records = records;
    this.#stream = new MessageStream(conn, streamLimits, logger);
    this.#offState = conn.onState((state) => this.#onState(state));
    // Claims of this process's sessions by other nodes: one subject per process, answered once the connection is closed.
    this.#notices = conn.nc.subscribe(`${conn.prefix}.sessions.${me.instance}`, { callback: (err, msg) => this.#onNotice(err, msg) });
    this.#relay = new SharedRelay(conn, me.instance, logger, (gatewayId) => this.#byGateway.get(gatewayId)?.endpoint ?? undefined,
      (gatewayId) => this.#countersOf(gatewayId), this.#dead, cutOffMs + 2 * heartbeatMs, (seq) => this.#readStored(seq));
  }

  #countersOf(gatewayId: string): LinkCounters {
    let counters = this.#counters.get(gatewayId);
    if (counters === undefined) {
      this.#counters.set(gatewayId, (counters = {
        forwarded: 0, received: 0, malformed: 0, forwardFailed: 0, forwardDropped: 0, retainedStored: 0, retainedTooLarge: 0, retainedPutBack: 0, ...sharedCounters(),
        stored: 0, storeRefused: 0, storeRetried: 0, storeDuplicates: 0, storedReceived: 0, storeDropped: 0, replayed: 0, replayReads: 0,
      }));
    }
    return counters;
  }

  /**
   * Node processes found dead (the will reaper's look at the leases, each heartbeat): they hold no shared
   * group's member any more, and what was sent to them for one and not completed is picked again.
   */
  nodesDead(instances: Iterable<string>): void {
    const fresh = new Set<string>();
    for (const instance of instances) {
      if (instance === this.#me.instance || this.#dead.has(instance)) continue;
      this.#dead.add(instance);
      fresh.add(instance);
    }
    if (fresh.size === 0) return;
    for (const link of this.#byGateway.values()) link.shared.forget(fresh);
    this.#relay.nodesDead(fresh);
  }

  /** A stored message by its sequence; null once the stream's limits removed it. */
  async #readStored(seq: number): Promise<Message | null> {
    const stored = await this.#stream.get(seq);
    return stored === null ? null : decodeMessage(stored.data);
  }

  /** Writes this node's lease now (set by the node: node-leases.ts `renew`), with what it hands shared groups' members. */
  renewLease: (() => Promise<void>) | undefined;

  /**
   * The NATS server's time of a process's lease's last write as last seen here, or where it stands at the latest
   * (set by the node: node-leases.ts `writtenAt`); undefined: unknown, and no claimed stores are checked.
   */
  leaseWrittenAt: ((instance: string) => number | undefined) | undefined;

  /** What this node hands shared groups' members, for its lease (dead-node-shares.ts). */
  sharesHeld(): SharesHeld {
    const positions = new Map<string, number>();
    for (const [gatewayId, link] of this.#byGateway) {
      const position = link.durable.position();
      if (position !== undefined && link.shared.holdsMembers) positions.set(gatewayId, position);
    }
    return this.#relay.holding(positions);
  }

  /**
   * A dead process this node reaped (will-reaper.ts): its shared groups' messages that no keeper will pick again are
   * picked again here, through the gateways' engines running here.
   */
  repickDeadShares(dead: DeadLease, heartbeatMs: number): Promise<{ repicked: number; left: number }> {
    return repickDeadShares(dead, {
      headersFrom: (gatewayId, fromSeq, each) => this.#stream.headersFrom(gatewayId, fromSeq, each),
      read: (seq) => this.#readStored(seq),
      picksOf,
      keeperOf,
      alive: (instance) => instance === this.#me.instance || (!this.#dead.has(instance) && this.#liveInstances().includes(instance)),
      reshare: (gatewayId, group, filter, message, avoid) => this.#byGateway.get(gatewayId)?.endpoint?.reshare(group, filter, message, avoid) ?? false,
      counted: (gatewayId, repicked) => {
        const counters = this.#countersOf(gatewayId);
        if (repicked) counters.sharedRepicked++;
        else counters.sharedUndeliverable++;
      },
      logger: this.#logger,
      heartbeatMs,
    });
  }

  /** QoS 1/2 messages sent to other nodes for shared groups and not yet completed there (tests). */
  get sharedKept(): number {
    return this.#relay.kept;
  }

  open(gatewayId: string): ClusterLink {
    const counters = this.#countersOf(gatewayId);
    const logger = this.#logger.child({ gatewayId });
    const ownership = new SessionOwnership(this.#conn, this.#records, gatewayId, this.#me, logger, () => link.endpoint);
    const link: NatsGatewayLink = new NatsGatewayLink(this.#conn, `${this.#conn.prefix}.route.${gatewayId}`, counters, logger,
      new RetainedReplica(this.#conn, gatewayId, counters, logger),
      ownership,
      new SharedDirectory(this.#conn, gatewayId, this.#me.instance, this.#dead, logger, async () => {
        // The feed's position first (it starts with the engine's interest), then the lease that says it.
        await link.durable.ready();
        await this.renewLease?.();
      }),
      (node, group, filter, message) => this.#relay.send(gatewayId, node, group, filter, message),
      new DurableMessages(this.#conn, this.#stream, gatewayId, this.#me.instance, counters, logger, this.#relay,
        () => link.endpoint),
      new GatewayConnectionCounts(this.#conn, this.#countsBucket, gatewayId, `${this.#me.instance}.${++this.#engines}`,
        { heartbeatMs: this.#heartbeatMs, leaseMs: this.#cutOffMs }, logger),
      new GatewaySessionCounts(this.#conn, this.#sessionCountsBucket, gatewayId, `${this.#me.instance}.${this.#engines}`,
        this.#cutOffMs, this.#liveInstances, logger),
      () => {
        doubts.close();
        this.#open.delete(link);
        if (this.#byGateway.get(gatewayId) === link) this.#byGateway.delete(gatewayId);
      });
    const doubts = new ClaimedDoubts((sinceMs, each) => this.#stream.idsSince(gatewayId, sinceMs, each),
      (clientId, epoch, packetId, uses) => link.landed(clientId, epoch, packetId, uses), logger);
    ownership.unanswered = (clientId, holder, state) => {
      // A holder whose lease is live and whose record said the session offline there wrote what it stored then.
      if (!holder.connected && this.#liveInstances().includes(holder.instance)) return;
      const epoch = state.qos2Epoch;
      const writtenAt = this.leaseWrittenAt?.(holder.instance);
      if (typeof epoch === 'string' && epoch !== '' && writtenAt !== undefined) doubts.add(clientId, epoch, writtenAt);
    };
    this.#open.add(link);
    this.#byGateway.set(gatewayId, link);
    return link;
  }

  /** The session ownership of a gateway running here (the will reaper adopts a dead node's records through it). */
  ownership(gatewayId: string): SessionOwnership | undefined {
    return this.#byGateway.get(gatewayId)?.ownership;
  }

  #onNotice(err: Error | null, msg: Msg): void {
    if (err !== null) {
      this.#logger.error({ err }, 'cluster_session_notices_failed');
      return;
    }
    const respond = (state: SessionState | undefined): void => {
      // Answered after the connection was told to close: the claimer's CONNACK follows this one's DISCONNECT, and the
      // session resumes there from the state it had here at that moment.
      if (msg.reply !== undefined && msg.reply !== '') msg.respond(JSON.stringify(state === undefined ? {} : { state } satisfies NoticeAnswer));
    };
    let claimed: ReturnType<NatsGatewayLink['sessionClaimed']> | undefined;
    try {
      const notice = msg.json<SessionNotice>();
      claimed = this.#byGateway.get(notice.gatewayId)?.sessionClaimed(notice.clientId, notice.revision);
    } catch (error) {
      this.#logger.warn({ err: error }, 'cluster_session_notice_unreadable');
    }
    if (claimed instanceof Promise) void claimed.then(respond);
    else respond(claimed);
  }

  #onState(state: 'connected' | 'disconnected' | 'closed'): void {
    if (state === 'disconnected') this.#wasCutOff = true;
    else if (state === 'connected' && this.#wasCutOff) {
      this.#wasCutOff = false;
      // Notices of claims made while this node was away were lost: read every session record it holds again.
      for (const link of this.#byGateway.values()) void link.ownership.revalidate();
      // QoS 1/2 messages stored while this node was away reached no subscriber here: read them from the stream.
      for (const link of this.#open) link.durable.reconnected();
    }
    if (state === 'disconnected' && this.#cutOffTimer === null) {
      this.#cutOffTimer = setTimeout(() => {
        this.#cutOffTimer = null;
        this.#logger.warn({ cutOffMs: this.#cutOffMs, gateways: this.#open.size }, 'cluster_cut_off_past_lease');
        for (const link of [...this.#open]) link.cutOff();
        // The survivors take its sessions from now on, and settle their in-doubt QoS 2 stores by asking the stream
        // (will-reaper.ts): a store of this node's still waiting to be retried must not land after that answer.
        this.#stream.cancelAll();
      }, this.#cutOffMs);
      this.#cutOffTimer.unref();
    } else if (state !== 'disconnected') {
      this.#stopTimer();
    }
  }

  #stopTimer(): void {
    if (this.#cutOffTimer !== null) clearTimeout(this.#cutOffTimer);
    this.#cutOffTimer = null;
  }

  /** The ids of the gateway's messages stored from `sinceMs` on (MessageStream.idsSince). */
  storedIdsSince(gatewayId: string, sinceMs: number, each: (msgId: string) => void): Promise<number> {
    return this.#stream.idsSince(gatewayId, sinceMs, each);
  }

  /** Stops watching the connection (the node stops). */
  close(): void {
    this.#stopTimer();
    this.#offState();
    this.#notices.unsubscribe();
    this.#relay.close();
    this.#stream.close();
  }

  /** Per gateway, for metrics (a gateway's counters outlive its engine's restarts). */
  counters(): ReadonlyMap<string, Readonly<LinkCounters>> {
    return this.#counters;
  }
}

class NatsGatewayLink implements ClusterLink {
  readonly #conn: ClusterConnection;
  readonly #subject: string;
  readonly #counters: LinkCounters;
  readonly #logger: Logger;
  readonly #retained: RetainedReplica;
  readonly ownership: SessionOwnership;
  readonly shared: SharedDirectory;
  readonly #sendShared: ClusterLink['forwardShared'];
  readonly durable: DurableMessages;
  readonly connections: GatewayConnectionCounts;
  readonly sessionCounts: GatewaySessionCounts;
  readonly #states: SessionStates;
  readonly #onClose: () => void;
  #endpoint: LinkEndpoint | null = null;
  #subscription: Subscription | null = null;
  #settling: Promise<void> | undefined;
  #closed = false;
  /** A run of forwards dropped for the budget is logged once, at its first; it ends at the next one forwarded. */
  #dropping = false;
  /** This turn's QoS 0 forwards, in order, and their bytes: sent together at the turn's end (or once past the batch's bound). */
  #batch: Buffer[] = [];
  #batchBytes = 0;
  #batchScheduled = false;

  constructor(conn: ClusterConnection, subject: string, counters: LinkCounters, logger: Logger, retained: RetainedReplica,
    ownership: SessionOwnership, shared: SharedDirectory, sendShared: ClusterLink['forwardShared'], durable: DurableMessages,
    connections: GatewayConnectionCounts, sessionCounts: GatewaySessionCounts, onClose: () => void) {
    this.#conn = conn;
    this.#subject = subject;
    this.#counters = counters;
    this.#logger = logger;
    this.#retained = retained;
    this.ownership = ownership;
    this.shared = shared;
    this.#sendShared = sendShared;
    this.durable = durable;
    this.connections = connections;
    this.sessionCounts = sessionCounts;
    this.#states = new SessionStates(ownership, () => durable.position(), () => durable.ready(), logger, () => durable.nextStoreId());
    this.#onClose = onClose;
  }

  get endpoint(): LinkEndpoint | null {
    return this.#endpoint;
  }

  claimSession(clientId: string, owner: string | undefined, will: RecordedWill | null, clean: boolean): Promise<SessionClaim | 'owned' | 'lost'> {
    return this.ownership.claim(clientId, owner, will, clean);
  }

  /** A store of the session's client that the process it was claimed from made and its record did not name (claimed-doubts.ts). */
  landed(clientId: string, epoch: string, packetId: number, uses: number): boolean {
    if (this.#closed || !this.#states.landed(clientId, epoch, packetId, uses)) return false;
    this.#endpoint?.landedQos2(clientId, packetId);
    return true;
  }

  /**
   * Another node's claim of a session (its notice): the connection here goes (0x8E), and the state the session had
   * here at that moment goes to the claimer, if this node let it go (not when it claimed it again since).
   */
  sessionClaimed(clientId: string, revision: number): SessionState | undefined | Promise<SessionState | undefined> {
    const state = this.#states.handOver(clientId);
    // Read before the move drops the session here.
    const { received, storing } = this.#endpoint?.receivedQos2(clientId) ?? { received: [], storing: [] };
    if (!this.ownership.moved(clientId, revision) || state === undefined) return undefined;
    const withReceived = (ids: number[]): SessionState => {
      const all = [...new Set([...(state.received ?? []), ...ids])];
      return all.length > 0 ? { ...state, received: all } : state;
    };
    if (storing.length === 0) return withReceived(received);
    // A QoS 2 message still being stored: its PUBREC never reached the client, which sends it again, with DUP, to the
    // claimer. Stored, it must be known there as received, or it is stored and delivered twice [MQTT-4.3.3-10]. The
    // answer waits for the stores (bounded below the claimer's wait for it); one not done by then is left out.
    return outcomesWithin(storing.map(([, stored]) => stored), STORING_WAIT_MS).then((outcomes) => {
      const stored = storing.filter((_, i) => outcomes[i] === true).map(([id]) => id);
      return withReceived([...received, ...stored]);
    });
  }

  /**
   * The messages of a moved session's flows that were sent and not acknowledged, read back from the stream to be
   * resent under their packet ids [MQTT-4.4.0-1]: at most MAX_FLOW_BYTES of them (what its node held in flight, and
   * the engine's own queue bound); one over it, or gone from the stream, is left out and replayed as a new delivery.
   */
  async readFlows(flows: MovedFlow[]): Promise<MovedFlow[]> {
    const read = new Map<number, Message>();
    const unreleased = flows.filter((f) => !f.released);
    let bytes = 0;
    // A few at a time (the replays' bound on reads), so a window of a thousand flows is not a thousand round trips.
    for (let i = 0; i < unreleased.length && bytes <= MAX_FLOW_BYTES; i += FLOW_READS_AT_ONCE) {
      const batch = unreleased.slice(i, i + FLOW_READS_AT_ONCE);
      const messages = await Promise.all(batch.map((flow) => this.durable.read(flow.seq).catch((err: unknown) => {
        this.#logger.warn({ err, seq: flow.seq }, 'cluster_session_flow_unread');
        return null;
      })));
      for (let k = 0; k < batch.length; k++) {
        const message = messages[k];
        if (message === null || message === undefined) continue;
        bytes += message.topic.length + message.payload.length;
        read.set(batch[k]!.seq, message);
      }
    }
    const kept: MovedFlow[] = [];
    for (const flow of flows) {
      if (flow.released) kept.push(flow);
      else {
        const message = read.get(flow.seq);
        if (message !== undefined) kept.push({ ...flow, message });
      }
    }
    return kept;
  }

  sessionChanged(clientId: string, subscriptions: StoredSubscription[] | null): void {
    if (!this.#closed) this.#states.changed(clientId, subscriptions);
  }

  qos2Receiving(clientId: string, packetId: number): Qos2Intent | undefined {
    if (this.#closed) return undefined;
    return this.#states.receiving(clientId, packetId);
  }

  qos2Received(clientId: string, packetId: number): void {
    if (!this.#closed) this.#states.received(clientId, packetId);
  }

  qos2Released(clientId: string, packetId: number): Promise<boolean> | undefined {
    return this.#closed ? undefined : this.#states.released(clientId, packetId);
  }

  delivered(clientId: string, seq: number, qos: 1 | 2): StoredDelivery | undefined {
    return this.#states.delivered(clientId, seq, qos);
  }

  replay(clientId: string, moved: MovedSession, hand: (message: Message, seq: number) => void, caughtUp: () => void,
    full: () => boolean | null): void {
    this.#states.replaying(clientId, moved);
    if (moved.subscriptions.length === 0 && moved.queued.length === 0) {
      // Nothing of the stream can reach it: nothing to read (a session without subscriptions has no useful floor).
      this.#states.caughtUp(clientId);
      caughtUp();
      return;
    }
    const skip = new Set(moved.inflight.map((f) => f.seq));
    this.durable.replay(moved.floor, skip, hand, (seq) => this.#states.replayed(clientId, seq), () => {
      this.#states.caughtUp(clientId);
      caughtUp();
    }, full, moved.queued.at(-1)?.seq ?? 0).catch((err: unknown) => {
      if (!this.#closed && full() !== null) this.#logger.error({ err, clientId }, 'cluster_replay_failed');
    });
  }

  connectedElsewhere(clientId: string): Promise<boolean> {
    return this.ownership.connectedElsewhere(clientId);
  }

  sessionRecorded(clientId: string, owner: string): Promise<boolean> {
    return this.ownership.recorded(clientId, owner);
  }

  connectionEnded(clientId: string, end: ConnectionEnd): Promise<boolean> {
    if (this.#closed) return Promise.resolve(false); // the node stops: the survivors publish what the records hold
    return this.ownership.connectionEnded(clientId, end);
  }

  takeWill(clientId: string): Promise<boolean> {
    if (this.#closed) return Promise.resolve(false);
    return this.ownership.takeWill(clientId);
  }

  bind(endpoint: LinkEndpoint): void {
    this.#endpoint = endpoint;
    this.#retained.start((message) => this.#endpoint?.retained(message), () => this.#endpoint?.retainedHeld() ?? []);
    this.shared.start((group, filter, nodes) => this.#endpoint?.sharedElsewhere(group, filter, nodes));
  }

  sharedInterest(group: string, filter: string, present: boolean): void {
    if (!this.#closed) this.shared.set(group, filter, present);
  }

  forwardShared(node: string, group: string, filter: string, message: Message): void {
    if (!this.#closed) this.#sendShared(node, group, filter, message);
  }

  retain(message: Message): Promise<void> {
    return this.#retained.put(message);
  }

  retainedSettled(): Promise<void> {
    return this.#retained.settled();
  }

  reachable(): boolean {
    return this.#conn.state === 'connected';
  }

  /** The node has been cut off past its lease (NatsClusterLinks decides when). */
  cutOff(): void {
    this.#endpoint?.cutOff();
  }

  forward(message: Message): void {
    if (this.#closed) return;
    const frame = encodeMessage(message);
    if (this.#batch.length > 0 && batchOverhead(this.#batch.length + 1) + this.#batchBytes + frame.length > MAX_FORWARD_BATCH_BYTES) this.#sendBatch();
    this.#batch.push(frame);
    this.#batchBytes += frame.length;
    if (!this.#batchScheduled) {
      this.#batchScheduled = true;
      // After the turn's I/O: the messages every connection read in it go together (the broker's own writes wait as long).
      setImmediate(() => {
        this.#batchScheduled = false;
        this.#sendBatch();
      });
    }
  }

  /** Publishes the turn's forwards, in order, as one NATS message. */
  #sendBatch(): void {
    const frames = this.#batch;
    if (frames.length === 0) return;
    const data = frames.length === 1 ? frames[0]! : encodeBatch(frames, this.#batchBytes);
    this.#batch = [];
    this.#batchBytes = 0;
    try {
      // `nc.publish` never waits: with NATS not reading, a device's QoS 0 flood would pile up in the client's
      // buffer without a bound (issue 12). At most once, so past the node's budget it is dropped and counted.
      const budget = this.#conn.budget;
      if (!budget.admit(data.length)) {
        this.#counters.forwardDropped += frames.length;
        if (!this.#dropping) {
          this.#dropping = true;
          this.#logger.warn({ unconfirmedBytes: budget.unconfirmed, limit: budget.maxBytes }, 'cluster_forwards_dropped_nats_behind');
        }
        return;
      }
      if (this.#dropping) {
        this.#dropping = false;
        this.#logger.info({ dropped: this.#counters.forwardDropped }, 'cluster_forwards_sent_again');
      }
      this.#conn.nc.publish(this.#subject, data);
      this.#counters.forwarded += frames.length;
    } catch (err) {
      this.#counters.forwardFailed += frames.length;
      this.#logger.debug({ err }, 'cluster_forward_failed');
    }
  }

  store(message: Message, picks: readonly SharedPick[], storeId?: string): Promise<boolean> {
    if (this.#closed) return Promise.resolve(false);
    return this.durable.store(message, picks, storeId);
  }

  interest(present: boolean): void {
    if (this.#closed) return;
    if (present && this.#subscription === null) {
      try {
        this.#subscription = this.#conn.nc.subscribe(this.#subject, { callback: (err, msg) => this.#onMessage(err, msg) });
      } catch (err) {
        this.#logger.error({ err }, 'cluster_subscribe_failed');
        return;
      }
      // A PING answered means the server has the SUB: whatever another node publishes from now reaches us; the QoS 1/2
      // feed is in force once it read where the gateway's stream stands and subscribed.
      const settling: Promise<void> = settledWithin(Promise.all([this.#conn.nc.flush(), this.durable.start()])
        .catch((err: unknown) => this.#logger.warn({ err }, 'cluster_interest_unconfirmed')), SETTLE_TIMEOUT_MS)
        .finally(() => {
          if (this.#settling === settling) this.#settling = undefined;
        });
      this.#settling = settling;
    } else if (!present && this.#subscription !== null) {
      this.#subscription.unsubscribe();
      this.#subscription = null;
      this.durable.stop();
    }
  }

  settled(): Promise<void> | undefined {
    const waits = [this.#settling, this.shared.settled(), this.#states.settled()].filter((p) => p !== undefined);
    if (waits.length === 0) return undefined;
    return waits.length === 1 ? waits[0] : Promise.all(waits).then(() => undefined);
  }

  saveSessions(): Promise<void> {
    return this.#closed ? Promise.resolve() : this.#states.saveAll();
  }

  close(): void {
    this.#sendBatch(); // what the engine forwarded before it closed still goes
    this.#closed = true;
    this.#subscription?.unsubscribe();
    this.#subscription = null;
    this.#endpoint = null;
    this.durable.close();
    this.connections.close();
    this.sessionCounts.close();
    this.#states.close();
    this.#retained.close();
    this.shared.close();
    this.#onClose();
  }

  #onMessage(err: Error | null, msg: Msg): void {
    if (err !== null) {
      this.#logger.error({ err }, 'cluster_subscription_failed');
      return;
    }
    let messages: Message[];
    try {
      messages = decodeFrames(msg.data);
    } catch (error) {
      this.#counters.received++;
      this.#counters.malformed++;
      this.#logger.warn({ err: error }, 'cluster_message_unreadable');
      return;
    }
    this.#counters.received += messages.length;
    for (const message of messages) this.#endpoint?.receive(message);
  }
}

/** Each promise's value, or undefined for one not settled within `ms` (or rejected). */
async function outcomesWithin<T>(promises: readonly Promise<T>[], ms: number): Promise<(T | undefined)[]> {
  const outcomes: (T | undefined)[] = promises.map(() => undefined);
  await settledWithin(Promise.all(promises.map((p, i) => p.then((value) => void (outcomes[i] = value), () => undefined))), ms);
  return outcomes.slice();
}
