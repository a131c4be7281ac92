/**
 * The engine's seam to other nodes of a cluster, beside its persistence: after local routing a
 * message goes to the other nodes that have subscribers in this engine's topic space, and their
 * messages come back in through `Broker` as if published here (minus the publisher-side work: no
 * `message_published`, no retained store, never forwarded again). The engine says whether it has
 * subscriptions at all, so a node receives a topic space's traffic only while someone here listens.
 * The engine knows nothing of what carries the messages (src/cluster/ holds the NATS link); without
 * a cluster there is no link and the publish path pays one null check.
 *
 * Shared subscriptions span the nodes (issue 16 item 5): each node tells the link when it gets its first
 * member of a group and loses its last, and the link tells the engine which other nodes hold members of
 * each group. The node a message is published on picks each matching group's member among its own members
 * and those nodes (once each); a pick that falls on another node sends the message there alone, for one of
 * that node's members, and the message every node receives through `forward` skips shared groups. A group
 * with members on one node only is picked in memory, as in a single process.
 *
 * Retained messages live in the cluster's store (issue 16 item 4): each engine keeps the whole set of its
 * topic space in its own store, as before, and follows the cluster's.
 *
 * A node that cannot reach the others fails closed (issue 16 item 8): while `reachable()` is false the
 * engine refuses new CONNECTs (0x88, v3.1.1 3) and acknowledges no QoS 1/2 PUBLISH; a node cut off
 * longer than its lease is dead to the others, and the link's `cutOff` ends every connection here.
 */
import type { Message } from './message.ts';
import type { SharedPick } from './router.ts';
import type { StoredSubscription } from './persistence.ts';

/**
 * A will as the cluster's session record keeps it (issue 16 items 3 and 6): the node holding the connection
 * may die, and another node then publishes it. Only a will the client's publish authorization allowed at
 * CONNECT is recorded (a survivor has no connection to ask the hook with).
 */
export interface RecordedWill {
  message: Message;
  /** Will Delay Interval, seconds [MQTT-3.1.3-9]. */
  delay: number;
  /** The will's Message Expiry Interval (seconds, 0 = none), applied when it is published. */
  expiry: number;
}

/**
 * A persistent session's state as the cluster's record keeps it (issue 16 item 2, step b), for a node that takes the
 * session over after the node holding it died or lost it: its subscriptions, the stream sequence every stored message
 * at or below which is done for it (`floor`), and its deliveries that hold a packet id (`inflight`, in stream order):
 * sent and unacknowledged (`message` read back from the stream, resent with DUP under the same id [MQTT-4.4.0-1]), or
 * past their PUBREC (`released`: only the PUBREL is owed, the client has the message).
 */
export interface MovedSession {
  subscriptions: StoredSubscription[];
  floor: number;
  inflight: MovedFlow[];
  /**
   * Stored messages queued for the session there and not yet sent, in stream order, with the QoS they were queued at:
   * the replay delivers them even if no subscription matches them now (one removed while they waited).
   */
  queued: MovedQueued[];
  /** Inbound QoS 2 packet ids whose message the stream holds, PUBREL not come yet (a live takeover hands them over). */
  received: number[];
  /**
   * Inbound QoS 2 packet ids whose message was being stored, PUBREL not come, each with the stream message id it was
   * stored under: the client's resend is stored under the same id, which the stream drops if the first store landed.
   */
  receiving: MovedReceiving[];
  /** The epoch of the session's inbound QoS 2 store ids and each packet id's uses in it (the cluster link's own). */
  qos2Epoch: string | undefined;
  qos2Uses: [number, number][];
}

export interface MovedReceiving {
  packetId: number;
  storeId: string;
}

/** An inbound QoS 2 message's store id, picked and being written into its session's record before the store is made. */
export interface Qos2Intent {
  storeId: string;
  /** Settles once the record holds it: true, or false when it could not be written (undefined: it already was). */
  written: Promise<boolean> | undefined;
}

