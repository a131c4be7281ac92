/**
 * Durable engine state of one gateway in SQLite (better-sqlite3, raw prepared statements: this is on
 * the message path). A batch is one transaction, written synchronously, so it is committed before
 * the acknowledgements of the same event-loop turn are sent.
 */
import type Database from 'better-sqlite3';
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
`;

interface RetainedRow { topic: string; payload_bytes: number; qos: number; properties: string | null; expires_at: number; sender_id: string }
/** Columns added after the first release, for files created before them (CREATE TABLE IF NOT EXISTS keeps old tables). */
function addLaterColumns(db: Database.Database): void {
  const columns = (db.prepare('PRAGMA table_info(mqtt_sessions)').all() as { name: string }[]).map((c) => c.name);
  // Issue 13: the device that owns a session (null in sessions stored before: claimed by the first owner to resume it).
  if (!columns.includes('owner')) db.exec('ALTER TABLE mqtt_sessions ADD COLUMN owner TEXT');
}

interface SessionRow { client_id: string; owner: string | null; expiry_interval: number; disconnected_at: number | null; subscriptions: string; incoming_qos2: string }
interface SubscriptionRow {
  client_id: string; raw: string; qos: number; no_local: number; retain_as_published: number; retain_handling: number; subscription_id: number | null;
}
interface MessageRow {
  client_id: string; seq: number; topic: string; payload: Buffer; message_qos: number; message_retain: number; properties: string | null;
  expires_at: number; sender_id: string; qos: number; retain: number; sub_ids: string | null; packet_id: number; state: string;
}

type QoS = 0 | 1 | 2;

export class SqliteBrokerStore implements BrokerPersistence {
  readonly #db: Database.Database;
  readonly #gatewayId: string;
  readonly #putRetained: Database.Statement;
  readonly #deleteRetained: Database.Statement;
  readonly #readRetained: Database.Statement;
  readonly #putSession: Database.Statement;
  readonly #deleteSession: Database.Statement;
  readonly #deleteSessionMessages: Database.Statement;
  readonly #putMessage: Database.Statement;
  readonly #putSubscription: Database.Statement;
  readonly #deleteSubscription: Database.Statement;
  readonly #deleteSessionSubscriptions: Database.Statement;
  readonly #deleteMessage: Database.Statement;
  readonly #writeBatch: (batch: PersistenceBatch) => void;

  constructor(db: Database.Database, gatewayId: string) {
    this.#db = db;
    this.#gatewayId = gatewayId;
    db.exec(BROKER_STATE_DDL);
    addLaterColumns(db);
    this.#putRetained = db.prepare(`INSERT INTO mqtt_retained (gateway_id, topic, payload, qos, properties, expires_at, sender_id)
      VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (gateway_id, topic) DO UPDATE SET payload = excluded.payload, qos = excluded.qos,
      properties = excluded.properties, expires_at = excluded.expires_at, sender_id = excluded.sender_id`);
    this.#deleteRetained = db.prepare('DELETE FROM mqtt_retained WHERE gateway_id = ? AND topic = ?');
    this.#readRetained = db.prepare('SELECT payload FROM mqtt_retained WHERE gateway_id = ? AND topic = ?').pluck();
    this.#putSession = db.prepare(`INSERT INTO mqtt_sessions (gateway_id, client_id, owner, expiry_interval, disconnected_at, subscriptions, incoming_qos2)
      VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (gateway_id, client_id) DO UPDATE SET owner = excluded.owner, expiry_interval = excluded.expiry_interval,
      disconnected_at = excluded.disconnected_at, subscriptions = excluded.subscriptions, incoming_qos2 = excluded.incoming_qos2`);
    this.#deleteSession = db.prepare('DELETE FROM mqtt_sessions WHERE gateway_id = ? AND client_id = ?');
    this.#deleteSessionMessages = db.prepare('DELETE FROM mqtt_session_messages WHERE gateway_id = ? AND client_id = ?');
    this.#putMessage = db.prepare(`INSERT INTO mqtt_session_messages (gateway_id, client_id, seq, topic, payload, message_qos, message_retain,
      properties, expires_at, sender_id, qos, retain, sub_ids, packet_id, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
      ON CONFLICT (gateway_id, client_id, seq) DO UPDATE SET packet_id = excluded.packet_id, state = excluded.state`);
    this.#deleteMessage = db.prepare('DELETE FROM mqtt_session_messages WHERE gateway_id = ? AND client_id = ? AND seq = ?');
    this.#putSubscription = db.prepare(`INSERT INTO mqtt_subscriptions (gateway_id, client_id, raw, qos, no_local, retain_as_published,
      retain_handling, subscription_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (gateway_id, client_id, raw) DO UPDATE SET
      qos = excluded.qos, no_local = excluded.no_local, retain_as_published = excluded.retain_as_published,
      retain_handling = excluded.retain_handling, subscription_id = excluded.subscription_id`);
    this.#deleteSubscription = db.prepare('DELETE FROM mqtt_subscriptions WHERE gateway_id = ? AND client_id = ? AND raw = ?');
    this.#deleteSessionSubscriptions = db.prepare('DELETE FROM mqtt_subscriptions WHERE gateway_id = ? AND client_id = ?');
    this.#writeBatch = db.transaction((batch: PersistenceBatch) => this.#apply(batch));
  }

  load(): Promise<PersistedState> {
    const g = this.#gatewayId;
    // The index only: payloads stay on disk until a subscriber is owed them (readRetainedPayload).
    const retained = (this.#db.prepare(`SELECT topic, length(payload) AS payload_bytes, qos, properties, expires_at, sender_id
      FROM mqtt_retained WHERE gateway_id = ?`).all(g) as RetainedRow[]).map((r): StoredRetained => ({
      topic: r.topic, payloadBytes: r.payload_bytes, qos: r.qos as QoS, properties: decodeProperties(r.properties),
      expiresAt: r.expires_at, senderId: r.sender_id,
    }));
    this.#moveLegacySubscriptions();
    const filters = new Map<string, StoredSession['subscriptions']>();
    for (const r of this.#db.prepare('SELECT * FROM mqtt_subscriptions WHERE gateway_id = ?').all(g) as SubscriptionRow[]) {
      let list = filters.get(r.client_id);
      if (list === undefined) filters.set(r.client_id, (list = []));
      list.push({
        raw: r.raw, qos: r.qos as QoS, noLocal: r.no_local === 1, retainAsPublished: r.retain_as_published === 1,
        retainHandling: r.retain_handling, subscriptionId: r.subscription_id ?? undefined,
      });
    }
    const sessions = (this.#db.prepare('SELECT client_id, owner, expiry_interval, disconnected_at, incoming_qos2 FROM mqtt_sessions WHERE gateway_id = ?')
      .all(g) as SessionRow[]).map((r): StoredSession => ({
      clientId: r.client_id, ...(r.owner !== null ? { owner: r.owner } : {}), expiryInterval: r.expiry_interval, disconnectedAt: r.disconnected_at,
      subscriptions: filters.get(r.client_id) ?? [],
      incomingQos2: JSON.parse(r.incoming_qos2) as number[],
    }));
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
    return Promise.resolve({ retained, sessions, outbound });
  }

  /**
   * State written before subscriptions had rows of their own kept them as JSON in the session row:
   * moved into rows once, in one transaction, so nothing reads or rewrites that column again.
   */
  #moveLegacySubscriptions(): void {
    const g = this.#gatewayId;
    const legacy = this.#db.prepare(`SELECT client_id, subscriptions FROM mqtt_sessions WHERE gateway_id = ? AND subscriptions <> '[]'`)
      .all(g) as Pick<SessionRow, 'client_id' | 'subscriptions'>[];
    if (legacy.length === 0) return;
    const clear = this.#db.prepare(`UPDATE mqtt_sessions SET subscriptions = '[]' WHERE gateway_id = ? AND client_id = ?`);
    this.#db.transaction(() => {
      for (const r of legacy) {
        for (const s of JSON.parse(r.subscriptions) as StoredSession['subscriptions']) this.#putSubscriptionRow(r.client_id, s);
        clear.run(g, r.client_id);
      }
    })();
  }

  #putSubscriptionRow(clientId: string, s: StoredSubscription): void {
    this.#putSubscription.run(this.#gatewayId, clientId, s.raw, s.qos, s.noLocal ? 1 : 0, s.retainAsPublished ? 1 : 0, s.retainHandling, s.subscriptionId ?? null);
  }

  write(batch: PersistenceBatch): void {
    this.#writeBatch(batch);
  }

  readRetainedPayload(topic: string): Buffer | undefined {
    return this.#readRetained.get(this.#gatewayId, topic) as Buffer | undefined;
  }

  /** Forgets everything of this gateway (it was deleted). */
  clear(): void {
    const g = this.#gatewayId;
    this.#db.transaction(() => {
      this.#db.prepare('DELETE FROM mqtt_retained WHERE gateway_id = ?').run(g);
      this.#db.prepare('DELETE FROM mqtt_sessions WHERE gateway_id = ?').run(g);
      this.#db.prepare('DELETE FROM mqtt_session_messages WHERE gateway_id = ?').run(g);
      this.#db.prepare('DELETE FROM mqtt_subscriptions WHERE gateway_id = ?').run(g);
    })();
  }

  #apply(batch: PersistenceBatch): void {
    const g = this.#gatewayId;
    for (const clientId of batch.sessionsEnded) {
      this.#deleteSession.run(g, clientId);
      this.#deleteSessionMessages.run(g, clientId);
      this.#deleteSessionSubscriptions.run(g, clientId);
    }
    for (const [topic, m] of batch.retained) {
      if (m === null) this.#deleteRetained.run(g, topic);
      else this.#putRetained.run(g, topic, m.payload, m.qos, encodeProperties(m.properties), m.expiresAt, m.senderId);
    }
    for (const [clientId, s] of batch.sessions) {
      if (s !== null) this.#putSession.run(g, clientId, s.owner ?? null, s.expiryInterval, s.disconnectedAt, '[]', JSON.stringify(s.incomingQos2));
    }
    for (const [key, sub] of batch.subscriptions) {
      const sep = key.indexOf('\u0000');
      const clientId = key.slice(0, sep);
      if (sub === null) this.#deleteSubscription.run(g, clientId, key.slice(sep + 1));
      else this.#putSubscriptionRow(clientId, sub);
    }
    for (const [key, o] of batch.outbound) {
      if (o === null) {
        const sep = key.lastIndexOf('\u0000');
        this.#deleteMessage.run(g, key.slice(0, sep), Number(key.slice(sep + 1)));
      } else {
        const m = o.message;
        this.#putMessage.run(g, o.clientId, o.seq, m.topic, m.payload, m.qos, m.retain ? 1 : 0, encodeProperties(m.properties),
          m.expiresAt, m.senderId, o.qos, o.retain ? 1 : 0, o.subIds === undefined ? null : JSON.stringify(o.subIds), o.packetId, o.state);
      }
    }
  }
}
