/**
 * Import operations in the database (issue 16): an operation started through one node is polled through
 * any node (a cluster's nodes, `GATEHOUSE_WORKERS`' workers), so its state cannot live in the memory of the
 * process that runs it. The running node writes its progress here and keeps `lease_until` (an ISO time)
 * ahead of the clock; a RUNNING operation whose lease lapsed lost its node, and the reader that finds it so
 * records it FAILED. `failures` and `error` are JSON text.
 */
import type { Kysely, Migration } from 'kysely';

export function importOperationsSchema(): Migration {
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema.createTable('import_operations')
        .addColumn('id', 'text', (c) => c.notNull())
        .addColumn('product_key', 'text', (c) => c.notNull())
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('total', 'integer', (c) => c.notNull())
        .addColumn('processed', 'integer', (c) => c.notNull())
        .addColumn('created', 'integer', (c) => c.notNull())
        .addColumn('failed', 'integer', (c) => c.notNull())
        .addColumn('started_at', 'text', (c) => c.notNull())
        .addColumn('finished_at', 'text')
        .addColumn('error', 'text')
        .addColumn('failures', 'text', (c) => c.notNull())
        .addColumn('failures_omitted', 'integer', (c) => c.notNull())
        .addColumn('node_id', 'text')
        .addColumn('lease_until', 'text')
        .addPrimaryKeyConstraint('import_operations_pk', ['id'])
        .execute();
      // Pruning finished operations (oldest first) and failing a restarted node's running ones.
      await db.schema.createIndex('import_operations_finished').on('import_operations').columns(['finished_at']).execute();
      await db.schema.createIndex('import_operations_node').on('import_operations').columns(['node_id', 'state']).execute();
    },
  };
}
