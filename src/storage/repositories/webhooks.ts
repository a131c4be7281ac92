import type { Kysely, Selectable } from 'kysely';
import type {
  DeadLetterRecord, OutboxClaim, OutboxEntry, WebhookEventType, WebhookRecord, WebhookRepository,
} from '../../registry/ports.ts';
import type { Database, Dialect, WebhookDeadLettersTable, WebhookOutboxTable, WebhooksTable } from '../schema.ts';
import { chunksByRowsAndBytes } from '../chunks.ts';

/** Rows per statement; 7 columns each stays far below both engines' bound-parameter limits. */
const ROWS_PER_STATEMENT = 500;
/** Body characters per outbox INSERT (a larger body goes alone): 500 message events of 1 MB were one statement of 600 MB. */
const OUTBOX_BYTES_PER_STATEMENT = 256 * 1024;


function toRow(r: WebhookRecord): WebhooksTable {
  return {
    id: r.id, url: r.url, description: r.description, gateway_id: r.gatewayId, event_types: JSON.stringify(r.eventTypes),
    secret_encrypted: r.secretEncrypted, ca_certificate: r.caCertificate, enabled: r.enabled ? 1 : 0,
    created_at: r.createdAt, updated_at: r.updatedAt,
  };
}

function fromRow(row: Selectable<WebhooksTable>): WebhookRecord {
  return {
    id: row.id, url: row.url, description: row.description, gatewayId: row.gateway_id,
    eventTypes: JSON.parse(row.event_types) as WebhookEventType[], secretEncrypted: row.secret_encrypted,
    caCertificate: row.ca_certificate, enabled: Boolean(row.enabled), createdAt: row.created_at, updatedAt: row.updated_at,
  };
}

function deadLetterFromRow(row: Selectable<WebhookDeadLettersTable>): DeadLetterRecord {
  return {
    id: row.id, webhookId: row.webhook_id, eventId: row.event_id, body: row.body, attempts: Number(row.attempts),
    lastError: row.last_error, failedAt: row.failed_at,
  };
}

function outboxFromRow(r: Selectable<WebhookOutboxTable>): OutboxEntry {
  return { webhookId: r.webhook_id, eventId: r.event_id, eventType: r.event_type as WebhookEventType, body: r.body, createdAt: r.created_at };
}

export class KyselyWebhookRepository implements WebhookRepository {
  readonly #db: Kysely<Database>;
  readonly #dialect: Dialect;

  constructor(db: Kysely<Database>, dialect: Dialect) {
    this.#db = db;
    this.#dialect = dialect;
  }

  async insert(record: WebhookRecord): Promise<void> {
    await this.#db.insertInto('webhooks').values(toRow(record)).execute();
  }

  async update(record: WebhookRecord): Promise<boolean> {
    const { id, ...row } = toRow(record);
    const result = await this.#db.updateTable('webhooks').set(row).where('id', '=', id).executeTakeFirst();
    return result.numUpdatedRows > 0n;
  }

  async get(id: string): Promise<WebhookRecord | undefined> {
    const row = await this.#db.selectFrom('webhooks').selectAll().where('id', '=', id).executeTakeFirst();
    return row && fromRow(row);
  }

