import { createHash } from 'node:crypto';
import { sql, type Kysely, type Selectable } from 'kysely';
import type {
  ConnectionEventQuery, ConnectionEventRecord, ConnectionEventRepository, ConnectionEventType, ConnectionReason,
} from '../../registry/connection-events.ts';
import type { DeviceCertificateInfo } from '../../registry/types.ts';
import type { ConnectionEventsTable, Database, Dialect } from '../schema.ts';

/**
 * The PostgreSQL advisory lock of a record's fold key (the key the recorder folds by in memory): 64 bits of its SHA-256,
 * as text for the bigint cast (a key's text may hold what PostgreSQL text cannot, and two keys sharing a lock only wait).
 */
export function foldLockOf(r: ConnectionEventRecord): string {
  const key = JSON.stringify([r.gatewayId, r.type, r.reason, r.clientId, r.username, r.deviceName, r.address]);
  return createHash('sha256').update(key).digest().readBigInt64BE(0).toString();
}

/** Rows per INSERT: 15 columns each, under SQLite's 32,766 bound values and PostgreSQL's 65,535. */
const ROWS_PER_STATEMENT = 500;

function toRow(r: ConnectionEventRecord): ConnectionEventsTable {
  return {
    id: r.id, gateway_id: r.gatewayId, type: r.type, reason: r.reason, detail: r.detail, mqtt_reason_code: r.mqttReasonCode,
    protocol_version: r.protocolVersion, client_id: r.clientId, username: r.username, device_name: r.deviceName, address: r.address,
    certificate: r.certificate === null ? null : JSON.stringify(r.certificate), at: r.at, count: r.count, last_at: r.lastAt,
  };
}

function fromRow(row: Selectable<ConnectionEventsTable>): ConnectionEventRecord {
  return {
    id: row.id, gatewayId: row.gateway_id,
    // Written only from the typed record above: the columns hold the same literals.
    type: row.type as ConnectionEventType, reason: row.reason as ConnectionReason,
    detail: row.detail, mqttReasonCode: row.mqtt_reason_code === null ? null : Number(row.mqtt_reason_code),
    protocolVersion: row.protocol_version === null ? null : Number(row.protocol_version),
    clientId: row.client_id, username: row.username, deviceName: row.device_name, address: row.address,
    certificate: row.certificate === null ? null : (JSON.parse(row.certificate) as DeviceCertificateInfo),
    at: row.at, count: Number(row.count), lastAt: row.last_at,
  };
}

export class KyselyConnectionEventRepository implements ConnectionEventRepository {
  readonly #db: Kysely<Database>;
  readonly #dialect: Dialect;

  constructor(db: Kysely<Database>, dialect: Dialect) {
    this.#db = db;
    this.#dialect = dialect;
  }

  async insertMany(records: readonly ConnectionEventRecord[]): Promise<void> {
    const rows = records.map(toRow);
    for (let i = 0; i < rows.length; i += ROWS_PER_STATEMENT) {
      await this.#db.insertInto('connection_events').values(rows.slice(i, i + ROWS_PER_STATEMENT))
        .onConflict((oc) => oc.column('id').doNothing()).execute();
    }
  }

  async addCounts(updates: readonly { id: string; count: number; lastAt: string }[]): Promise<void> {
    // One statement per folded row: a batch holds at most one update per row, and few rows fold.
    for (const u of updates) {
      await this.#db.updateTable('connection_events')
        .set((eb) => ({ count: eb('count', '+', u.count), last_at: u.lastAt }))
        .where('id', '=', u.id).execute();
    }
  }

  async foldMany(records: readonly ConnectionEventRecord[], windowMs: number): Promise<string[]> {
    const ids: string[] = [];
    // One transaction per record: a batch holds one record per key, and only cluster nodes fold here.
    for (const r of records) {
      ids.push(await this.#db.transaction().execute(async (tx) => {
        // Two nodes writing the same key at once would each find nothing and insert: the key's lock makes the second
        // find the first's row. SQLite has one writer (a single process) and needs none.
        if (this.#dialect === 'postgres') await sql`select pg_advisory_xact_lock(${foldLockOf(r)}::bigint)`.execute(tx);
        let same = tx.selectFrom('connection_events').select('id')
          .where('gateway_id', '=', r.gatewayId).where('type', '=', r.type).where('reason', '=', r.reason)
          .where('at', '>=', new Date(Date.parse(r.at) - windowMs).toISOString());
        for (const [column, value] of [['client_id', r.clientId], ['username', r.username], ['device_name', r.deviceName], ['address', r.address]] as const) {
          same = value === null ? same.where(column, 'is', null) : same.where(column, '=', value);
        }
        const found = await same.orderBy('id', 'desc').limit(1).executeTakeFirst();
        if (found === undefined) {
          await tx.insertInto('connection_events').values(toRow(r)).onConflict((oc) => oc.column('id').doNothing()).execute();
          return r.id;
        }
        await tx.updateTable('connection_events')
          .set((eb) => ({ count: eb('count', '+', r.count), last_at: sql<string>`case when last_at < ${r.lastAt} then ${r.lastAt} else last_at end` }))
          .where('id', '=', found.id).execute();
        return found.id;
      }));
    }
    return ids;
  }

  async query(q: ConnectionEventQuery): Promise<ConnectionEventRecord[]> {
    let select = this.#db.selectFrom('connection_events').selectAll();
    if (q.gatewayId !== undefined) select = select.where('gateway_id', '=', q.gatewayId);
    if (q.deviceName !== undefined) select = select.where('device_name', '=', q.deviceName);
    if (q.username !== undefined) select = select.where('username', '=', q.username);
    if (q.clientId !== undefined) select = select.where('client_id', '=', q.clientId);
    if (q.type !== undefined) select = select.where('type', '=', q.type);
    if (q.reason !== undefined) select = select.where('reason', '=', q.reason);
    if (q.since !== undefined) select = select.where('last_at', '>=', q.since);
    if (q.before !== undefined) select = select.where('id', '<', q.before);
    return (await select.orderBy('id', 'desc').limit(q.limit).execute()).map(fromRow);
  }

  async prunePerGateway(keep: number): Promise<number> {
    const gateways = await this.#db.selectFrom('connection_events').select('gateway_id')
      .groupBy('gateway_id').having((eb) => eb.fn.countAll(), '>', keep).execute();
    let removed = 0;
    for (const { gateway_id: gatewayId } of gateways) {
      // The id of the `keep`-th newest event of the gateway: it and everything older go.
      const boundary = await this.#db.selectFrom('connection_events').select('id').where('gateway_id', '=', gatewayId)
        .orderBy('id', 'desc').offset(keep).limit(1).executeTakeFirst();
      if (boundary === undefined) continue;
      const result = await this.#db.deleteFrom('connection_events')
        .where('gateway_id', '=', gatewayId).where('id', '<=', boundary.id).executeTakeFirst();
      removed += Number(result.numDeletedRows);
    }
    return removed;
  }

  async pruneOlderThan(before: string): Promise<number> {
    const result = await this.#db.deleteFrom('connection_events').where('last_at', '<', before).executeTakeFirst();
    return Number(result.numDeletedRows);
  }
}
