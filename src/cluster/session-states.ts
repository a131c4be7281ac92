/**
 * The persistent sessions of one gateway's engine on this node, as the cluster's session records keep them (issue 16
 * item 2, step b): their subscriptions, their floor in the cluster's stream and their deliveries that hold a packet
 * id, so a node that resumes a session after this one's death replays exactly what the session still owed its client.
 *
 * - The floor is the stream sequence every stored message at or below which is done for the session: below the
 *   oldest stored message handed to it and not yet acknowledged (queued or in flight), else the last message the
 *   feed handed this node (everything the session matched up to it was handed to it), else the replay's position.
 *   It is written lazily: once a second per session whose state moved, so a session resumed after its node's death
 *   may get again at QoS 1 what it acknowledged in the last second (duplicates QoS 1 allows). A live takeover gets
 *   the state as of the connection's close in the notice's answer instead (`handOver`).
 * - A QoS 2 delivery's packet id is written before its PUBLISH leaves (the write is a commit of the engine's gate,
 *   which holds the turn's output until it settles), and its PUBREC before its PUBREL leaves: a node that resumes
 *   the session resends that PUBLISH with DUP under the same packet id, or that PUBREL [MQTT-4.4.0-1], never the
 *   message as a new one, so the client gets it once [MQTT-4.3.3]. QoS 1 packet ids go with the floor's writes (one
 *   sent in the last second is replayed under a new id: a duplicate QoS 1 allows).
 * - An inbound QoS 2 PUBLISH is stored under a stream message id the record determines BEFORE the store is made:
 *   `<epoch>.<packet id>.<uses>`, the session's epoch and the times the packet id was released in it, both in the
 *   record (`qos2Epoch`, `qos2Uses`). When the record already holds both as this node has them (the usual case: a
 *   release is written before its PUBCOMP leaves, and only then may the client reuse the id), the store is made at
 *   once; else (a new session or epoch, or a release whose write failed) the id is written first (`receiving`) and the
 *   store waits for it. The id is then listed in `receiving`, then as received once stored (with the next writes),
 *   and its release is written before its PUBCOMP leaves (`released`). A node that resumes the session after this
 *   one's death answers the client's resend of a received one with PUBREC and no second store, stores the resend of
 *   any other under the id the record determines for it (the stream drops it if this node's store had landed), and
 *   never takes a released id, reused for a new message, for a resend [MQTT-4.3.3-10]. No moment is left where the
 *   stream holds the message and the record cannot name its id. The epoch changes once MAX_EPOCH_USES ids have been
 *   released in it, which bounds `qos2Uses`.
 * - Subscriptions are written when they change; the SUBACK waits for it (`settled`).
 * - A state over MAX_STATE_BYTES (many long filters, a large window) is not kept: the record then holds none, the
 *   session is not resumed elsewhere (Session Present 0 there), and it is logged: never a value NATS refuses.
 *
 * Only sessions with a Session Expiry are tracked, and only while this node holds their record (session-ownership.ts
 * writes by compare-and-swap on the revision it holds: a node that lost a session cannot write over its state).
 */
import type { MovedSession, Qos2Intent, StoredDelivery, StoredSubscription } from '../broker/index.ts';
import type { Logger } from '../core/logger.ts';
import { settledWithin } from '../core/settled-within.ts';
import type { SessionOwnership } from './session-ownership.ts';
import { MAX_EPOCH_USES, type SessionState } from './session-records.ts';

/** How long a SUBACK waits for the session's subscriptions to be in its record before it goes anyway. */
const SETTLE_TIMEOUT_MS = 2_000;
/** How long a stopping node waits for its sessions' last writes. */
const SAVE_ALL_TIMEOUT_MS = 2_000;
/** How often the floors of the sessions that moved are written. */
const FLOOR_WRITE_MS = 1_000;
/** A session state larger than this is not written (NATS max_payload is 1 MiB by default; the record has more). */
export const MAX_STATE_BYTES = 256 * 1024;

/**
 * Flows kept per session (in flight, and QoS 2 ones completed above the floor): past it the session is no longer
 * tracked (a client that leaves one QoS 2 delivery unanswered forever while completing the others would grow them).
 */
