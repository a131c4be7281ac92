/**
 * Session state that outlives a network connection (spec §4.1): subscriptions, outbound QoS 1/2
 * messages in flight or queued, inbound QoS 2 packet ids awaiting PUBREL.
 */
import type { QoS } from '../mqtt/codec.ts';
import { isExpired, type Message } from './message.ts';
import type { RetainedRef } from './retained.ts';
import type { BrokerStats } from './stats.ts';
import type { LongTimer } from './long-timer.ts';
import type { Journal } from './journal.ts';
import { storedSubscription, type StoredOutbound, type StoredSession } from './persistence.ts';
import { InflightTable } from './inflight-table.ts';
import { RingQueue } from './ring-queue.ts';

const NO_SUBSCRIPTIONS: readonly Subscription[] = [];

/** What a queued message counts against `maxQueuedBytes`: its payload and its topic. */
function queuedSize(entry: { message: Message }): number {
  return entry.message.payload.length + entry.message.topic.length;
}

/** How a session reaches its client while one is connected. Implemented by `Connection`. */
export interface SessionLink {
  /** Outbound QoS 1/2 messages the client accepts unacknowledged (its Receive Maximum, capped). */
  readonly sendQuota: number;
  /** The socket has more buffered than allowed: hold QoS 1/2, drop QoS 0. */
  readonly congested: boolean;
  /** Returns false when the message was not sent because it exceeds the client's Maximum Packet Size. */
  sendPublish(m: Message, qos: QoS, retain: boolean, packetId: number, dup: boolean, subIds: readonly number[] | undefined): boolean;
  sendPubrel(packetId: number): void;
}

export interface Subscription {
  readonly session: Session;
  /** The filter as the client sent it (`$share/g/a/+` included): the key within the session. */
  readonly raw: string;
  /** The filter that is matched (`a/+`). */
  readonly filter: string;
  readonly group: string | undefined;
  qos: QoS;
  noLocal: boolean;
  retainAsPublished: boolean;
  retainHandling: number;
  subscriptionId: number | undefined;
  /** Its session ended: matched no more, while the router takes it out of its trie (Router.retire). */
  retired?: boolean;
}

/** What a SUBSCRIBE sets for one filter, besides the filter itself. */
export type SubscriptionOptions = Pick<Subscription, 'qos' | 'noLocal' | 'retainAsPublished' | 'retainHandling' | 'subscriptionId'>;

interface Outbound {
  /** Order within the session (the durable key). */
  seq: number;
  message: Message;
  qos: QoS;
  retain: boolean;
  subIds: readonly number[] | undefined;
  packetId: number;
  /** 'publish': waiting for PUBACK/PUBREC; 'pubrel': PUBREL sent, waiting for PUBCOMP. */
  state: 'publish' | 'pubrel';
  /** Told how this flow ended (see `DeliveryEnd`); not persisted. */
  onComplete?: (end: DeliveryEnd) => void;
  /** A cluster's stored message (issue 16 item 2): the cluster's record follows its flow; not persisted. */
  hooks?: FlowHooks;
}

/** How a cluster's stored message delivered to a persistent session tells the cluster's record of its flow (issue 16). */
export interface FlowHooks {
  /** Its PUBLISH got `packetId`: called in the turn it is queued on the connection, before it can leave. */
  sent?(packetId: number, qos: QoS): void;
  /** Its PUBREC came: the PUBREL waits for this (the record says it was received, so a resume sends only the PUBREL). */
  received?(packetId: number): Promise<void>;
}

/** A flow in flight that another node held (issue 16 item 2), put back to be resent on the next CONNACK [MQTT-4.4.0-1]. */
export interface RestoredFlow {
  packetId: number;
  message: Message;
  qos: QoS;
  retain: boolean;
  subIds: readonly number[] | undefined;
  /** 'pubrel': its PUBREC came, only the PUBREL is owed (`message` is a placeholder). */
  state: 'publish' | 'pubrel';
  onComplete?: (end: DeliveryEnd) => void;
  hooks?: FlowHooks;
}

