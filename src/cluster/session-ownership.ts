/**
 * One owner per session across the cluster (issue 16 item 3), for one gateway's engine on this node.
 *
 * A CONNECT claims the session by compare-and-swap on its record (session-records.ts): of two nodes claiming
 * at once, one write fails, reads again and claims over the winner, so the last claim wins and every node that
 * lost hears of it. The claimer tells the node that held it (`<prefix>.sessions.<instance>`, a request that
 * node answers once its connection is closed, 0x8E) and waits for that answer — bounded, and at once when the
 * node is gone (NATS answers "no responders") — before its CONNACK. A notice that overtakes the loser's own
 * claim (its write was on its way) fences it: a claim whose revision is below a notice's is lost.
 *
 * Every later write of this node (the connection's end, a delayed will taken) names the revision it holds, so
 * a node that lost the session, or was cut off while another claimed it, cannot write over the record; when
 * its NATS connection comes back it reads its records again and lets go of those it lost.
 *
 * Writes of one session go one after the other (a chain per key): a connection's end and the next CONNECT's
 * claim on this node never interleave.
 */
import type { LinkEndpoint, MovedQueued, MovedReceiving, MovedSession, RecordedWill, SessionClaim, ConnectionEnd } from '../broker/index.ts';
import type { Logger } from '../core/logger.ts';
import type { ClusterConnection } from './connection.ts';
import { isPacketId, MAX_EPOCH_USES, SessionRecords, willEntry, willOf, type OpenRecords, type SessionRecord, type SessionState } from './session-records.ts';

/** How long a claim waits for the node that held the session to close its connection. */
export const NOTICE_TIMEOUT_MS = 2_000;
/** Claims racing on one session: each lost write reads again; past this many something is wrong. */
const MAX_CLAIM_ATTEMPTS = 8;

/** What a claimer sends the node that held the session. */
export interface SessionNotice {
  gatewayId: string;
  clientId: string;
  /** The claimer's revision: the holder's claims below it are lost. */
  revision: number;
}

/**
 * The holder's answer to a notice: the session's state as it was when its connection closed there, newer than the
 * record's (written at most once a second, and no more once the claim is written). Empty from a node that did not
 * hold it, or from an older version: the claim then resumes from the record.
 */
export interface NoticeAnswer {
  state?: SessionState;
}

/** This node's identity in the records. */
export interface RecordIdentity {
  nodeId: string;
  instance: string;
}

export class SessionOwnership {
  readonly #conn: ClusterConnection;
  readonly #records: OpenRecords;
  readonly #gatewayId: string;
  readonly #me: RecordIdentity;
  readonly #logger: Logger;
  readonly #endpoint: () => LinkEndpoint | null;
  /** Sessions this node holds: key → the client id and the revision of this node's last write. */
  readonly #held = new Map<string, { clientId: string; revision: number }>();
  /** The highest revision another node claimed, per key, as its notices said. */
  readonly #fences = new Map<string, number>();
  readonly #chains = new Map<string, Promise<unknown>>();

  /**
   * A claim took the session's state from the record, its holder not having answered (the record said the session
   * offline there, or the holder is gone or too slow): its last inbound QoS 2 stores may be in the stream without
   * the record naming them (claimed-doubts.ts).
   */
  unanswered: ((clientId: string, holder: SessionRecord, state: SessionState) => void) | undefined;

  constructor(conn: ClusterConnection, records: OpenRecords, gatewayId: string, me: RecordIdentity, logger: Logger,
    endpoint: () => LinkEndpoint | null) {
    this.#conn = conn;
    this.#records = records;
    this.#gatewayId = gatewayId;
    this.#me = me;
    this.#logger = logger;
    this.#endpoint = endpoint;
  }

  #serial<T>(key: string, work: () => Promise<T>): Promise<T> {
    const previous = this.#chains.get(key) ?? Promise.resolve();
    const next = previous.then(work, work);
    const settled = next.then(() => undefined, () => undefined);
    this.#chains.set(key, settled);
    void settled.then(() => {
      if (this.#chains.get(key) === settled) this.#chains.delete(key);
    });
    return next;
  }