const MAX_FLOWS = 8_192;

/** A delivery holding a packet id: the id (0: a QoS 2 delivery completed, for a replay to skip), its QoS, and whether its PUBREC came. */
interface Flow {
  packetId: number;
  qos: number;
  released: boolean;
}

interface Tracked {
  clientId: string;
  subscriptions: StoredSubscription[];
  /** Stream sequences handed to the session and not completed (queued or in flight), with the QoS they were handed at. */
  outstanding: Map<number, 1 | 2>;
  /**
   * A resumed session's queued messages of the record it was resumed from that its replay has not reached yet: still
   * owed (a write during the replay lists them, so a second move loses none of them), dropped once the replay passes.
   */
  carried: Map<number, 1 | 2>;
  /** Deliveries that hold a packet id: stream sequence → flow. */
  flows: Map<number, Flow>;
  /**
   * Inbound QoS 2 packet ids whose message the stream holds and whose PUBREL has not come: written before the PUBREC
   * leaves and, once released, before the PUBCOMP does, so a node that resumes the session after this one's death
   * answers the client's resend with PUBREC and no second store [MQTT-4.3.3-10], and a reused id is never taken for one.
   */
  received: Set<number>;
  /**
   * Inbound QoS 2 packet ids whose store was (or is being) made, not yet known stored here, PUBREL not come, with the
   * stream message id of that store: written before the store is made (see `receiving`).
   */
  receiving: Map<number, string>;
  /** The epoch of the session's inbound QoS 2 store ids, and per packet id the times it was released in it. */
  epoch: string;
  uses: Map<number, number>;
  /** Snapshots taken for writes, and the last one a write of which succeeded: what the record holds. */
  snapshots: number;
  durable: number;
  /** The first snapshot holding the epoch, and each packet id's uses, as they are now (durable once written). */
  epochAt: number;
  usesAt: Map<number, number>;
  /** The replay's position while the session replays the stream; null once it caught up (or never replayed). */
  replayAt: number | null;
  /** The floor last written (a session with nothing outstanding follows the feed's position). */
  floor: number;
  dirty: boolean;
  /** Over a bound (MAX_FLOWS, MAX_STATE_BYTES): the record is written without state once, then the session is not tracked. */
  abandoned: boolean;
  /**
   * Not this node's any more (a write found the record claimed elsewhere, or the session moved or ended here): a QoS 2
   * PUBLISH or PUBREL waiting for a write of it must not leave (StoredDelivery).
   */
  lost?: true;
  /** The write queued and not yet begun: later changes are in it. */
  queued: Promise<boolean> | null;
}

export class SessionStates {
  readonly #ownership: SessionOwnership;
  /** The feed's position: the last stored message handed to this node's engine (undefined: the feed is not running). */
  readonly #position: () => number | undefined;
  /** The feed's start, while it is starting: a floor read before it would not know where the stream stands. */
  readonly #ready: () => Promise<void> | undefined;
  readonly #logger: Logger;
  /** A new id unique to this process, for an epoch of inbound QoS 2 store ids. */
  readonly #newId: () => string;
  readonly #tracked = new Map<string, Tracked>();
  /** Subscription writes a SUBACK waits for. */
  readonly #pending = new Set<Promise<boolean>>();
  readonly #timer: NodeJS.Timeout;
  /** Writes failed since the last that did not: the first is warned about, the end of the run logged. */
  #failedWrites = 0;

  constructor(ownership: SessionOwnership, position: () => number | undefined, ready: () => Promise<void> | undefined, logger: Logger,
    newId: () => string) {
    this.#ownership = ownership;
    this.#newId = newId;
    this.#position = position;
    this.#ready = ready;
    this.#logger = logger;
    this.#timer = setInterval(() => this.#writeFloors(), FLOOR_WRITE_MS);
    this.#timer.unref();
  }