/**
 * How an outbound QoS 1/2 message ended, for whoever waits on it: the client's reason code on the PUBACK,
 * PUBREC (a refusal, ≥ 0x80, ends the flow there) or PUBCOMP — 0 in MQTT 3.1.1, which has none — or
 * `DROPPED` when it never reached the client (queue overflow, expiry, too large for it).
 */
export type DeliveryEnd = number;
/** `DeliveryEnd` of a message that never reached its client. */
export const DROPPED = -1;

/** A message a session owes its client, as an operator sees it (no payload: its size). */
export interface PendingMessage {
  topic: string;
  qos: QoS;
  bytes: number;
  /** IN_FLIGHT: sent, its acknowledgement awaited; QUEUED: waiting for room in the inflight window or for the client. */
  state: 'IN_FLIGHT' | 'QUEUED';
  packetId: number | null;
}

export interface SessionLimits {
  maxQueued: number;
  /** Bytes (payload + topic) queued at most; past it the queue overflows as by count. */
  maxQueuedBytes: number;
  queueOverflow: 'drop-oldest' | 'drop-new';
  /** Bounds the retained messages a session may still owe its client (see `sendRetained`). */
  maxRetained: number;
}

/** Where a session fetches a retained message it owes, whole, when its turn comes. */
export interface RetainedSource {
  get(topic: string, now: number): Message | undefined;
}

/** Retained messages owed to one subscription, sent as the client makes room. */
interface RetainedBacklog {
  readonly raw: string;
  refs: readonly RetainedRef[];
  next: number;
  readonly qos: QoS;
  readonly subIds: readonly number[] | undefined;
  readonly source: RetainedSource;
}

export class Session {
  readonly clientId: string;
  #subscriptions: Map<string, Subscription> | undefined;
  /** Inbound QoS 2 packet ids received and not yet released [MQTT-4.3.3-?]. */
  #incomingQos2: Set<number> | undefined;
  /** Of those, the ones whose message a cluster's stream is still storing (their PUBREC waits for it). */
  #qos2Storing: Map<number, Promise<boolean | undefined>> | undefined;
  /** Of those, the ones resumed from a record whose store may not have landed (see takeQos2Unconfirmed). */
  #qos2Unconfirmed: Set<number> | undefined;
  /** Seconds the session lives after its connection closes; 0xFFFFFFFF = never expires. */
  expiryInterval = 0;
  expiryTimer: LongTimer | undefined;
  /** A will waiting for its delay [MQTT-3.1.3-9]. */
  willTimer: LongTimer | undefined;
  link: SessionLink | null = null;
  /** Epoch ms the last connection closed; null while connected. */
  disconnectedAt: number | null = null;
  /** Set by the engine when durable state is configured. */
  journal: Journal | null = null;
  /** The principal that created the session (`AuthResult.owner`); only it may resume or take it over. */
  owner: string | undefined;
  /**
   * What the authentication hook attached to the connection that last opened this session (in memory
   * only: undefined for a session restored from storage until its client reconnects). Kept while the
   * session is offline so the layer above can judge what it holds again (a gateway's rules changed).
   */
  identity: unknown;

  // Collections are created on first use: most devices hold one session and are idle most of the time.
  #inflightTable: InflightTable<Outbound> | undefined;
  #queue: RingQueue<Outbound> | undefined;
  #retainedBacklog: RetainedBacklog[] | undefined;
  #retainedOwed = 0;
  #queuedBytes = 0;
  #nextPacketId = 1;
  #nextSeq = 1;
  readonly #limits: SessionLimits;
  readonly #stats: BrokerStats;

  constructor(clientId: string, limits: SessionLimits, stats: BrokerStats) {
    this.clientId = clientId;
    this.#limits = limits;
    this.#stats = stats;
  }

