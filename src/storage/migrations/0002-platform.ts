/** The platform side (issue 6): stored device messages, webhooks, their pending deliveries and dead letters. */
import type { Kysely, Migration } from 'kysely';

export function platformSchema(): Migration {
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      // No foreign key to devices: a message outlives nothing, but inserting in batches must not fail
      // because a device was deleted a moment ago; the store prunes by age anyway.
      await db.schema.createTable('messages')
        .addColumn('id', 'text', (c) => c.notNull())
        .addColumn('gateway_id', 'text', (c) => c.notNull())
        .addColumn('product_key', 'text', (c) => c.notNull())
        .addColumn('device_name', 'text', (c) => c.notNull())
        .addColumn('topic', 'text', (c) => c.notNull())
        .addColumn('qos', 'integer', (c) => c.notNull())
        // Base64 text: the form the API serves it in, and the same column type on both engines.
        .addColumn('payload', 'text', (c) => c.notNull())
        .addColumn('parsed', 'text')
        .addColumn('parse_error', 'text')
        .addColumn('received_at', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('messages_pk', ['id'])
        .execute();
      // Ids are time-ordered, so (device, id) serves both "latest of a device" and pruning to N.
      await db.schema.createIndex('messages_device').on('messages').columns(['product_key', 'device_name', 'id']).execute();
      await db.schema.createIndex('messages_gateway').on('messages').columns(['gateway_id', 'id']).execute();
      await db.schema.createIndex('messages_received').on('messages').column('received_at').execute();

      await db.schema.createTable('webhooks')
        .addColumn('id', 'text', (c) => c.notNull())
        .addColumn('url', 'text', (c) => c.notNull())
        .addColumn('description', 'text')
        .addColumn('gateway_id', 'text')
        .addColumn('event_types', 'text', (c) => c.notNull())
        .addColumn('secret_encrypted', 'text', (c) => c.notNull())
        .addColumn('ca_certificate', 'text')
        .addColumn('enabled', 'integer', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('webhooks_pk', ['id'])
        .execute();

      await db.schema.createTable('webhook_dead_letters')
        .addColumn('id', 'text', (c) => c.notNull())
        .addColumn('webhook_id', 'text', (c) => c.notNull())
        .addColumn('event_id', 'text', (c) => c.notNull())
        .addColumn('body', 'text', (c) => c.notNull())
        .addColumn('attempts', 'integer', (c) => c.notNull())
        .addColumn('last_error', 'text', (c) => c.notNull())
        .addColumn('failed_at', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('webhook_dead_letters_pk', ['id'])
        .addForeignKeyConstraint('webhook_dead_letters_webhook_fk', ['webhook_id'], 'webhooks', ['id'], (fk) => fk.onDelete('cascade'))
        .execute();
      // Deliveries not yet acknowledged by their endpoint: reloaded at start, so a restart loses none.
      await db.schema.createTable('webhook_outbox')
        .addColumn('webhook_id', 'text', (c) => c.notNull())
        .addColumn('event_id', 'text', (c) => c.notNull())
        .addColumn('event_type', 'text', (c) => c.notNull())
        .addColumn('body', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('webhook_outbox_pk', ['webhook_id', 'event_id'])
        .execute();

      await db.schema.createIndex('webhook_dead_letters_webhook').on('webhook_dead_letters').columns(['webhook_id', 'failed_at']).execute();
    },

    async down(db: Kysely<unknown>): Promise<void> {
      for (const table of ['webhook_outbox', 'webhook_dead_letters', 'webhooks', 'messages']) {
        await db.schema.dropTable(table).execute();
      }
    },
  };
}