export interface MovedQueued {
  seq: number;
  qos: 1 | 2;
}

export interface MovedFlow {
  seq: number;
  /** 0: a QoS 2 delivery completed there (the replay skips it, nothing is resent). */
  packetId: number;
  qos: 1 | 2;
  released: boolean;
  /** The stored message, for a flow not released; absent: the stream no longer has it (or the read was over its bound). */
  message?: Message;
}

/** Told how one stored QoS 1/2 message handed to a persistent session here goes (the record follows it). */
export interface StoredDelivery {
  /** PUBACK / PUBCOMP (their reason code), or dropped (session.ts `DeliveryEnd`): done either way. */
  readonly onComplete: (end: number) => void;
  /**
   * Its PUBLISH got packet id `packetId`: a promise for a QoS 2 one (the record's write, which the PUBLISH waits for
   * through the engine's commit gate), undefined for QoS 1 (written with the floor). False: the write found the session
   * claimed by another node, which sends the message from its record — this PUBLISH must not leave [MQTT-4.3.3].
   */
  readonly onSent: (packetId: number, qos: number) => Promise<boolean> | undefined;
  /**
   * QoS 2 PUBREC: resolves once the record says so; the PUBREL waits for it (a replay must not resend it). False, as
   * for `onSent`: the PUBREL must not leave (the claiming node resends the PUBLISH, and the client's PUBREC to it
   * brings the PUBREL from there).
   */
  readonly onReceived: (packetId: number) => Promise<boolean>;
}

/** What the cluster's session record said when a CONNECT here claimed the session. */
export interface SessionClaim {
  /**
   * This node held the session last (or nobody did): its state here is the session's state. Otherwise the
   * state stayed with the node that held it, and the session starts clean here (Session Present 0).
   */
  local: boolean;
  /**
   * The will of a connection on another node that this claim ended, to publish now (a Will Delay of 0:
   * the new connection does not cancel it [MQTT-3.1.3-9]); the claim won the record, so no other node does.
   */
  displacedWill: RecordedWill | null;
  /**
   * The session's state as the record holds it (absent with Clean Start, or when none was written): a CONNECT without
   * Clean Start resumes it here (Session Present 1), its backlog replayed from the cluster's stream, unless this
   * engine holds the session itself (`local`, and still in memory).
   */
  moved?: MovedSession;
}

/** How a connection's end leaves its session in the cluster's record. */
export interface ConnectionEnd {
  /** The will still due (not after DISCONNECT 0x00 [MQTT-3.1.2-10]), with its delay already min(Will Delay, Session Expiry). */
  will: RecordedWill | null;
  /** Session Expiry 0: the session ends with the connection and its record goes. */
  sessionEnds: boolean;
}

