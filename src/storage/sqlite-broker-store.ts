/**
 * Durable engine state of one gateway in SQLite. A batch is one transaction, written on the file's
 * writer thread (`SqliteWriter`): the engine holds the acknowledgements of that turn until it has
 * committed (`CommitGate`), and the event loop never waits for SQLite's appends. Reads (the index at
 * start, a retained payload a subscriber is owed) use the caller's own connection.
 */
import type Database from 'better-sqlite3';
import type { SqliteWriter, WriteStatement } from './sqlite-writer.ts';
import type {
  BrokerPersistence, PersistedState, PersistenceBatch, StoredOutbound, StoredRetained, StoredSession, StoredSubscription,
} from '../broker/index.ts';
import { decodeProperties, encodeProperties } from './mqtt-properties-json.ts';

export const BROKER_STATE_DDL = `
CREATE TABLE IF NOT EXISTS mqtt_retained (
  gateway_id TEXT NOT NULL, topic TEXT NOT NULL, payload BLOB NOT NULL, qos INTEGER NOT NULL,
  properties TEXT, expires_at INTEGER NOT NULL, sender_id TEXT NOT NULL,
  PRIMARY KEY (gateway_id, topic));
CREATE TABLE IF NOT EXISTS mqtt_sessions (
  gateway_id TEXT NOT NULL, client_id TEXT NOT NULL, expiry_interval INTEGER NOT NULL,
  disconnected_at INTEGER, subscriptions TEXT NOT NULL, incoming_qos2 TEXT NOT NULL,
  PRIMARY KEY (gateway_id, client_id));
CREATE TABLE IF NOT EXISTS mqtt_subscriptions (
  gateway_id TEXT NOT NULL, client_id TEXT NOT NULL, raw TEXT NOT NULL, qos INTEGER NOT NULL,
  no_local INTEGER NOT NULL, retain_as_published INTEGER NOT NULL, retain_handling INTEGER NOT NULL, subscription_id INTEGER,
  PRIMARY KEY (gateway_id, client_id, raw));
CREATE TABLE IF NOT EXISTS mqtt_session_messages (
  gateway_id TEXT NOT NULL, client_id TEXT NOT NULL, seq INTEGER NOT NULL,
  topic TEXT NOT NULL, payload BLOB NOT NULL, message_qos INTEGER NOT NULL, message_retain INTEGER NOT NULL,
  properties TEXT, expires_at INTEGER NOT NULL, sender_id TEXT NOT NULL,
  qos INTEGER NOT NULL, retain INTEGER NOT NULL, sub_ids TEXT, packet_id INTEGER NOT NULL, state TEXT NOT NULL,
  PRIMARY KEY (gateway_id, client_id, seq));
CREATE TABLE IF NOT EXISTS mqtt_stream_positions (
  gateway_id TEXT NOT NULL PRIMARY KEY, position INTEGER NOT NULL);
`;

interface RetainedRow { topic: string; payload_bytes: number; qos: number; properties: string | null; expires_at: number; sender_id: string }
/** Columns added after the first release, for files created before them (CREATE TABLE IF NOT EXISTS keeps old tables). */
function addLaterColumns(db: Database.Database): void {
  const columns = (db.prepare('PRAGMA table_info(mqtt_sessions)').all() as { name: string }[]).map((c) => c.name);
  // Issue 13: the device that owns a session (null in sessions stored before: claimed by the first owner to resume it).
  if (!columns.includes('owner')) db.exec('ALTER TABLE mqtt_sessions ADD COLUMN owner TEXT');
  // Issue 16: a cluster node's session that was replaying the stream, and where (null: at the gateway's position).
  if (!columns.includes('stream_floor')) db.exec('ALTER TABLE mqtt_sessions ADD COLUMN stream_floor INTEGER');
}

