import type { Kysely, Selectable } from 'kysely';
import type { MessageQuery, MessageRecord, MessageRepository } from '../../registry/ports.ts';
import type { Database, MessagesTable } from '../schema.ts';

/** Rows per INSERT: SQLite allows 32766 bound values, PostgreSQL 65535; 10 columns each. */
const ROWS_PER_STATEMENT = 500;

function toRow(r: MessageRecord): MessagesTable {
  return {
    id: r.id, gateway_id: r.gatewayId, product_key: r.productKey, device_name: r.deviceName, topic: r.topic, qos: r.qos,
    payload: r.payload, parsed: r.parsed === null ? null : JSON.stringify(r.parsed),
    parse_error: r.parseError, received_at: r.receivedAt,
  };
}

function fromRow(row: Selectable<MessagesTable>): MessageRecord {
  return {
    id: row.id, gatewayId: row.gateway_id, productKey: row.product_key, deviceName: row.device_name, topic: row.topic,
    qos: Number(row.qos), payload: row.payload,
    parsed: row.parsed === null ? null : (JSON.parse(row.parsed) as Record<string, unknown>),
    parseError: row.parse_error, receivedAt: row.received_at,
  };
}

export class KyselyMessageRepository implements MessageRepository {
  readonly #db: Kysely<Database>;

  constructor(db: Kysely<Database>) {
    this.#db = db;
  }

  async insertMany(records: MessageRecord[]): Promise<void> {
    if (records.length === 0) return;
    const rows = records.map(toRow);
    // Not wrapped in a transaction of its own: this repository may already run inside one
    // (Storage.transaction), and a batch is usually a single statement anyway.
    for (let i = 0; i < rows.length; i += ROWS_PER_STATEMENT) {
      // A message replayed from the uplink journal after a crash may already be here: keep the first.
      await this.#db.insertInto('messages').values(rows.slice(i, i + ROWS_PER_STATEMENT)).onConflict((oc) => oc.column('id').doNothing()).execute();
    }
  }

  async query(q: MessageQuery): Promise<MessageRecord[]> {
    let select = this.#db.selectFrom('messages').selectAll();
    if (q.gatewayId !== undefined) select = select.where('gateway_id', '=', q.gatewayId);
    if (q.productKey !== undefined) select = select.where('product_key', '=', q.productKey);
    if (q.deviceName !== undefined) select = select.where('device_name', '=', q.deviceName);
    if (q.since !== undefined) select = select.where('received_at', '>=', q.since);
    if (q.parseFailed === true) select = select.where('parse_error', 'is not', null);
    return (await select.orderBy('id', 'desc').limit(q.limit).execute()).map(fromRow);
  }

  async pruneDevice(productKey: string, deviceName: string, keep: number): Promise<number> {
    // The id of the `keep`-th newest message: everything older goes.
    const boundary = await this.#db.selectFrom('messages').select('id')
      .where('product_key', '=', productKey).where('device_name', '=', deviceName)
      .orderBy('id', 'desc').offset(keep).limit(1).executeTakeFirst();
    if (boundary === undefined) return 0;
    const result = await this.#db.deleteFrom('messages')
      .where('product_key', '=', productKey).where('device_name', '=', deviceName).where('id', '<=', boundary.id)
      .executeTakeFirst();
    return Number(result.numDeletedRows);
  }

  async pruneOlderThan(before: string): Promise<number> {
    const result = await this.#db.deleteFrom('messages').where('received_at', '<', before).executeTakeFirst();
    return Number(result.numDeletedRows);
  }
}
