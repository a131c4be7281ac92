/**
 * The cluster's session records (issue 16 items 3 and 6): one JetStream KV bucket per installation
 * (`gatehouse-sessions-<installation>`), one key per session (`<gatewayId>.<SHA-256 of the client id>`:
 * client ids hold what keys cannot), the value who holds the session and the will of its connection.
 *
 * The KV revision is the fencing token: every write names the revision it read (`update`, `remove`), so a
 * node whose view is old — another node claimed the session since, or it was cut off while that happened —
 * fails instead of writing over the newer owner. Why a KV record per session rather than a stream of claims:
 * the server keeps only the current record (history 1), a survivor reads exactly what is due, and the
 * compare-and-swap is the server's own (expected last subject sequence), not a protocol of ours.
 */
import { createHash } from 'node:crypto';
import type { JetStreamManager } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import type { Message, RecordedWill, StoredSubscription } from '../broker/index.ts';
import { openedOnce, type ClusterConnection } from './connection.ts';
import { decodeMessage, encodeMessage } from './wire.ts';

/** A will as the record holds it: its message frame (wire.ts) in base64, and when it is due once its connection ended. */
export interface WillEntry {
  frame: string;
  /** min(Will Delay, Session Expiry), seconds. */
  delay: number;
  /** Message Expiry Interval of the will, seconds (0: none). */
  expiry: number;
  /** Epoch ms at which it is published, once its connection ended; null while the connection is live. */
  dueAt: number | null;
}

export interface SessionRecord {
  v: 1;
  gatewayId: string;
  clientId: string;
  /** The node id that holds the session (what operators read; a restart keeps it). */
  node: string;
  /** The process that holds it: its fencing identity (node-leases.ts `instance`). */
  instance: string;
  /** The principal that created the session (`AuthResult.owner`): another one may neither resume nor take it over. */
  owner?: string;
  connected: boolean;
  will: WillEntry | null;
  /** Epoch ms of this write. */
  at: number;
  /**
   * A persistent session's state (issue 16 item 2, step b), written by the node holding it: what another node needs
   * to resume it after that node's death. Absent: nothing to resume (a clean start, or no node wrote it yet).
   */
  state?: SessionState;
}

/**
 * Packet ids released in one epoch of a session's inbound QoS 2 store ids before a new epoch begins (`qos2Uses`' bound).
 * Small: every write of the session's state carries the uses (a client counting its packet ids up releases a new one
 * each message), and the messages of a new epoch's first write wait for it. At 1,024 a node publishing 5,000 QoS 2
 * msg/s from 20 sessions spent ~8 % more CPU than before (bench:cluster lat2); at 64, the writes stay under 1 KB.
 */
export const MAX_EPOCH_USES = 64;

export interface SessionState {
  subscriptions: StoredSubscription[];
  /** Stream sequence: every stored message of the gateway at or below it is done for this session. */
  floor: number;
  /**
   * Deliveries above the floor that hold a packet id: [stream sequence, packet id, QoS, 1 once its PUBREC came].
   * A QoS 2 one is written before its PUBLISH leaves, so a node that resumes the session resends it under the same
   * packet id with DUP [MQTT-4.4.0-1] (or its PUBREL), never as a new message; QoS 1 ones are written with the floor.
   * Packet id 0: a QoS 2 delivery that ended, kept until the floor passes it so a replay skips it.
   */
  inflight: [number, number, number, number][];
  /**
   * Stored messages handed to the session and not yet sent (no packet id yet): [stream sequence, QoS it was queued at].
   * A resume delivers these even when no subscription of the session matches them any more (an UNSUBSCRIBE, or a
   * subscription the access rules removed, while they waited): they are part of the session's state [MQTT-4.1.0-1],
   * as on the node that queued them. Absent: a record of an older node, or a queue too long to list within
   * MAX_STATE_BYTES (session-states.ts): the resume then matches the replay against the subscriptions only.
   */
  queued?: [number, number][];
  /**
   * Inbound QoS 2 packet ids whose message the cluster's stream holds and whose PUBREL has not come: the node that
   * resumes the session answers a resent PUBLISH of one with PUBREC and no second store [MQTT-4.3.3-10], and its
   * PUBREL with PUBCOMP. Written before the PUBREC leaves and, once released, before the PUBCOMP does
   * (session-states.ts); a live takeover's answer adds the ones whose store or write was still in flight.
   */
  received?: number[];
  /**
   * Inbound QoS 2 packet ids whose message is stored, or about to be, under the stream message id beside each
   * (`Nats-Msg-Id`), PUBREL not come: written BEFORE the store is made. The node that resumes the session stores a
   * resent PUBLISH of one under that same id, so the stream drops it as a duplicate if the first store landed (the
   * node died after its store and before writing `received`), and stores it if not [MQTT-4.3.3-10]. Within the
   * stream's duplicate window (2 min); `received`, written after the store, covers later resends.
   */
  receiving?: [number, string][];
  /**
   * The epoch of the session's inbound QoS 2 store ids, and the times each packet id was released in it: a QoS 2
   * PUBLISH with packet id p not in `receiving` is stored under `<qos2Epoch>.<p>.<uses of p, 0 if none>`, by the node
   * holding the session, and by the one resuming it after that node's death (session-states.ts).
   */
  qos2Epoch?: string;
  qos2Uses?: [number, number][];
}