interface SessionRow {
  client_id: string; owner: string | null; expiry_interval: number; disconnected_at: number | null; subscriptions: string; incoming_qos2: string;
  stream_floor: number | null;
}
interface SubscriptionRow {
  client_id: string; raw: string; qos: number; no_local: number; retain_as_published: number; retain_handling: number; subscription_id: number | null;
}
interface MessageRow {
  client_id: string; seq: number; topic: string; payload: Buffer; message_qos: number; message_retain: number; properties: string | null;
  expires_at: number; sender_id: string; qos: number; retain: number; sub_ids: string | null; packet_id: number; state: string;
}

type QoS = 0 | 1 | 2;

export class SqliteBrokerStore implements BrokerPersistence {
  /** The caller's connection: reads only (the index at start, retained payloads on demand). */
  readonly #db: Database.Database;
  readonly #gatewayId: string;
  readonly #writer: SqliteWriter;
  readonly #readRetained: Database.Statement;

  /** `db` reads the file, `writer` writes it; the tables exist (`prepareBrokerState`). */
  constructor(db: Database.Database, gatewayId: string, writer: SqliteWriter) {
    this.#db = db;
    this.#gatewayId = gatewayId;
    this.#writer = writer;
    this.#readRetained = db.prepare('SELECT payload FROM mqtt_retained WHERE gateway_id = ? AND topic = ?').pluck();
  }