  async list(): Promise<WebhookRecord[]> {
    return (await this.#db.selectFrom('webhooks').selectAll().orderBy('created_at').orderBy('id').execute()).map(fromRow);
  }

  async delete(id: string): Promise<boolean> {
    // Not relying on the cascade: SQLite enforces it only with foreign_keys on.
    await this.#db.deleteFrom('webhook_dead_letters').where('webhook_id', '=', id).execute();
    await this.#db.deleteFrom('webhook_outbox').where('webhook_id', '=', id).execute();
    const result = await this.#db.deleteFrom('webhooks').where('id', '=', id).executeTakeFirst();
    return result.numDeletedRows > 0n;
  }

  async insertDeadLetter(r: DeadLetterRecord): Promise<void> {
    await this.#db.insertInto('webhook_dead_letters').values({
      id: r.id, webhook_id: r.webhookId, event_id: r.eventId, body: r.body, attempts: r.attempts,
      last_error: r.lastError, failed_at: r.failedAt,
    }).execute();
  }

  async listDeadLetters(webhookId: string, limit: number): Promise<DeadLetterRecord[]> {
    const rows = await this.#db.selectFrom('webhook_dead_letters').selectAll().where('webhook_id', '=', webhookId)
      .orderBy('failed_at', 'desc').orderBy('id', 'desc').limit(limit).execute();
    return rows.map(deadLetterFromRow);
  }

  async deleteDeadLetter(webhookId: string, id: string): Promise<boolean> {
    const result = await this.#db.deleteFrom('webhook_dead_letters').where('webhook_id', '=', webhookId).where('id', '=', id)
      .executeTakeFirst();
    return result.numDeletedRows > 0n;
  }

  async addToOutbox(entries: OutboxEntry[], claim?: OutboxClaim): Promise<void> {
    let first = true;
    for (const chunk of chunksByRowsAndBytes(entries, ROWS_PER_STATEMENT, OUTBOX_BYTES_PER_STATEMENT, (e) => e.body.length)) {
      // SQLite writes synchronously: the event loop turns between statements.
      if (!first) await new Promise<void>((resolve) => setImmediate(resolve));
      first = false;
      const rows = chunk.map((e) => ({
        webhook_id: e.webhookId, event_id: e.eventId, event_type: e.eventType, body: e.body, created_at: e.createdAt,
        claimed_by: claim?.nodeId ?? null, claimed_until: claim?.until ?? null,
      }));
      await this.#db.insertInto('webhook_outbox').values(rows).onConflict((oc) => oc.columns(['webhook_id', 'event_id']).doNothing()).execute();
    }
  }

  async removeFromOutbox(keys: { webhookId: string; eventId: string }[]): Promise<void> {
    // Grouped by webhook: one DELETE … IN (…) per webhook and chunk.
    const byWebhook = new Map<string, string[]>();
    for (const k of keys) byWebhook.set(k.webhookId, [...(byWebhook.get(k.webhookId) ?? []), k.eventId]);
    for (const [webhookId, eventIds] of byWebhook) {
      for (let i = 0; i < eventIds.length; i += ROWS_PER_STATEMENT) {
        await this.#db.deleteFrom('webhook_outbox').where('webhook_id', '=', webhookId)
          .where('event_id', 'in', eventIds.slice(i, i + ROWS_PER_STATEMENT)).execute();
      }
    }
  }

  async listOutbox(webhookId: string, limit: number): Promise<OutboxEntry[]> {
    const rows = await this.#db.selectFrom('webhook_outbox').selectAll().where('webhook_id', '=', webhookId)
      .orderBy('created_at').orderBy('event_id').limit(limit).execute();
    return rows.map(outboxFromRow);
  }

  async claimOutbox(webhookId: string, claim: OutboxClaim & { now: string; own: boolean }, limit: number): Promise<OutboxEntry[]> {
    const claimable = (db: Kysely<Database>) => db.selectFrom('webhook_outbox').select('event_id').where('webhook_id', '=', webhookId)
      .where((eb) => eb.or([
        eb('claimed_by', 'is', null),
        eb('claimed_until', '<', claim.now),
        ...(claim.own ? [eb('claimed_by', '=', claim.nodeId)] : []),
      ]))
      .orderBy('created_at').orderBy('event_id').limit(limit);
    const set = { claimed_by: claim.nodeId, claimed_until: claim.until };
    let rows: Selectable<WebhookOutboxTable>[];
    if (this.#dialect === 'postgres') {
      // One statement: the candidate rows are locked as they are picked, and rows another node is claiming
      // this instant are skipped rather than waited for (it takes them; we take the others). The outer
      // WHERE is checked again on each locked row's newest version, so a row claimed just before is left.
      rows = await this.#db.updateTable('webhook_outbox').set(set).where('webhook_id', '=', webhookId)
        .where('event_id', 'in', claimable(this.#db).forUpdate().skipLocked())
        .returningAll().execute();
    } else {
      // SQLite serves one process (no cluster without PostgreSQL): pick, then claim, in one transaction.
      rows = await this.#db.transaction().execute(async (trx) => {
        const ids = (await claimable(trx).execute()).map((r) => r.event_id);
        if (ids.length === 0) return [];
        await trx.updateTable('webhook_outbox').set(set).where('webhook_id', '=', webhookId).where('event_id', 'in', ids).execute();
        return trx.selectFrom('webhook_outbox').selectAll().where('webhook_id', '=', webhookId).where('event_id', 'in', ids).execute();
      });
    }
    // RETURNING keeps no order: oldest first, as listed.
    return rows.map(outboxFromRow).sort((a, b) => (a.createdAt < b.createdAt ? -1 : a.createdAt > b.createdAt ? 1 : a.eventId < b.eventId ? -1 : a.eventId > b.eventId ? 1 : 0));
  }

  async renewOutboxClaims(claim: OutboxClaim): Promise<number> {
    const result = await this.#db.updateTable('webhook_outbox').set({ claimed_until: claim.until })
      .where('claimed_by', '=', claim.nodeId).executeTakeFirst();
    return Number(result.numUpdatedRows);
  }
}
