import type { Kysely, Selectable } from 'kysely';
import type {
  PersistedSubscription, QueuedMessageRecord, SessionRecord, SessionRepository, StoredProperties,
} from '../../registry/ports.ts';
import { fromJson, fromNullableJson, toJson, toNullableJson } from '../json.ts';
import type { Database, SessionMessagesTable, SessionsTable } from '../schema.ts';

function sessionFromRow(row: Selectable<SessionsTable>): SessionRecord {
  return {
    gatewayId: row.gateway_id,
    clientId: row.client_id,
    expiryIntervalSeconds: Number(row.expiry_interval),
    expiresAt: row.expires_at === null ? null : Number(row.expires_at),
    subscriptions: fromJson<PersistedSubscription[]>(row.subscriptions),
  };
}

function messageFromRow(row: Selectable<SessionMessagesTable>): QueuedMessageRecord {
  return {
    id: Number(row.id),
    gatewayId: row.gateway_id,
    clientId: row.client_id,
    topic: row.topic,
    payload: Buffer.from(row.payload),
    qos: Number(row.qos) as 0 | 1 | 2,
    retain: Boolean(row.retain),
    properties: fromNullableJson<StoredProperties>(row.properties),
    packetId: row.packet_id === null ? null : Number(row.packet_id),
    expiresAt: row.expires_at === null ? null : Number(row.expires_at),
  };
}

export class KyselySessionRepository implements SessionRepository {
  readonly #db: Kysely<Database>;

  constructor(db: Kysely<Database>) {
    this.#db = db;
  }

  async get(gatewayId: string, clientId: string): Promise<SessionRecord | undefined> {
    const row = await this.#db.selectFrom('sessions').selectAll()
      .where('gateway_id', '=', gatewayId).where('client_id', '=', clientId).executeTakeFirst();
    return row && sessionFromRow(row);
  }

  async put(record: SessionRecord): Promise<void> {
    const values = {
      expiry_interval: record.expiryIntervalSeconds,
      expires_at: record.expiresAt,
      subscriptions: toJson(record.subscriptions),
    };
    await this.#db.insertInto('sessions')
      .values({ gateway_id: record.gatewayId, client_id: record.clientId, ...values })
      .onConflict((oc) => oc.columns(['gateway_id', 'client_id']).doUpdateSet(values))
      .execute();
  }

  async delete(gatewayId: string, clientId: string): Promise<boolean> {
    const result = await this.#db.deleteFrom('sessions')
      .where('gateway_id', '=', gatewayId).where('client_id', '=', clientId).executeTakeFirst();
    return result.numDeletedRows > 0n;
  }

  async listByGateway(gatewayId: string): Promise<SessionRecord[]> {
    const rows = await this.#db.selectFrom('sessions').selectAll().where('gateway_id', '=', gatewayId).orderBy('client_id').execute();
    return rows.map(sessionFromRow);
  }

  async appendQueued(message: Omit<QueuedMessageRecord, 'id'>): Promise<number> {
    const row = await this.#db.insertInto('session_messages').values({
      gateway_id: message.gatewayId,
      client_id: message.clientId,
      topic: message.topic,
      payload: message.payload,
      qos: message.qos,
      retain: message.retain ? 1 : 0,
      properties: toNullableJson(message.properties),
      packet_id: message.packetId,
      expires_at: message.expiresAt,
    }).returning('id').executeTakeFirstOrThrow();
    return Number(row.id);
  }

  async listQueued(gatewayId: string, clientId: string): Promise<QueuedMessageRecord[]> {
    const rows = await this.#db.selectFrom('session_messages').selectAll()
      .where('gateway_id', '=', gatewayId).where('client_id', '=', clientId).orderBy('id').execute();
    return rows.map(messageFromRow);
  }

  async setQueuedPacketId(id: number, packetId: number | null): Promise<boolean> {
    const result = await this.#db.updateTable('session_messages').set({ packet_id: packetId }).where('id', '=', id).executeTakeFirst();
    return result.numUpdatedRows > 0n;
  }

  async deleteQueued(gatewayId: string, clientId: string, ids: readonly number[]): Promise<number> {
    let deleted = 0;
    // Chunks keep each statement under the engines' bound-parameter limits.
    for (let i = 0; i < ids.length; i += 500) {
      const result = await this.#db.deleteFrom('session_messages')
        .where('gateway_id', '=', gatewayId).where('client_id', '=', clientId)
        .where('id', 'in', ids.slice(i, i + 500)).executeTakeFirst();
      deleted += Number(result.numDeletedRows);
    }
    return deleted;
  }
}