/** What the engine hands its link. */
export interface LinkEndpoint {
  /**
   * A message published on another node (QoS 0), or a QoS 1/2 message the cluster stored (`seq`: its stream
   * sequence, in order): for this node's subscribers.
   */
  receive(message: Message, seq?: number): void;
  /**
   * A topic's retained message as the cluster's store holds it (set or cleared, empty payload, on any node,
   * this one included, or before this engine started): this engine's store follows it.
   */
  retained(message: Message): void;
  /**
   * Every retained message this engine holds now, read one by one as iterated (a payload that left memory is read
   * back from the engine's store then): for the cluster's store when it lost what it held.
   */
  retainedHeld(): Iterable<Message>;
  /**
   * This node has been cut off from the cluster longer than its lease: the other nodes count it dead
   * (they may take its sessions over), so its clients must go and reconnect to a node that is alive.
   */
  cutOff(): void;
  /**
   * Another node claimed this session (a CONNECT there with its client id): the connection here, if any,
   * is closed (v5: 0x8E [MQTT-3.1.4-3]) without its will (the claiming node handles it) and the session's
   * state here is dropped (it is not this node's any more).
   */
  sessionMoved(clientId: string): void;
  /** A will this node claimed in the cluster's records (a dead node's client's): publish it now. */
  publishWill(will: RecordedWill): void;
  /**
   * The session's inbound QoS 2 packet ids whose PUBREL has not come, what another node's claim of it takes along:
   * `received`, those whose message the stream holds (PUBREC sent or on its way); `storing`, those whose store is
   * still in flight, each with its store (true: the stream holds it).
   */
  receivedQos2(clientId: string): { received: number[]; storing: [packetId: number, stored: Promise<boolean | undefined>][] };
  /**
   * A QoS 2 PUBLISH of the session's client, stored by the node it was claimed from, that this node's record did not
   * name (that node died before writing it): the client's resend of that packet id is answered PUBREC with no second
   * store [MQTT-4.3.3-10], as for one received here.
   */
  landedQos2(clientId: string, packetId: number): void;
  /** The other nodes holding members of a shared group now (none: the group has members here only, or nowhere). */
  sharedElsewhere(group: string, filter: string, nodes: readonly string[]): void;
  /**
   * A message a node's pick sent to this node for one member of a shared group here. False: no member is left
   * here (the sender picks again). `done` hears how a QoS 1 delivery to that member ended: true at its PUBACK
   * (whatever its reason code [MQTT-4.8.2-6]), false when it never reached the member (its session ended first,
   * its queue refused it): the sender then gives it to another member. It is called with true at once for QoS 0
   * and for QoS 2, which is that member's to complete and never another's [MQTT-4.8.2-4, MQTT-4.8.2-5].
   */
  receiveShared(group: string, filter: string, message: Message, done: ((delivered: boolean) => void) | undefined): boolean;
  /**
   * A message this node sent to another node for a shared group that did not reach a member there (that node
   * died, or had none left): picked again among the group's candidates, that node excluded. False: nobody is
   * left to pick.
   */
  reshare(group: string, filter: string, message: Message, avoid: string): boolean;
}

/**
 * The gateway's `maxConnections` across the cluster (issue 16): every connection of the engine holds a place from
 * the CONNECT step that takes it until it ends, and the places of all nodes together stay within the limit.
 */
export interface ClusterConnectionCounts {
  /** The limit now (0: none); set at start and by every edit. */
  limit(max: number): void;
  /** Places the other live nodes hold, as last seen (the check before authentication: no request). */
  elsewhere(): number;
  /** Reads the cluster's count now (the view `elsewhere` and `usage` answer from may lag the others' writes). */
  refresh(): Promise<void>;
  /**
   * A place for a CONNECT about to be accepted: true when the cluster holds fewer than the limit (or `force`: a
   * takeover, whose old connection gives its place back), false when full. Rejects when the cluster's count cannot
   * be written (NATS away): the CONNECT is refused, as every CONNECT of a cut-off node is.
   */
  take(force: boolean): boolean | Promise<boolean>;
  /** A place taken is given back: its connection ended, or its CONNECT did not reach CONNACK. */
  give(): void;
  /** A CONNECT refused for the limit on this node. */
  refused(): void;
  /** Places held and refusals counted on every live node (the gateway's limitsUsage). */
  usage(): { current: number; hits: number };
}

/** This engine's sessions per owner, as `ClusterSessionCounts` reads them (the engine's count is this node's part). */
export interface SessionsHere {
  of(owner: string): number;
  all(): Iterable<[owner: string, sessions: number]>;
}

/**
 * The gateway's `maxSessionsPerOwner` across the cluster (issue 16): the sessions of one owner on all nodes together
 * stay within the limit. The engine's own sessions are its part; a new one takes a place from the CONNECT step that
 * judges it until its session is opened (or the CONNECT failed).
 */