  async load(): Promise<PersistedState> {
    // A gateway restarted while its last batches are still being written reads them too.
    await this.#writer.drain();
    const g = this.#gatewayId;
    // The index only: payloads stay on disk until a subscriber is owed them (readRetainedPayload).
    const retained = (this.#db.prepare(`SELECT topic, length(payload) AS payload_bytes, qos, properties, expires_at, sender_id
      FROM mqtt_retained WHERE gateway_id = ?`).all(g) as RetainedRow[]).map((r): StoredRetained => ({
      topic: r.topic, payloadBytes: r.payload_bytes, qos: r.qos as QoS, properties: decodeProperties(r.properties),
      expiresAt: r.expires_at, senderId: r.sender_id,
    }));
    const filters = new Map<string, StoredSession['subscriptions']>();
    for (const r of this.#db.prepare('SELECT * FROM mqtt_subscriptions WHERE gateway_id = ?').all(g) as SubscriptionRow[]) {
      let list = filters.get(r.client_id);
      if (list === undefined) filters.set(r.client_id, (list = []));
      list.push({
        raw: r.raw, qos: r.qos as QoS, noLocal: r.no_local === 1, retainAsPublished: r.retain_as_published === 1,
        retainHandling: r.retain_handling, subscriptionId: r.subscription_id ?? undefined,
      });
    }
    const sessions = (this.#db.prepare('SELECT client_id, owner, expiry_interval, disconnected_at, incoming_qos2, stream_floor FROM mqtt_sessions WHERE gateway_id = ?')
      .all(g) as SessionRow[]).map((r): StoredSession => ({
      clientId: r.client_id, ...(r.owner !== null ? { owner: r.owner } : {}), expiryInterval: r.expiry_interval, disconnectedAt: r.disconnected_at,
      subscriptions: filters.get(r.client_id) ?? [],
      incomingQos2: JSON.parse(r.incoming_qos2) as number[],
      ...(r.stream_floor !== null ? { streamFloor: r.stream_floor } : {}),
    }));
    const position = this.#db.prepare('SELECT position FROM mqtt_stream_positions WHERE gateway_id = ?').pluck().get(g) as number | undefined;
    const outbound = (this.#db.prepare('SELECT * FROM mqtt_session_messages WHERE gateway_id = ? ORDER BY client_id, seq')
      .all(g) as MessageRow[]).map((r): StoredOutbound => ({
      clientId: r.client_id, seq: r.seq,
      message: {
        topic: r.topic, payload: r.payload, qos: r.message_qos as QoS, retain: r.message_retain === 1,
        properties: decodeProperties(r.properties), expiresAt: r.expires_at, senderId: r.sender_id,
      },
      qos: r.qos as QoS, retain: r.retain === 1, subIds: r.sub_ids === null ? undefined : JSON.parse(r.sub_ids) as number[],
      packetId: r.packet_id, state: r.state === 'pubrel' ? 'pubrel' : 'publish',
    }));
    return { retained, sessions, outbound, ...(position !== undefined ? { streamPosition: position } : {}) };
  }

  /** Written on the writer's thread; settles once committed (the engine holds the acknowledgements until then). */
  write(batch: PersistenceBatch): Promise<number> {
    return this.#writer.run(statementsOf(this.#gatewayId, batch));
  }

  readRetainedPayload(topic: string): Buffer | undefined {
    return this.#readRetained.get(this.#gatewayId, topic) as Buffer | undefined;
  }

  /** Forgets everything of this gateway (it was deleted), after what was written before. */
  clear(): Promise<number> {
    return this.#writer.run(clearStatements(this.#gatewayId));
  }
}

const PUT_RETAINED = `INSERT INTO mqtt_retained (gateway_id, topic, payload, qos, properties, expires_at, sender_id)
  VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (gateway_id, topic) DO UPDATE SET payload = excluded.payload, qos = excluded.qos,
  properties = excluded.properties, expires_at = excluded.expires_at, sender_id = excluded.sender_id`;
const DELETE_RETAINED = 'DELETE FROM mqtt_retained WHERE gateway_id = ? AND topic = ?';
const PUT_SESSION = `INSERT INTO mqtt_sessions (gateway_id, client_id, owner, expiry_interval, disconnected_at, subscriptions, incoming_qos2, stream_floor)
  VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (gateway_id, client_id) DO UPDATE SET owner = excluded.owner, expiry_interval = excluded.expiry_interval,
  disconnected_at = excluded.disconnected_at, subscriptions = excluded.subscriptions, incoming_qos2 = excluded.incoming_qos2,
  stream_floor = excluded.stream_floor`;
const PUT_POSITION = `INSERT INTO mqtt_stream_positions (gateway_id, position) VALUES (?, ?)
  ON CONFLICT (gateway_id) DO UPDATE SET position = excluded.position`;
const DELETE_SESSION = 'DELETE FROM mqtt_sessions WHERE gateway_id = ? AND client_id = ?';
const DELETE_SESSION_MESSAGES = 'DELETE FROM mqtt_session_messages WHERE gateway_id = ? AND client_id = ?';
const PUT_MESSAGE = `INSERT INTO mqtt_session_messages (gateway_id, client_id, seq, topic, payload, message_qos, message_retain,
  properties, expires_at, sender_id, qos, retain, sub_ids, packet_id, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
  ON CONFLICT (gateway_id, client_id, seq) DO UPDATE SET packet_id = excluded.packet_id, state = excluded.state`;
const DELETE_MESSAGE = 'DELETE FROM mqtt_session_messages WHERE gateway_id = ? AND client_id = ? AND seq = ?';
const PUT_SUBSCRIPTION = `INSERT INTO mqtt_subscriptions (gateway_id, client_id, raw, qos, no_local, retain_as_published,
  retain_handling, subscription_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (gateway_id, client_id, raw) DO UPDATE SET
  qos = excluded.qos, no_local = excluded.no_local, retain_as_published = excluded.retain_as_published,
  retain_handling = excluded.retain_handling, subscription_id = excluded.subscription_id`;
const DELETE_SUBSCRIPTION = 'DELETE FROM mqtt_subscriptions WHERE gateway_id = ? AND client_id = ? AND raw = ?';
const DELETE_SESSION_SUBSCRIPTIONS = 'DELETE FROM mqtt_subscriptions WHERE gateway_id = ? AND client_id = ?';

function putSubscription(g: string, clientId: string, s: StoredSubscription): WriteStatement {
  return { sql: PUT_SUBSCRIPTION, params: [g, clientId, s.raw, s.qos, s.noLocal ? 1 : 0, s.retainAsPublished ? 1 : 0, s.retainHandling, s.subscriptionId ?? null] };
}

function clearStatements(g: string): WriteStatement[] {
  return ['mqtt_retained', 'mqtt_sessions', 'mqtt_session_messages', 'mqtt_subscriptions', 'mqtt_stream_positions']
    .map((table) => ({ sql: `DELETE FROM ${table} WHERE gateway_id = ?`, params: [g] }));
}

/** One batch as the statements of one transaction, ended sessions first (see `PersistenceBatch.sessionsEnded`). */
function statementsOf(g: string, batch: PersistenceBatch): WriteStatement[] {
  const out: WriteStatement[] = [];
  for (const clientId of batch.sessionsEnded) {
    out.push({ sql: DELETE_SESSION, params: [g, clientId] }, { sql: DELETE_SESSION_MESSAGES, params: [g, clientId] }, { sql: DELETE_SESSION_SUBSCRIPTIONS, params: [g, clientId] });
  }
  for (const [topic, m] of batch.retained) {
    if (m === null) out.push({ sql: DELETE_RETAINED, params: [g, topic] });
    else out.push({ sql: PUT_RETAINED, params: [g, topic, m.payload, m.qos, encodeProperties(m.properties), m.expiresAt, m.senderId] });
  }
  for (const [clientId, s] of batch.sessions) {
    if (s !== null) {
      out.push({ sql: PUT_SESSION, params: [g, clientId, s.owner ?? null, s.expiryInterval, s.disconnectedAt, '[]', JSON.stringify(s.incomingQos2), s.streamFloor ?? null] });
    }
  }
  if (batch.streamPosition !== undefined) out.push({ sql: PUT_POSITION, params: [g, batch.streamPosition] });
  for (const [clientId, subs] of batch.subscriptions) {
    for (const [raw, sub] of subs) {
      if (sub === null) out.push({ sql: DELETE_SUBSCRIPTION, params: [g, clientId, raw] });
      else out.push(putSubscription(g, clientId, sub));
    }
  }
  for (const [key, o] of batch.outbound) {
    if (o === null) {
      const sep = key.lastIndexOf('\u0000');
      out.push({ sql: DELETE_MESSAGE, params: [g, key.slice(0, sep), Number(key.slice(sep + 1))] });
    } else {
      const m = o.message;
      out.push({
        sql: PUT_MESSAGE,
        params: [g, o.clientId, o.seq, m.topic, m.payload, m.qos, m.retain ? 1 : 0, encodeProperties(m.properties), m.expiresAt, m.senderId,
          o.qos, o.retain ? 1 : 0, o.subIds === undefined ? null : JSON.stringify(o.subIds), o.packetId, o.state],
      });
    }
  }
  return out;
}

/**
 * The tables, on the caller's connection before any writer opens the file: made when missing, columns
 * added since the first release added, and subscriptions kept the old way (JSON in the session row)
 * moved into rows of their own, once, so nothing reads or rewrites that column again.
 */
export function prepareBrokerState(db: Database.Database): void {
  db.exec(BROKER_STATE_DDL);
  addLaterColumns(db);
  const legacy = db.prepare(`SELECT gateway_id, client_id, subscriptions FROM mqtt_sessions WHERE subscriptions <> '[]'`)
    .all() as { gateway_id: string; client_id: string; subscriptions: string }[];
  if (legacy.length === 0) return;
  const clear = db.prepare(`UPDATE mqtt_sessions SET subscriptions = '[]' WHERE gateway_id = ? AND client_id = ?`);
  db.transaction(() => {
    for (const r of legacy) {
      for (const sub of JSON.parse(r.subscriptions) as StoredSession['subscriptions']) {
        const { sql, params } = putSubscription(r.gateway_id, r.client_id, sub);
        db.prepare(sql).run(params);
      }
      clear.run(r.gateway_id, r.client_id);
    }
  })();
}