  get subscriptions(): Map<string, Subscription> {
    return (this.#subscriptions ??= new Map());
  }

  /** Empties the session's subscriptions (it is ending) and returns them, for the router to forget. */
  takeSubscriptions(): readonly Subscription[] {
    const subs = this.#subscriptions;
    if (subs === undefined) return NO_SUBSCRIPTIONS; // most sessions end without any: no array each
    this.#subscriptions = undefined;
    return [...subs.values()];
  }

  /** Subscriptions held, without creating the map of a session that has none. */
  get subscriptionCount(): number {
    return this.#subscriptions?.size ?? 0;
  }

  /** Inbound QoS 2 packet ids received and not yet released. */
  get incomingQos2(): Set<number> {
    return (this.#incomingQos2 ??= new Set());
  }

  get #inflight(): InflightTable<Outbound> {
    return (this.#inflightTable ??= new InflightTable());
  }

  get inflightCount(): number {
    return this.#inflightTable?.size ?? 0;
  }

  get queuedCount(): number {
    return this.#queue?.length ?? 0;
  }

  /**
   * What the session owes its client, oldest first: the messages in flight (sent, not yet acknowledged),
   * then the queued ones, at most `limit` in all. Views: nothing is taken from the session.
   */
  pendingMessages(limit: number): PendingMessage[] {
    const view = (e: Outbound, state: PendingMessage['state']): PendingMessage =>
      ({ topic: e.message.topic, qos: e.qos, bytes: e.message.payload.length, state, packetId: state === 'QUEUED' ? null : e.packetId });
    const inflight = this.#inflightTable?.ordered().slice(0, limit).map((e) => view(e, 'IN_FLIGHT')) ?? [];
    const queued = this.#queue?.peek(limit - inflight.length).map((e) => view(e, 'QUEUED')) ?? [];
    return [...inflight, ...queued];
  }

  /** Journaled: the session outlives its connection and durable state is configured. */
  get #durable(): boolean {
    return this.journal !== null && this.expiryInterval > 0;
  }

  #record(entry: Outbound): void {
    if (this.#durable) this.journal!.outbound(this.clientId, entry);
  }

  #forget(entry: Outbound): void {
    if (this.#durable) this.journal!.outboundDone(this.clientId, entry.seq);
  }

  /** An outbound message leaves without reaching its client: forgotten, and whoever waits on it is told. */
  #drop(entry: Outbound): void {
    this.#forget(entry);
    entry.onComplete?.(DROPPED);
  }