  /** A persistent session's subscriptions (it connected here, or changed them); null: it ended or moved away. */
  changed(clientId: string, subscriptions: StoredSubscription[] | null): void {
    if (subscriptions === null) {
      const t = this.#tracked.get(clientId);
      if (t !== undefined) t.lost = true;
      this.#tracked.delete(clientId);
      return;
    }
    let t = this.#tracked.get(clientId);
    if (t === undefined) {
      const floor = this.#position() ?? 0;
      this.#tracked.set(clientId, (t = {
        clientId, subscriptions, outstanding: new Map(), carried: new Map(), flows: new Map(), received: new Set(), receiving: new Map(),
        ...this.#freshEpoch(0), snapshots: 0, durable: 0, replayAt: null, floor, dirty: true, abandoned: false, queued: null,
      }));
    }
    t.subscriptions = subscriptions;
    const write = this.#save(t);
    this.#pending.add(write);
    void write.finally(() => this.#pending.delete(write));
  }

  /**
   * Resolves once the subscriptions last changed are in the records (or their writes failed), or after a bounded
   * wait (NATS slow or away: the SUBACK goes anyway, as for the route's interest); undefined: they are.
   */
  settled(): Promise<void> | undefined {
    if (this.#pending.size === 0) return undefined;
    return settledWithin(Promise.all(this.#pending), SETTLE_TIMEOUT_MS);
  }

  /**
   * A session resumed from another node's record starts replaying from its floor. Its subscriptions, attached just
   * before in the same turn, made an entry whose write is queued: that entry becomes the replay's, so the write
   * snapshots the record's floor and queue. A new entry beside it left that write to snapshot the feed's position with
   * nothing queued, and a death before the next write lost the backlog for the node that resumed it next.
   */
  replaying(clientId: string, moved: MovedSession): void {
    const existing = this.#tracked.get(clientId);
    const snapshots = existing?.snapshots ?? 0;
    const fields: Tracked = {
      clientId, subscriptions: moved.subscriptions, outstanding: new Map(), carried: new Map(moved.queued.map((q) => [q.seq, q.qos])),
      flows: new Map(), received: new Set(moved.received),
      receiving: new Map(moved.receiving.filter((r) => !moved.received.includes(r.packetId)).map((r) => [r.packetId, r.storeId])),
      // The record's epoch and uses name the ids the node that held it stored under; this node's record holds them
      // once it wrote them (until then, a store waits for that write).
      ...(moved.qos2Epoch === undefined
        ? this.#freshEpoch(snapshots)
        : { epoch: moved.qos2Epoch, uses: new Map(moved.qos2Uses), epochAt: snapshots + 1, usesAt: new Map() }),
      snapshots, durable: existing?.durable ?? 0,
      replayAt: moved.floor, floor: moved.floor, dirty: true, abandoned: false, queued: existing?.queued ?? null,
    };
    const t = existing === undefined ? fields : Object.assign(existing, fields);
    // The engine restores these (delivered() is told of each): kept until then, in case it writes before.
    for (const f of moved.inflight) {
      t.flows.set(f.seq, { packetId: f.packetId, qos: f.qos, released: f.released });
      if (f.packetId !== 0) t.outstanding.set(f.seq, f.qos); // id 0: completed, kept for the replay to skip
    }
    this.#tracked.set(clientId, t);
  }

  replayed(clientId: string, seq: number): void {
    const t = this.#tracked.get(clientId);
    if (t === undefined || t.replayAt === null) return;
    t.replayAt = seq;
    // Reached: handed to the session again (now outstanding), or refused there (its access rules, a full queue).
    for (const carried of t.carried.keys()) if (carried <= seq) t.carried.delete(carried);
    t.dirty = true;
  }

  caughtUp(clientId: string): void {
    const t = this.#tracked.get(clientId);
    if (t === undefined) return;
    t.replayAt = null;
    t.carried.clear(); // the stream no longer had them (its limits removed part of the backlog)
  }

  delivered(clientId: string, seq: number, qos: 1 | 2): StoredDelivery | undefined {
    const t = this.#tracked.get(clientId);
    if (t === undefined) return undefined;
    t.outstanding.set(seq, qos);
    t.dirty = true;
    const mine = (): boolean => this.#tracked.get(clientId) === t;
    return {
      onComplete: () => {
        t.outstanding.delete(seq);
        t.dirty = true;
        // A QoS 2 delivery that ended above the floor stays in the record (id 0) until the floor passes it: a replay
        // from an older floor (a message before it still unacknowledged) must skip it, not send it again [MQTT-4.3.3].
        if (t.flows.get(seq)?.qos !== 2) t.flows.delete(seq);
        else if (t.flows.size > MAX_FLOWS) t.abandoned = true;
        else t.flows.set(seq, { packetId: 0, qos: 2, released: true });
      },
      onSent: (packetId, qos) => {
        if (!mine()) return qos === 2 && t.lost === true ? Promise.resolve(false) : undefined;
        t.flows.set(seq, { packetId, qos, released: false });
        t.dirty = true;
        // QoS 2: in the record before the PUBLISH leaves (the caller's commit gate holds it until this settles).
        return qos === 2 ? this.#recorded(t) : undefined;
      },
      onReceived: (packetId) => {
        if (!mine()) return Promise.resolve(t.lost !== true);
        t.flows.set(seq, { packetId, qos: 2, released: true });
        return this.#recorded(t);
      },
    };
  }

  /**
   * An inbound QoS 2 PUBLISH about to be stored: the stream message id it is stored under (`newId()`, or the one the
   * record already names for the packet id: a resend on the node that resumed the session), in the record before the
   * store is made (`written`; the caller stores once it settled true). Undefined: the session is not tracked here.
   */
  receiving(clientId: string, packetId: number): Qos2Intent | undefined {
    const t = this.#tracked.get(clientId);
    if (t === undefined) return undefined;
    const known = t.receiving.get(packetId);
    if (known !== undefined) return { storeId: known, written: undefined };
    const storeId = `${t.epoch}.${packetId}.${t.uses.get(packetId) ?? 0}`;
    t.receiving.set(packetId, storeId);
    t.received.delete(packetId);
    t.dirty = true;
    // The record already determines this id: stored at once (listed in `receiving` with the next write).
    if (t.epochAt <= t.durable && (t.usesAt.get(packetId) ?? 0) <= t.durable) return { storeId, written: undefined };
    return { storeId, written: this.#save(t) };
  }

  /**
   * That message stored: the record names the packet id as received with its next write (within FLOOR_WRITE_MS; the
   * PUBREC does not wait for it), so a resend after the stream's duplicate window is not stored again either.
   */
  received(clientId: string, packetId: number): void {
    const t = this.#tracked.get(clientId);
    if (t === undefined || !t.receiving.delete(packetId)) return;
    t.received.add(packetId);
    t.dirty = true;
  }

  /**
   * A store under `<epoch>.<packetId>.<uses>` found in the stream after the session was claimed from a process that did
   * not answer (claimed-doubts.ts): named received, as the reap of a dead process names it (in-doubt-stores.ts), unless
   * the session moved past that store here — another epoch, the id released since (more uses), or already held (a
   * resend received or being stored). False: not taken (or not tracked here).
   */
  landed(clientId: string, epoch: string, packetId: number, uses: number): boolean {
    const t = this.#tracked.get(clientId);
    if (t === undefined || t.epoch !== epoch || (t.uses.get(packetId) ?? 0) !== uses || t.received.has(packetId) || t.receiving.has(packetId)) return false;
    t.received.add(packetId);
    t.dirty = true;
    return true;
  }

  /**
   * An inbound QoS 2 packet id released (PUBREL), or given up before its store: out of the record before the PUBCOMP
   * leaves (the caller waits for the write; whatever its fate the PUBCOMP goes, as for outbound flows). Undefined:
   * nothing to write (not tracked here, or the id not held).
   */
  released(clientId: string, packetId: number): Promise<boolean> | undefined {
    const t = this.#tracked.get(clientId);
    if (t === undefined) return undefined;
    const held = t.received.delete(packetId);
    if (!t.receiving.delete(packetId) && !held) {
      // Released here already, and that write failed (its PUBREL, sent again, finds the id gone from this state): the
      // record still names the id as held until a write lands, so the PUBCOMP waits for one again.
      return (t.usesAt.get(packetId) ?? 0) > t.durable || t.epochAt > t.durable ? this.#save(t) : undefined;
    }
    // The id's next message is stored under another id; the record learns it before the PUBCOMP leaves.
    if (t.uses.size >= MAX_EPOCH_USES && !t.uses.has(packetId)) Object.assign(t, this.#freshEpoch(t.snapshots));
    else {
      t.uses.set(packetId, (t.uses.get(packetId) ?? 0) + 1);
      t.usesAt.set(packetId, t.snapshots + 1);
    }
    t.dirty = true;
    return this.#save(t);
  }

  /** A new epoch for a session's inbound QoS 2 store ids, in the record from the write after snapshot `after`. */
  #freshEpoch(after: number): Pick<Tracked, 'epoch' | 'uses' | 'epochAt' | 'usesAt'> {
    return { epoch: this.#newId(), uses: new Map(), epochAt: after + 1, usesAt: new Map() };
  }

  #floorOf(t: Tracked): number {
    // The lowest, not the first added: a resumed session's flows come before the older messages its replay reads.
    let oldest = Infinity;
    for (const seq of t.outstanding.keys()) if (seq < oldest) oldest = seq;
    if (oldest !== Infinity) return oldest - 1;
    if (t.replayAt !== null) return t.replayAt;
    return this.#position() ?? t.floor;
  }

  /** The session's state as of now, as its record holds it (undefined: over a bound, not kept). */
  #snapshot(t: Tracked): SessionState | undefined {
    if (t.abandoned) return undefined;
    const floor = this.#floorOf(t);
    if (floor > t.floor) t.floor = floor;
    // Flows at or below the floor are done for a replay without them.
    const inflight: SessionState['inflight'] = [];
    for (const [seq, f] of t.flows) {
      if (seq <= t.floor) t.flows.delete(seq);
      else inflight.push([seq, f.packetId, f.qos, f.released ? 1 : 0]);
    }
    // The flows in stream order, which is the order a resume resends them in [MQTT-4.4.0-1].
    inflight.sort((x, y) => x[0] - y[0]);
    const state: SessionState = { subscriptions: t.subscriptions, floor: t.floor, inflight };
    if (t.received.size > 0) state.received = [...t.received];
    if (t.receiving.size > 0) state.receiving = [...t.receiving];
    state.qos2Epoch = t.epoch;
    if (t.uses.size > 0) state.qos2Uses = [...t.uses];
    const queued = queuedOf(t);
    if (queued.length > 0) {
      const listed = { ...state, queued };
      if (stateBytes(listed) <= MAX_STATE_BYTES) return listed;
      // A queue too long to list: a resume matches the replay against the subscriptions only (what waited for a
      // subscription removed meanwhile is not delivered there), rather than no resume at all.
      this.#logger.debug({ clientId: t.clientId, queued: queued.length }, 'cluster_session_queue_not_listed');
    }
    if (stateBytes(state) <= MAX_STATE_BYTES) return state;
    t.abandoned = true;
    return undefined;
  }

  /**
   * The state of a session another node is claiming while its connection is here, for the claim's answer: the record
   * has the floor of its last write (up to FLOOR_WRITE_MS old, and the claimer's write now forbids this node's), so a
   * resume from it would repeat every QoS 1 message acknowledged since, and a QoS 2 PUBLISH sent after the claim was
   * written (its packet id's write refused) would be replayed as a new message. Taken in the same turn as the
   * connection's close, so nothing is delivered here after it. Undefined: not tracked here.
   */
  handOver(clientId: string): SessionState | undefined {
    const t = this.#tracked.get(clientId);
    return t === undefined ? undefined : this.#snapshot(t);
  }

  /**
   * A write a QoS 2 PUBLISH or PUBREL waits for: false when it found the session not this node's any more — the node
   * that claimed it sends that flow from its record (the PUBLISH as new, since this write did not name its packet id),
   * so this one must not leave or the client gets the message twice [MQTT-4.3.3]. A write that failed otherwise
   * (NATS away or slow) lets it go: the session is still this node's, and the node fails closed on its own.
   */
  #recorded(t: Tracked): Promise<boolean> {
    return this.#save(t).then((written) => written || t.lost !== true);
  }

  #save(t: Tracked): Promise<boolean> {
    if (t.queued !== null) return t.queued;
    const ready = this.#ready() ?? Promise.resolve();
    let snapshot = 0;
    const write = ready.then(() => this.#ownership.saveState(t.clientId, () => {
      t.queued = null;
      t.dirty = false;
      snapshot = ++t.snapshots;
      return this.#snapshot(t);
    })).then((written) => {
      // The record holds what this snapshot held (inbound QoS 2 store ids it determines need no write first).
      if (written && snapshot > t.durable) t.durable = snapshot;
      if (this.#failedWrites > 0) {
        this.#logger.info({ failed: this.#failedWrites }, 'cluster_session_state_writes_again');
        this.#failedWrites = 0;
      }
      if (t.abandoned && this.#tracked.get(t.clientId) === t) {
        // Written without state (or not at all): another node will not resume it, and Session Present 0 says so there.
        this.#logger.warn({ clientId: t.clientId, subscriptions: t.subscriptions.length, flows: t.flows.size }, 'cluster_session_state_too_large');
        this.#tracked.delete(t.clientId);
      } else if (!written && this.#tracked.get(t.clientId) === t) {
        // Not this node's session any more (or not yet: restored from this node's file, not claimed): not tracked.
        this.#logger.debug({ clientId: t.clientId }, 'cluster_session_state_untracked');
        t.lost = true;
        this.#tracked.delete(t.clientId);
      }
      return written;
    }, (err: unknown) => {
      // NATS away or slow: the session is still this node's (a claim elsewhere is heard as a notice, or read when
      // NATS is back), so it stays tracked and its next floor write tries again. Untracking it here stopped its
      // record for good: a resume after this node's later death replayed from the floor before the outage, every
      // QoS 2 message completed since as a new one (test/cluster/session-state-outage).
      if (t.queued === write) t.queued = null;
      t.dirty = true;
      this.#failedWrites++;
      if (this.#failedWrites === 1) this.#logger.warn({ err, clientId: t.clientId }, 'cluster_session_state_writes_failing');
      else this.#logger.debug({ err, clientId: t.clientId }, 'cluster_session_state_not_written');
      return false;
    });
    t.queued = write;
    return write;
  }

  /**
   * The node stops: every session whose state moved since its last write is written now (its floor, what it still has
   * queued), so a resume elsewhere gets it exact rather than up to FLOOR_WRITE_MS behind. Bounded: NATS slow or away
   * must not hold the stop (the records then keep the last writes that made it).
   */
  saveAll(): Promise<void> {
    const writes: Promise<boolean>[] = [];
    for (const t of this.#tracked.values()) if (t.dirty) writes.push(this.#save(t));
    return writes.length === 0 ? Promise.resolve() : settledWithin(Promise.all(writes), SAVE_ALL_TIMEOUT_MS);
  }

  #writeFloors(): void {
    for (const t of this.#tracked.values()) {
      if (t.dirty && t.queued === null) void this.#save(t);
    }
  }

  close(): void {
    clearInterval(this.#timer);
    this.#tracked.clear();
  }
}

/**
 * The session's queued messages: handed to it and not sent (no packet id: a flow of the record's `inflight` is resent
 * from there), and a resume's carried ones its replay has not reached, in stream order.
 */
function queuedOf(t: Tracked): [number, number][] {
  const queued: [number, number][] = [];
  for (const [seq, qos] of t.outstanding) {
    const flow = t.flows.get(seq);
    if (seq > t.floor && (flow === undefined || flow.packetId === 0)) queued.push([seq, qos]);
  }
  for (const [seq, qos] of t.carried) if (seq > t.floor && !t.outstanding.has(seq)) queued.push([seq, qos]);
  return queued.sort((x, y) => x[0] - y[0]);
}

/** The bytes of a state in its record (JSON, as session-records.ts writes it). */
function stateBytes(state: SessionState): number {
  return Buffer.byteLength(JSON.stringify(state));
}