export interface ClusterSessionCounts {
  /** The limit now (0: none), set at start and by every edit, and where this engine's sessions per owner are read. */
  limit(max: number, here: SessionsHere): void;
  /**
   * A place for one more session of `owner` here: true when the owner holds fewer than the limit on every live node
   * together (places granted and not yet settled included). Rejects when the count cannot be written (NATS away):
   * the CONNECT is refused, as every CONNECT of a cut-off node is.
   */
  take(owner: string): Promise<boolean>;
  /** A place `take` granted is done with: its session is open here (counted by the engine now) or its CONNECT failed. */
  settle(owner: string): void;
  /** This engine's sessions of `owner` changed (one opened, ended, expired or moved to another node). */
  changed(owner: string): void;
  /** The sessions of `owner` on every live node, as last seen. */
  count(owner: string): number;
  /** The most sessions one owner holds on every live node, among the owners of this engine's sessions (the use shown). */
  most(): number;
}

export interface ClusterLink {
  /** The gateway's maxConnections across the cluster. */
  readonly connections: ClusterConnectionCounts;
  /** The gateway's maxSessionsPerOwner across the cluster. */
  readonly sessionCounts: ClusterSessionCounts;
  /**
   * Whether the cluster's record holds a session of `clientId` created by `owner` (on any node): taking it over is not
   * one more session of that owner, so the limit lets it through as it lets through a session this engine holds.
   */
  sessionRecorded(clientId: string, owner: string): Promise<boolean>;
  /**
   * Whether the session of `clientId` is connected on another node, as the cluster's record says: a CONNECT taking it
   * over frees a place there, so the limit lets it through as it lets through a takeover on this node.
   */
  connectedElsewhere(clientId: string): Promise<boolean>;
  /** Called once by the engine, when it has restored its own state (`Broker.restore`). */
  bind(endpoint: LinkEndpoint): void;
  /** A QoS 0 message published on this node, already routed here: for the other nodes' subscribers (at most once). */
  forward(message: Message): void;
  /**
   * A QoS 1/2 message published on this node (issue 16 item 2), NOT routed here: stored in the cluster's stream,
   * from which every node's subscribers get it, this node's included (through `LinkEndpoint.receive`), once each.
   * Resolves true once the stream holds it — the PUBACK / PUBREC waits for it, so an acknowledged message survives
   * the death of this node — and false when the stream refused it (nothing is delivered anywhere). `picks`: the
   * node this one picked for each matching shared group (null: this node), stored with the message; every node
   * delivers to the non-shared subscribers and to the groups picked for it alone (through `receiveShared`).
   */
  store(message: Message, picks: readonly SharedPick[], storeId?: string): Promise<boolean>;
  /** Whether this engine has subscriptions (true at the first, false when the last one goes). */
  interest(present: boolean): void;
  /** Whether this engine has members of a shared group (true at the first, false when the last one goes). */
  sharedInterest(group: string, filter: string, present: boolean): void;
  /** A message published here whose shared group's pick fell on another node (`node`): for one member there. */
  forwardShared(node: string, group: string, filter: string, message: Message): void;
  /**
   * Resolves once the interest last declared (shared groups' included) is in force across the cluster, or
   * undefined when it is already: a SUBACK waits for it, so a message published anywhere after the SUBACK
   * reaches the subscriber (a shared group's: once the other nodes read the group's record, which they follow).
   */
  settled(): Promise<void> | undefined;
  /**
   * A retained message set or cleared here, already in this engine's store: for the cluster's store, which
   * the other nodes (and those that start later) follow. Resolves once that store holds it: the PUBACK
   * waits for it, so a subscriber anywhere after the PUBACK gets it.
   */
  retain(message: Message): Promise<void>;
  /**
   * Resolves once this engine's store holds every retained message the cluster's store held when called
   * (undefined: it already does): retained messages for a new subscription are read after it.
   */
  retainedSettled(): Promise<void> | undefined;
  /**
   * Claims the session of `clientId` for a CONNECT on this node (issue 16 item 3): a compare-and-swap on the
   * cluster's session record, so of two nodes claiming at once one wins and the other's write fails. Once it
   * resolves the node that held it has closed its connection (or could not be reached in a bounded time).
   * `'owned'`: the session belongs to another principal (`owner`); `'lost'`: a later claim elsewhere won. `clean`: the
   * CONNECT's Clean Start, which discards the state the record holds [MQTT-3.1.2-4].
   */
  claimSession(clientId: string, owner: string | undefined, will: RecordedWill | null, clean: boolean): Promise<SessionClaim | 'owned' | 'lost'>;
  /**
   * The connection of the session claimed here ended (not taken over on this node). Resolves true when this
   * node still held the record and wrote the end into it: only then may it publish the will (now, or when
   * `takeWill` says so after the delay). False: another node holds the session, or NATS could not be reached.
   */
  connectionEnded(clientId: string, end: ConnectionEnd): Promise<boolean>;
  /** A delayed will is due: true when this node took it out of the record (and publishes it; nobody else will). */
  takeWill(clientId: string): Promise<boolean>;
  /** Whether the other nodes can be reached now (false: this node is cut off, and fails closed). */
  reachable(): boolean;
  /**
   * A persistent session here changed its subscriptions (null: the session ended here, or moved away): the cluster's
   * record follows, so another node can resume it. Only sessions with a Session Expiry are told.
   */
  sessionChanged(clientId: string, subscriptions: StoredSubscription[] | null): void;
  /**
   * The messages of a moved session's flows that were sent and not acknowledged, read back from the cluster's stream
   * to be resent under their packet ids [MQTT-4.4.0-1]; bounded in bytes: a flow left out (over it, or gone from the
   * stream) is not in the answer, and its message is replayed as a new delivery.
   */
  readFlows(flows: MovedFlow[]): Promise<MovedFlow[]>;
  /**
   * An inbound QoS 2 PUBLISH of a persistent session, before it is stored: picks the stream message id it is stored
   * under (`store`'s `storeId`) and writes it into the session's record first, so a node that resumes the session after
   * this one's death stores the client's resend under the same id, and the stream keeps one copy whether or not this
   * node's store landed [MQTT-4.3.3-10]. A packet id already receiving (resumed here) keeps its id, nothing to write.
   * Undefined: the session is not tracked (no Session Expiry): stored as any message.
   */
  qos2Receiving(clientId: string, packetId: number): Qos2Intent | undefined;
  /** That message stored: the record learns the id as `received` with its next write (a resend then needs no store). */
  qos2Received(clientId: string, packetId: number): void;
  /**
   * An inbound QoS 2 packet id released (PUBREL): the record lets it go before its PUBCOMP leaves, so a node resuming
   * the session never takes a reused id for a resend. Settles once written (or not); undefined: nothing to wait for.
   */
  qos2Released(clientId: string, packetId: number): Promise<boolean> | undefined;
  /** A stored message (`seq`) handed to a tracked persistent session at QoS 1/2 (`qos`); undefined: the session is not tracked. */
  delivered(clientId: string, seq: number, qos: 1 | 2): StoredDelivery | undefined;
  /**
   * A session resumed here from another node's record: hands it the stored messages after `moved.floor` (those of
   * `moved.inflight` skipped: the engine restored them), in order, through `hand`, and calls `caughtUp` in the turn it
   * reaches the live feed: from then the feed's messages reach it as any subscriber's. Reads one message at a time
   * (and a bounded number for all the gateway's replays at once), and waits while `full()` is true (the session holds
   * as much queued as a replay may give it); null: the session is gone here, the replay stops.
   */
  replay(clientId: string, moved: MovedSession, hand: (message: Message, seq: number) => void, caughtUp: () => void,
    full: () => boolean | null): void;
  /**
   * The engine stops, its clients still connected: the record of every persistent session held here gets its state as
   * of now (the lazy writes are up to a second behind), so the node that resumes one gets what it was still owed
   * here, queued messages included. Resolves once written, failed, or after a bound (NATS slow or away).
   */
  saveSessions(): Promise<void>;
  /** The engine stops: no more messages either way. */
  close(): void;
}