  #record(clientId: string, owner: string | undefined, connected: boolean, will: SessionRecord['will']): SessionRecord {
    return {
      v: 1, gatewayId: this.#gatewayId, clientId, node: this.#me.nodeId, instance: this.#me.instance,
      ...(owner === undefined ? {} : { owner }), connected, will, at: Date.now(),
    };
  }

  claim(clientId: string, owner: string | undefined, will: RecordedWill | null, clean: boolean): Promise<SessionClaim | 'owned' | 'lost'> {
    const key = SessionRecords.key(this.#gatewayId, clientId);
    return this.#serial(key, () => this.#claim(key, clientId, owner, will, clean));
  }

  async #claim(key: string, clientId: string, owner: string | undefined, will: RecordedWill | null, clean: boolean): Promise<SessionClaim | 'owned' | 'lost'> {
    const records = await this.#records();
    for (let attempt = 1; ; attempt++) {
      const seen = await records.get(key);
      const previous = seen?.record;
      // Another principal's session [MQTT-3.1.4-3 applies within one owner] (checkSessionOwner, across nodes).
      if (previous?.owner !== undefined && owner !== undefined && previous.owner !== owner) return 'owned';
      const record = this.#record(clientId, owner ?? previous?.owner, true, will === null ? null : willEntry(will, null));
      // The session's state stays in the record until this node writes its own (a Clean Start discards it
      // [MQTT-3.1.2-4]): should this node die first, the next one still resumes the session from it.
      if (!clean && previous?.state !== undefined) record.state = previous.state;
      let revision: number;
      try {
        revision = seen === null ? await records.create(key, record) : await records.update(key, record, seen.revision);
      } catch (err) {
        // Another claim wrote first: read what it wrote and claim over it (the last claim wins).
        if (attempt < MAX_CLAIM_ATTEMPTS && this.#conn.state === 'connected') continue;
        throw err;
      }
      if (this.#lostTo(key, revision)) return 'lost';
      this.#held.set(key, { clientId, revision });
      if (previous === undefined) return { local: true, displacedWill: null };
      if (previous.instance === this.#me.instance) {
        // This process wrote it last. Its engine may not hold the session all the same (a CONNECT here that claimed
        // it and failed before CONNACK, a dead process's record adopted for its will): the state goes with the claim,
        // and the engine resumes from it only if it holds no session of that client (issue 16 item 2).
        const state = clean ? undefined : previous.state;
        return { local: true, displacedWill: null, ...(state === undefined ? {} : { moved: movedOf(state) }) };
      }
      const { answered, handed } = await this.#notify(previous, clientId, revision);
      // A later claim elsewhere may have beaten this one while the holder was closing its connection.
      if (this.#lostTo(key, revision)) return 'lost';
      const state = clean ? undefined : handed ?? previous.state;
      if (!answered && state !== undefined) this.unanswered?.(clientId, previous, state);
      // This node id held it last (its previous life, whose state the engine restored from its file): local, unless
      // the record holds the session's state, which is newer than that file (the stream went on while this process
      // was away, and the record's floor says what the session still needs from it).
      const local = previous.node === this.#me.nodeId && state === undefined;
      return {
        local,
        displacedWill: displaced(previous),
        ...(state === undefined ? {} : { moved: movedOf(state) }),
      };
    }
  }

  /** A notice from a later claim already arrived: this claim (at `revision`) lost. */
  #lostTo(key: string, revision: number): boolean {
    if ((this.#fences.get(key) ?? 0) <= revision) return false;
    if (this.#held.get(key)?.revision === revision) this.#held.delete(key);
    return true;
  }

  /**
   * Tells the node that held the session; waits (bounded) for it to close a live connection, and takes the session's
   * state from its answer (undefined: none came, the record's is the latest there is).
   */
  async #notify(previous: SessionRecord, clientId: string, revision: number): Promise<{ answered: boolean; handed?: SessionState }> {
    const subject = `${this.#conn.prefix}.sessions.${previous.instance}`;
    const notice: SessionNotice = { gatewayId: this.#gatewayId, clientId, revision };
    try {
      if (!previous.connected) {
        this.#conn.nc.publish(subject, JSON.stringify(notice));
        return { answered: false };
      }
      const answer = await this.#conn.nc.request(subject, JSON.stringify(notice), { timeout: NOTICE_TIMEOUT_MS });
      const handed = answer.data.length === 0 ? undefined : stateOf(answer.json<NoticeAnswer>());
      return handed === undefined ? { answered: true } : { answered: true, handed };
    } catch (err) {
      // Gone (no responders) or too slow: it fails closed while cut off and reads its records again when back.
      this.#logger.debug({ err, holder: previous.node }, 'cluster_session_notice_unanswered');
      return { answered: false };
    }
  }

  /** Whether the record says the session of `clientId` is connected on another process (maxConnections lets its takeover through). */
  async connectedElsewhere(clientId: string): Promise<boolean> {
    const seen = await (await this.#records()).get(SessionRecords.key(this.#gatewayId, clientId));
    return seen !== null && seen.record.connected && seen.record.instance !== this.#me.instance;
  }

  /** Whether the record holds a session of `clientId` created by `owner` (maxSessionsPerOwner lets its takeover through). */
  async recorded(clientId: string, owner: string): Promise<boolean> {
    const seen = await (await this.#records()).get(SessionRecords.key(this.#gatewayId, clientId));
    return seen !== null && (seen.record.owner === undefined || seen.record.owner === owner);
  }

  /**
   * Another node claimed a session (its notice): this node's connection and state of it go, unless it claimed again
   * since. True when this node held it and let it go.
   */
  moved(clientId: string, revision: number): boolean {
    const key = SessionRecords.key(this.#gatewayId, clientId);
    if ((this.#fences.get(key) ?? 0) < revision) this.#fences.set(key, revision);
    const held = this.#held.get(key);
    if (held !== undefined && held.revision > revision) return false;
    this.#held.delete(key);
    this.#endpoint()?.sessionMoved(clientId);
    return held !== undefined;
  }

  connectionEnded(clientId: string, end: ConnectionEnd): Promise<boolean> {
    const key = SessionRecords.key(this.#gatewayId, clientId);
    return this.#serial(key, async () => {
      const held = this.#held.get(key);
      if (held === undefined) return false;
      const records = await this.#records();
      // A will without delay is published now by this node: the record keeps only a will still to come.
      const pending = end.will !== null && end.will.delay > 0 ? willEntry(end.will, Date.now() + end.will.delay * 1000) : null;
      try {
        if (end.sessionEnds && pending === null) {
          await records.remove(key, held.revision).catch(async (err: unknown) => {
            // A write of this process whose answer was lost moved the revision on (as `#stillHeld` finds): once more at it.
            if (await this.#stillHeld(records, key, held) === null) throw err;
            await records.remove(key, held.revision);
          });
          this.#held.delete(key);
        } else {
          const seen = await this.#stillHeld(records, key, held);
          if (seen === null) throw new Error('the session record moved on');
          held.revision = await records.update(key, { ...seen.record, connected: false, will: pending, at: Date.now() }, held.revision);
        }
        return true;
      } catch (err) {
        this.#logger.debug({ err, clientId }, 'cluster_session_end_not_recorded');
        if (this.#held.get(key) === held) this.#held.delete(key);
        return false;
      }
    });
  }

  /**
   * Writes a held session's state into its record (issue 16 item 2, step b), by compare-and-swap on the revision this
   * node holds: false when it does not hold the session (any more); rejects when the write failed (NATS away or
   * slow: the session is still this node's, and the next write tries again). `make` is called when the write's turn
   * comes (writes of one session go one after the other), so what it writes is the latest.
   */
  saveState(clientId: string, make: () => SessionState | undefined): Promise<boolean> {
    const key = SessionRecords.key(this.#gatewayId, clientId);
    return this.#serial(key, async () => {
      const state = make();
      const held = this.#held.get(key);
      if (held === undefined) return false;
      const records = await this.#records();
      const seen = await this.#stillHeld(records, key, held);
      if (seen === null) return false;
      held.revision = await records.update(key, { ...seen.record, state, at: Date.now() }, held.revision);
      return true;
    });
  }

  /**
   * The record, if this process still holds it: at the revision of its last write, or at a later one it wrote too —
   * a write whose answer was lost (NATS went away while it was on its way, and it had landed), which then becomes
   * the revision held. Every writer puts its own instance in the record (a claim, a reaper's adoption), so a record
   * naming this process was last written by it. Null: the record is gone or another process's now.
   */
  async #stillHeld(records: SessionRecords, key: string, held: { revision: number }): Promise<{ record: SessionRecord; revision: number } | null> {
    const seen = await records.get(key);
    if (seen === null) return null;
    if (seen.revision === held.revision) return seen;
    if (seen.revision < held.revision || seen.record.instance !== this.#me.instance) return null;
    held.revision = seen.revision;
    return seen;
  }

  /**
   * Takes the will out of the record this node holds (true: it is this node's to publish). `adopted`: the revision a
   * dead process's record was adopted at (`adopt`), which must still be the record's: a claim since, this node's own
   * included, is a new connection of the client, and its record's will is that connection's [MQTT-3.1.3-9].
   */
  takeWill(clientId: string, adopted?: number): Promise<boolean> {
    const key = SessionRecords.key(this.#gatewayId, clientId);
    return this.#serial(key, async () => {
      const held = this.#held.get(key);
      if (held === undefined || (adopted !== undefined && held.revision !== adopted)) return false;
      const records = await this.#records();
      try {
        const seen = await this.#stillHeld(records, key, held);
        if (seen === null || seen.record.will === null || (adopted !== undefined && seen.revision !== adopted)) return false;
        held.revision = await records.update(key, { ...seen.record, will: null, at: Date.now() }, held.revision);
        return true;
      } catch (err) {
        this.#logger.debug({ err, clientId }, 'cluster_will_not_taken');
        return false;
      }
    });
  }

  /**
   * A survivor took a dead node's record over (will-reaper.ts): its will is due at `dueAt`; published by this
   * node if the record is still this node's then (a CONNECT anywhere meanwhile cancels it [MQTT-3.1.3-9]).
   */
  adopt(clientId: string, revision: number, will: RecordedWill, dueAt: number): void {
    const key = SessionRecords.key(this.#gatewayId, clientId);
    // A CONNECT of that client here may have claimed the record since the reaper's write (a node restarted as itself
    // reaps its previous life's records while their devices come back to it): that claim's revision stays held.
    const held = this.#held.get(key);
    if (held === undefined || held.revision < revision) this.#held.set(key, { clientId, revision });
    const publish = (): void => {
      this.takeWill(clientId, revision).then((taken) => {
        if (taken) this.#endpoint()?.publishWill(will);
      }, (err: unknown) => this.#logger.error({ err, clientId }, 'cluster_will_claim_failed'));
    };
    const wait = dueAt - Date.now();
    if (wait <= 0) publish();
    else setTimeout(publish, wait).unref();
  }

  /** Back from a NATS outage: the sessions another node claimed meanwhile are let go (their notices were lost). */
  async revalidate(): Promise<void> {
    if (this.#held.size === 0) return;
    let records: SessionRecords;
    try {
      records = await this.#records();
    } catch (err) {
      this.#logger.warn({ err }, 'cluster_session_revalidation_failed'); // NATS away again: the next reconnect reads them
      return;
    }
    for (const [key, held] of [...this.#held]) {
      await this.#serial(key, async () => {
        if (this.#held.get(key) !== held) return;
        if (await this.#stillHeld(records, key, held) !== null) return;
        const seen = await records.get(key);
        this.#logger.info({ clientId: held.clientId, holder: seen?.record.node ?? null }, 'cluster_session_lost_while_cut_off');
        this.moved(held.clientId, seen?.revision ?? held.revision + 1);
      }).catch((err: unknown) => this.#logger.warn({ err }, 'cluster_session_revalidation_failed'));
    }
  }
}

/**
 * The will of the connection a claim ended elsewhere, if the claimer must publish it: a live connection's will
 * without delay (a new connection cancels only a delayed one [MQTT-3.1.3-9]), or a will whose delay passed.
 */
/** The state in a holder's answer, if it has the shape of one (a node of another version may answer otherwise). */
function stateOf(answer: NoticeAnswer): SessionState | undefined {
  const state = answer.state;
  if (state === undefined || state === null || typeof state !== 'object') return undefined;
  return Number.isSafeInteger(state.floor) && Array.isArray(state.subscriptions) && Array.isArray(state.inflight) ? state : undefined;
}

/** What a node resumes a session from: its record's state (issue 16 item 2, step b). */
function movedOf(state: SessionState): MovedSession {
  return {
    subscriptions: state.subscriptions,
    floor: state.floor,
    inflight: (state.inflight ?? []).map(([seq, packetId, qos, released]) => ({ seq, packetId, qos: qos === 1 ? 1 as const : 2 as const, released: released === 1 })),
    queued: queuedOf(state.queued),
    received: receivedOf(state.received),
    receiving: receivingOf(state.receiving),
    qos2Epoch: typeof state.qos2Epoch === 'string' && state.qos2Epoch.length > 0 && state.qos2Epoch.length <= MAX_STORE_ID_LENGTH ? state.qos2Epoch : undefined,
    qos2Uses: usesOf(state.qos2Uses),
  };
}

/** A state's uses of packet ids in its epoch: [packet id, a count of at least 1], each packet id once, MAX_EPOCH_USES at most. */
function usesOf(uses: unknown): [number, number][] {
  if (!Array.isArray(uses)) return [];
  const kept = new Map<number, number>();
  for (const entry of uses as unknown[]) {
    if (kept.size >= MAX_EPOCH_USES || !Array.isArray(entry)) continue;
    const [packetId, count] = entry as unknown[];
    if (!isPacketId(packetId) || !Number.isSafeInteger(count) || (count as number) < 1) continue;
    if (!kept.has(packetId)) kept.set(packetId, count as number);
  }
  return [...kept];
}

/** The longest stream message id a record may name (ours are `<instance>.<counter>`, well below it). */
const MAX_STORE_ID_LENGTH = 128;

/** A state's receiving QoS 2 packet ids: [packet id, non-empty message id], each packet id once; anything else left out. */
function receivingOf(receiving: unknown): MovedReceiving[] {
  if (!Array.isArray(receiving)) return [];
  const kept = new Map<number, string>();
  for (const entry of receiving as unknown[]) {
    if (!Array.isArray(entry)) continue;
    const [packetId, storeId] = entry as unknown[];
    if (!isPacketId(packetId)) continue;
    if (typeof storeId !== 'string' || storeId.length === 0 || storeId.length > MAX_STORE_ID_LENGTH) continue;
    if (!kept.has(packetId)) kept.set(packetId, storeId);
  }
  return [...kept].map(([packetId, storeId]) => ({ packetId, storeId }));
}

/** A handed-over state's received QoS 2 packet ids: packet ids only (1–65535), each once; anything else left out. */
function receivedOf(received: unknown): number[] {
  if (!Array.isArray(received)) return [];
  return [...new Set((received as unknown[]).filter(isPacketId))];
}

/** A record's queued list, in stream order; entries of another shape are left out (a node of another version wrote it). */
function queuedOf(queued: unknown): MovedQueued[] {
  if (!Array.isArray(queued)) return [];
  const kept: MovedQueued[] = [];
  for (const entry of queued as unknown[]) {
    if (!Array.isArray(entry)) continue;
    const [seq, qos] = entry as unknown[];
    if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || (qos !== 1 && qos !== 2)) continue;
    kept.push({ seq, qos });
  }
  return kept.sort((x, y) => x.seq - y.seq);
}

function displaced(previous: SessionRecord): RecordedWill | null {
  const will = previous.will;
  if (will === null) return null;
  const due = previous.connected ? will.delay === 0 : will.dueAt !== null && will.dueAt <= Date.now();
  return due ? willOf(will) : null;
}
