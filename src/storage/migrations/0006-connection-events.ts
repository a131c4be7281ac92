/**
 * Connection events (issue 14): CONNECT outcomes and disconnect causes, kept in the platform's database
 * (SQLite or PostgreSQL) so every node of a cluster answers /events alike. Ids are time-ordered text, so
 * "newest first", the cursor and pruning to N per gateway all use the primary key.
 */
import type { Kysely, Migration } from 'kysely';

export function connectionEventsSchema(): Migration {
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema.createTable('connection_events')
        .addColumn('id', 'text', (c) => c.notNull())
        .addColumn('gateway_id', 'text', (c) => c.notNull())
        .addColumn('type', 'text', (c) => c.notNull())
        .addColumn('reason', 'text', (c) => c.notNull())
        .addColumn('detail', 'text')
        .addColumn('mqtt_reason_code', 'integer')
        .addColumn('protocol_version', 'integer')
        .addColumn('client_id', 'text')
        .addColumn('username', 'text')
        .addColumn('device_name', 'text')
        .addColumn('address', 'text')
        .addColumn('certificate', 'text')
        .addColumn('at', 'text', (c) => c.notNull())
        .addColumn('count', 'integer', (c) => c.notNull())
        .addColumn('last_at', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('connection_events_pk', ['id'])
        .execute();
      // Each filter of GET /events with the id order it pages in; (gateway_id, id) also serves pruning.
      await db.schema.createIndex('connection_events_gateway').on('connection_events').columns(['gateway_id', 'id']).execute();
      await db.schema.createIndex('connection_events_device').on('connection_events').columns(['device_name', 'id']).execute();
      await db.schema.createIndex('connection_events_username').on('connection_events').columns(['username', 'id']).execute();
      await db.schema.createIndex('connection_events_client').on('connection_events').columns(['client_id', 'id']).execute();
      await db.schema.createIndex('connection_events_last_at').on('connection_events').columns(['last_at']).execute();
    },
  };
}
