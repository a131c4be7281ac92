import type { Kysely, Selectable } from 'kysely';
import type { RetainedMessageRecord, RetainedMessageRepository, StoredProperties } from '../../registry/ports.ts';
import { fromNullableJson, toNullableJson } from '../json.ts';
import type { Database, RetainedMessagesTable } from '../schema.ts';

function fromRow(row: Selectable<RetainedMessagesTable>): RetainedMessageRecord {
  return {
    gatewayId: row.gateway_id,
    topic: row.topic,
    payload: Buffer.from(row.payload),
    qos: Number(row.qos) as 0 | 1 | 2,
    properties: fromNullableJson<StoredProperties>(row.properties),
    expiresAt: row.expires_at === null ? null : Number(row.expires_at),
  };
}

export class KyselyRetainedMessageRepository implements RetainedMessageRepository {
  readonly #db: Kysely<Database>;

  constructor(db: Kysely<Database>) {
    this.#db = db;
  }

  async get(gatewayId: string, topic: string): Promise<RetainedMessageRecord | undefined> {
    const row = await this.#db.selectFrom('retained_messages').selectAll()
      .where('gateway_id', '=', gatewayId).where('topic', '=', topic).executeTakeFirst();
    return row && fromRow(row);
  }

  async put(record: RetainedMessageRecord): Promise<void> {
    const values = {
      payload: record.payload,
      qos: record.qos,
      properties: toNullableJson(record.properties),
      expires_at: record.expiresAt,
    };
    await this.#db.insertInto('retained_messages')
      .values({ gateway_id: record.gatewayId, topic: record.topic, ...values })
      .onConflict((oc) => oc.columns(['gateway_id', 'topic']).doUpdateSet(values))
      .execute();
  }

  async delete(gatewayId: string, topic: string): Promise<boolean> {
    const result = await this.#db.deleteFrom('retained_messages')
      .where('gateway_id', '=', gatewayId).where('topic', '=', topic).executeTakeFirst();
    return result.numDeletedRows > 0n;
  }

  async listByGateway(gatewayId: string): Promise<RetainedMessageRecord[]> {
    const rows = await this.#db.selectFrom('retained_messages').selectAll()
      .where('gateway_id', '=', gatewayId).orderBy('topic').execute();
    return rows.map(fromRow);
  }

  async deleteExpired(now: number): Promise<number> {
    const result = await this.#db.deleteFrom('retained_messages')
      .where('expires_at', 'is not', null).where('expires_at', '<=', now).executeTakeFirst();
    return Number(result.numDeletedRows);
  }
}