/** A packet id as MQTT allows one: 1–65,535 [MQTT-2.2.1-3]. */
export function isPacketId(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 1 && (value as number) <= 65_535;
}

export function willEntry(will: RecordedWill, dueAt: number | null): WillEntry {
  return { frame: encodeMessage(will.message).toString('base64'), delay: will.delay, expiry: will.expiry, dueAt };
}

export function willOf(entry: WillEntry): RecordedWill {
  const message: Message = decodeMessage(Buffer.from(entry.frame, 'base64'));
  return { message, delay: entry.delay, expiry: entry.expiry };
}

/** Opens the bucket on first use, and again after a failure (NATS may have been away): no request before one is needed. */
export type OpenRecords = () => Promise<SessionRecords>;

/**
 * A record operation asked while the node is between two NATS connections: refused at once rather than kept in the
 * NATS client's buffer until the next connection, where it would wait out its timeout (5 s) behind the server's
 * restart — and with it every later operation of that session (they go one after the other), a device's reconnect
 * once NATS is back among them.
 */
export class RecordsUnreachable extends Error {
  constructor() {
    super('the session records are unreachable: NATS is away');
  }
}

export class SessionRecords {
  readonly #conn: ClusterConnection;
  readonly #kv: KV;
  readonly #jsm: JetStreamManager;
  readonly #bucket: string;

  static async open(conn: ClusterConnection): Promise<SessionRecords> {
    const bucket = `gatehouse-sessions-${conn.bucketSuffix}`;
    const kv = await conn.makeBucket(bucket, { history: 1 });
    return new SessionRecords(conn, kv, await conn.client.jetstreamManager(conn.nc), bucket);
  }

  static opener(conn: ClusterConnection): OpenRecords {
    return openedOnce(() => SessionRecords.open(conn));
  }

  private constructor(conn: ClusterConnection, kv: KV, jsm: JetStreamManager, bucket: string) {
    this.#conn = conn;
    this.#kv = kv;
    this.#jsm = jsm;
    this.#bucket = bucket;
  }

  static key(gatewayId: string, clientId: string): string {
    return `${gatewayId.replace(/[^A-Za-z0-9_-]/g, '_')}.${createHash('sha256').update(clientId).digest('base64url')}`;
  }

  /** The KV bucket, if a request can go out now (RecordsUnreachable otherwise). */
  #reachable(): KV {
    if (!this.#conn.writable) throw new RecordsUnreachable();
    return this.#kv;
  }

  async get(key: string): Promise<{ record: SessionRecord; revision: number } | null> {
    const entry = await this.#reachable().get(key);
    if (entry === null || entry.operation !== 'PUT') return null;
    return { record: entry.json<SessionRecord>(), revision: entry.revision };
  }

  /** Fails when the key holds a record (another claim got there first). */
  async create(key: string, record: SessionRecord): Promise<number> {
    return this.#reachable().create(key, JSON.stringify(record));
  }

  /** Fails unless the record is still at `revision`. */
  async update(key: string, record: SessionRecord, revision: number): Promise<number> {
    return this.#reachable().update(key, JSON.stringify(record), revision);
  }

  /** Deletes the record if it is still at `revision` (the session ended). */
  async remove(key: string, revision: number): Promise<void> {
    return this.#reachable().delete(key, { previousSeq: revision });
  }

  /** Every key with a record, from the stream's subjects (one request; see node-leases.ts on `kv.keys()`). */
  async keys(): Promise<string[]> {
    this.#reachable();
    const prefix = `$KV.${this.#bucket}.`;
    const info = await this.#jsm.streams.info(`KV_${this.#bucket}`, { subjects_filter: `${prefix}>` });
    return Object.keys(info.state.subjects ?? {}).map((subject) => subject.slice(prefix.length));
  }
}