  /** Expiry, connection state or inbound QoS 2 ids changed. */
  changed(): void {
    if (this.#durable) this.journal!.session(this);
  }

  /** Set by the journal once every filter of this session is in the store (later ones go one by one). */
  subscriptionsStored = false;

  /**
   * Restored from this node's own store at start and not opened by a connection of this process since: on a cluster
   * node the record's state, when it has one, is newer (`Broker.#movedFlows`).
   */
  restoredFromStore = false;

  /** One filter was added or replaced (`sub`) or removed (null): journaled on its own. */
  subscriptionChanged(raw: string, sub: Subscription | null): void {
    if (!this.#durable) return;
    if (this.subscriptionsStored) this.journal!.subscription(this.clientId, raw, sub === null ? null : storedSubscription(sub));
    this.journal!.session(this); // a session not yet stored takes all its filters with its first write
  }

  /**
   * Records an inbound QoS 2 packet id as received (until PUBREL). `storing`: the cluster's stream is storing the
   * message; a resend of the packet id before it is done (the client reconnected meanwhile) waits for the same store.
   */
  takeQos2(packetId: number, storing?: Promise<boolean | undefined>): void {
    this.incomingQos2.add(packetId);
    if (storing !== undefined) {
      this.#qos2Unconfirmed?.delete(packetId);
      const map = (this.#qos2Storing ??= new Map());
      map.set(packetId, storing);
      void storing.finally(() => {
        if (map.get(packetId) === storing) map.delete(packetId);
      });
    }
    this.changed();
  }

  /**
   * An inbound QoS 2 packet id of a session resumed from another node's record whose store that node was making when
   * it went (the record names its stream message id): taken, and its resend is stored again under that id (the
   * stream keeps one copy) instead of acknowledged at once.
   */
  takeQos2Unconfirmed(packetId: number): void {
    (this.#qos2Unconfirmed ??= new Set()).add(packetId);
    this.takeQos2(packetId);
  }

  /**
   * Whether a resend of this packet id must be stored again (see takeQos2Unconfirmed): until a store of it is made
   * (`takeQos2` with its store), or the id is released. A resend that never got that far (its connection closed while
   * it was authorized) leaves the next one to be stored, not acknowledged without a store.
   */
  qos2Unconfirmed(packetId: number): boolean {
    return this.#qos2Unconfirmed?.has(packetId) ?? false;
  }

  /** The store a received QoS 2 packet id's message is still waiting for, if any (see takeQos2). */
  qos2Storing(packetId: number): Promise<boolean | undefined> | undefined {
    return this.#qos2Storing?.get(packetId);
  }

  releaseQos2(packetId: number): boolean {
    this.#qos2Unconfirmed?.delete(packetId);
    const known = this.incomingQos2.delete(packetId);
    if (known) this.changed();
    return known;
  }

  snapshot(): StoredSession {
    return {
      clientId: this.clientId,
      ...(this.owner !== undefined ? { owner: this.owner } : {}),
      expiryInterval: this.expiryInterval,
      disconnectedAt: this.disconnectedAt,
      subscriptions: [], // journaled one by one (subscriptionChanged)
      incomingQos2: [...(this.#incomingQos2 ?? [])],
      ...(this.streamFloor !== undefined ? { streamFloor: this.streamFloor } : {}),
    };
  }

  /** Puts back stored outbound messages (in `seq` order): those with a packet id were in flight. */
  restoreOutbound(records: readonly StoredOutbound[], toMessage: (r: StoredOutbound) => Message): void {
    for (const r of records) {
      const entry: Outbound = { seq: r.seq, message: toMessage(r), qos: r.qos, retain: r.retain, subIds: r.subIds, packetId: r.packetId, state: r.state };
      if (r.packetId > 0) this.#inflight.set(entry);
      else {
        (this.#queue ??= new RingQueue()).push(entry);
        this.#queuedBytes += queuedSize(entry);
      }
      if (r.seq >= this.#nextSeq) this.#nextSeq = r.seq + 1;
      if (r.packetId >= this.#nextPacketId) this.#nextPacketId = r.packetId === 65535 ? 1 : r.packetId + 1;
    }
  }

  /**
   * Hands a matched message to this session at the delivery QoS. Returns false when it was dropped at
   * once (QoS 0: offline, slow consumer, larger than the client accepts; QoS 1/2: refused by the queue or
   * too large). `onComplete` (QoS 1/2) hears how this very message ended: the client's reason code on the
   * PUBACK, PUBREC refusal or PUBCOMP, or `DROPPED` when it was dropped later (queue overflow, expiry, too large
   * when its turn came).
   */
  deliver(message: Message, qos: QoS, retain: boolean, subIds: readonly number[] | undefined, onComplete?: (end: DeliveryEnd) => void,
    hooks?: FlowHooks): boolean {
    const link = this.link;
    if (qos === 0) {
      // QoS 0 is not queued: it goes now or not at all (offline or slow consumer).
      if (link === null) {
        this.#stats.droppedOffline++;
        return false;
      }
      if (link.congested) {
        this.#stats.droppedSlowConsumer++;
        return false;
      }
      return link.sendPublish(message, 0, retain, 0, false, subIds);
    }
    const entry: Outbound = { seq: this.#nextSeq++, message, qos, retain, subIds, packetId: 0, state: 'publish', onComplete, hooks };
    if (link !== null && this.queuedCount === 0 && this.#inflight.size < link.sendQuota && !link.congested) {
      return this.#send(link, entry);
    }
    return this.#enqueue(entry);
  }

  #enqueue(entry: Outbound): boolean {
    const queue = (this.#queue ??= new RingQueue());
    const size = queuedSize(entry);
    const { maxQueued, maxQueuedBytes } = this.#limits;
    if (size > maxQueuedBytes || (this.#limits.queueOverflow === 'drop-new' && (queue.length >= maxQueued || this.#queuedBytes + size > maxQueuedBytes))) {
      this.#stats.droppedQueueFull++;
      if (queue.length < maxQueued) this.#stats.queueDropsOverBytes++;
      return false;
    }
    // drop-oldest: make room in count and in bytes.
    while (queue.length > 0 && (queue.length >= maxQueued || this.#queuedBytes + size > maxQueuedBytes)) {
      this.#stats.droppedQueueFull++;
      if (queue.length < maxQueued) this.#stats.queueDropsOverBytes++;
      const dropped = queue.shift()!;
      this.#queuedBytes -= queuedSize(dropped);
      this.#drop(dropped);
    }
    queue.push(entry);
    this.#queuedBytes += size;
    this.#record(entry);
    return true;
  }

  /** Bytes of the queued messages (payloads and topics). */
  get queuedBytes(): number {
    return this.#queuedBytes;
  }

  #send(link: SessionLink, entry: Outbound): boolean {
    entry.packetId = this.#allocatePacketId();
    entry.hooks?.sent?.(entry.packetId, entry.qos);
    if (link.sendPublish(entry.message, entry.qos, entry.retain, entry.packetId, false, entry.subIds)) {
      this.#inflight.set(entry);
      this.#record(entry);
      return true;
    }
    // Not sent because it is larger than the client accepts: discarded as if delivered [MQTT-3.1.2-25];
    // whoever waits on it hears it was not.
    this.#drop(entry);
    return false;
  }

  #allocatePacketId(): number {
    // Non-zero and not in use by another unacknowledged PUBLISH [MQTT-2.2.1-3].
    for (;;) {
      const id = this.#nextPacketId;
      this.#nextPacketId = id === 65535 ? 1 : id + 1;
      if (this.#inflight.isFree(id)) return id;
    }
  }

  /**
   * Sends the retained messages matching a new subscription [MQTT-3.3.1-9] at most at `qos`, paced by
   * the client rather than pushed all at once: each goes only while the socket is not congested and,
   * for QoS 1/2, while the inflight window has room and nothing is queued, so a large retained set
   * reaches a new `#` subscriber whole instead of overflowing its queue or its write buffer. A new
   * SUBSCRIBE of the same filter replaces what is still owed for it (it sends them all again).
   */
  sendRetained(raw: string, refs: readonly RetainedRef[], qos: QoS, subIds: readonly number[] | undefined, source: RetainedSource): void {
    if (refs.length === 0) return;
    const backlog = (this.#retainedBacklog ??= []);
    const same = backlog.findIndex((b) => b.raw === raw);
    if (same >= 0) {
      this.#retainedOwed -= backlog[same]!.refs.length - backlog[same]!.next;
      backlog.splice(same, 1);
    }
    // References to the store's index entries, not payloads: each message is fetched whole (read back
    // from disk if it left memory) only when the client has room for it. Bounded so that repeated
    // SUBSCRIBEs of many filters cannot make one session hold millions of them.
    let owed = refs;
    const room = this.#limits.maxRetained - this.#retainedOwed;
    if (owed.length > room) {
      this.#stats.droppedRetainedBacklog += owed.length - Math.max(0, room);
      owed = owed.slice(0, Math.max(0, room));
    }
    if (owed.length === 0) return;
    backlog.push({ raw, refs: owed, next: 0, qos, subIds, source });
    this.#retainedOwed += owed.length;
    this.#pumpRetained();
  }

  get retainedOwed(): number {
    return this.#retainedOwed;
  }

  #pumpRetained(): void {
    const backlog = this.#retainedBacklog;
    const link = this.link;
    if (backlog === undefined || link === null) return;
    const now = Date.now();
    while (backlog.length > 0) {
      const batch = backlog[0]!;
      while (batch.next < batch.refs.length) {
        if (link.congested) return;
        // Whether a QoS 0 delivery could go is known only from the message; asking for room first keeps
        // a message that cannot go yet from being read back now and again later.
        if (batch.qos > 0 && (this.queuedCount > 0 || this.#inflight.size >= link.sendQuota)) return;
        // The topic's message now: a newer one if it was replaced since the SUBSCRIBE, none if it was
        // cleared or expired [MQTT-3.3.2-5].
        const m = batch.source.get(batch.refs[batch.next]!.topic, now);
        batch.next++;
        this.#retainedOwed--;
        if (m === undefined || isExpired(m, now)) continue;
        const qos = (m.qos < batch.qos ? m.qos : batch.qos);
        // Retained messages to a new subscription carry RETAIN 1 [MQTT-3.3.1-8].
        this.deliver(m, qos, true, batch.subIds);
        if (this.link !== link) return; // delivering ended the connection
      }
      backlog.shift();
    }
    this.#retainedBacklog = undefined;
  }

  /** Moves queued messages into the inflight window while the client has room. */
  drain(): void {
    const link = this.link;
    // Called on every PUBACK/PUBCOMP: nothing to do (and no clock read) while nothing is queued.
    if (link === null) return;
    if (this.queuedCount === 0) {
      if (this.#retainedBacklog !== undefined) this.#pumpRetained();
      return;
    }
    const now = Date.now();
    // this.#queue is read on every round: sending can end the session, which drops the queue.
    while (this.queuedCount > 0 && this.#inflight.size < link.sendQuota && !link.congested) {
      const entry = this.#queue!.shift()!;
      this.#queuedBytes -= queuedSize(entry);
      if (isExpired(entry.message, now)) {
        this.#stats.droppedExpired++;
        this.#drop(entry);
        continue;
      }
      this.#send(link, entry);
    }
    if (this.#retainedBacklog !== undefined && this.queuedCount === 0) this.#pumpRetained();
  }

  /**
   * PUBACK (QoS 1) or PUBCOMP (QoS 2) ends an outbound flow, whatever its reason code (a PUBACK ≥ 0x80 is
   * the client's refusal, told to whoever waits). Returns false for an unknown id.
   */
  complete(packetId: number, expect: 'puback' | 'pubcomp', reasonCode = 0): boolean {
    const entry = this.#inflight.get(packetId);
    if (entry === undefined) return false;
    if (expect === 'puback' ? entry.qos !== 1 : entry.state !== 'pubrel') return false;
    this.#inflight.delete(packetId);
    this.#forget(entry);
    entry.onComplete?.(reasonCode);
    this.drain();
    return true;
  }

  /** PUBREC: the QoS 2 flow moves on to PUBREL, or ends when the receiver refused it (≥ 0x80). */
  received(packetId: number, reasonCode: number): 'pubrel' | 'ended' | 'unknown' | Promise<void> {
    const entry = this.#inflight.get(packetId);
    if (entry === undefined || entry.qos !== 2) return 'unknown';
    if (reasonCode >= 0x80) {
      this.#inflight.delete(packetId);
      this.#forget(entry);
      entry.onComplete?.(reasonCode);
      this.drain();
      return 'ended';
    }
    entry.state = 'pubrel';
    this.#record(entry);
    // A cluster's stored message: the PUBREL leaves once the cluster's record holds it as received, so a node that
    // resumes this session after this one's death sends that PUBREL instead of the message again.
    return entry.hooks?.received?.(packetId) ?? 'pubrel';
  }

  /**
   * Flows another node held in flight before it lost this session (issue 16 item 2), in their order: `resume` resends
   * each PUBLISH with DUP under its packet id, or its PUBREL when its PUBREC came [MQTT-4.4.0-1]. False: its packet id
   * is taken here already (it is not restored).
   */
  restoreFlow(flow: RestoredFlow): boolean {
    if (!this.#inflight.isFree(flow.packetId)) return false;
    this.#inflight.set({
      seq: this.#nextSeq++, message: flow.message, qos: flow.qos, retain: flow.retain, subIds: flow.subIds, packetId: flow.packetId,
      state: flow.state, onComplete: flow.onComplete, hooks: flow.hooks,
    });
    return true;
  }

  /**
   * Whether the queue holds half of what it may (count or bytes): a cluster's replay for this session waits for room
   * rather than make it overflow (issue 16 item 2: those messages were acknowledged to their publishers).
   */
  get queueHalfFull(): boolean {
    const queued = this.queuedCount;
    return queued > 0 && (queued * 2 >= this.#limits.maxQueued || this.#queuedBytes * 2 >= this.#limits.maxQueuedBytes);
  }

  /**
   * A session resumed from another node's record is replaying the cluster's stream (issue 16 item 2): the live
   * feed's stored messages skip it until the replay caught up with them. So does a session a restarted node restored
   * from its file, until its client is back and it replays the stream from `streamFloor` (`Broker.restore`).
   */
  replaying = false;
  /**
   * While `replaying`: the stream's sequence the session has every stored message up to (written with the session's
   * row, so a node restarted as itself replays from there); undefined once it follows the live feed.
   */
  streamFloor: number | undefined = undefined;

  /**
   * On reconnect with a kept session: resend unacknowledged PUBLISH with DUP set and PUBREL for
   * those already received, in their original order [MQTT-4.4.0-1], then drain the queue.
   */
  resume(link: SessionLink): void {
    this.link = link;
    for (const entry of this.#inflightTable?.ordered() ?? []) {
      if (entry.state === 'pubrel') {
        link.sendPubrel(entry.packetId);
      } else if (!link.sendPublish(entry.message, entry.qos, entry.retain, entry.packetId, true, entry.subIds)) {
        this.#inflight.delete(entry.packetId);
        this.#drop(entry);
      }
    }
    this.drain();
  }

  /**
   * Forgets the messages this session still owes its client that `drop` picks (the client may no longer
   * read them): queued ones, retained ones owed to a subscription, and, while no connection is attached,
   * the ones sent but not acknowledged, which resuming would send again [MQTT-4.4.0-1]. A message in
   * flight on a live connection has reached the client already, and a QoS 2 flow past PUBREC only
   * completes a delivery made: both stay. Returns how many were dropped.
   */
  dropMessages(drop: (m: { readonly topic: string }) => boolean): number {
    let dropped = 0;
    if (this.#queue !== undefined && this.#queue.length > 0) {
      for (const entry of this.#queue.removeWhere((e) => drop(e.message))) {
        this.#queuedBytes -= queuedSize(entry);
        this.#drop(entry);
        dropped++;
      }
    }
    if (this.link === null && this.#inflightTable !== undefined) {
      for (const entry of this.#inflightTable.ordered()) {
        if (entry.state !== 'publish' || !drop(entry.message)) continue;
        this.#inflightTable.delete(entry.packetId);
        this.#drop(entry);
        dropped++;
      }
    }
    for (const batch of this.#retainedBacklog ?? []) {
      const owed = batch.refs.slice(batch.next);
      const kept = owed.filter((r) => !drop(r));
      if (kept.length === owed.length) continue;
      batch.refs = kept;
      batch.next = 0;
      this.#retainedOwed -= owed.length - kept.length;
      dropped += owed.length - kept.length;
    }
    if (dropped > 0) this.drain(); // room in the window for what may still go
    return dropped;
  }

  /**
   * Forgets everything in flight (the session is ending). Whoever waits on a message is told: DROPPED, or for a
   * QoS 2 flow past its PUBREC 0 (the client has the message; only the PUBCOMP is missing).
   */
  clearMessages(): void {
    for (const entry of this.#inflightTable?.ordered() ?? []) entry.onComplete?.(entry.state === 'pubrel' ? 0 : DROPPED);
    for (const entry of this.#queue?.removeWhere(() => true) ?? []) entry.onComplete?.(DROPPED);
    this.#inflightTable = undefined;
    this.#queue = undefined;
    this.#retainedBacklog = undefined;
    this.#retainedOwed = 0;
    this.#queuedBytes = 0;
    this.#incomingQos2 = undefined;
  }
}
