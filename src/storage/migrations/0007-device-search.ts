/**
 * Fleets of 100,000 devices (issue 14): the indexes that page, search and count a product's devices without
 * reading them all.
 *
 * - Paging is by device name (keyset) in code point order on both backends. SQLite's BINARY collation
 *   compares UTF-8 bytes, which is code point order; PostgreSQL compares by the database's collation
 *   (often a locale where '-' is ignored and case folds), so there the order, the cursor and the prefix
 *   ranges use `COLLATE "C"`, and these indexes are built with it: the same order on both backends, and a
 *   prefix is one index range whatever the database's locale.
 * - Search is a prefix of the device name, the username or the SN: one index range per column.
 * - Status filters and the per-status counts read (product, disabled, state, name).
 */
import { sql, type Kysely, type Migration } from 'kysely';
import type { Dialect } from '../schema.ts';

export function deviceSearchSchema(dialect: Dialect): Migration {
  const c = dialect === 'postgres' ? sql.raw(' collate "C"') : sql.raw('');
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      if (dialect === 'postgres') {
        // SQLite's primary key and username constraint already are these indexes, in code point order.
        await sql`create index devices_by_name on devices (product_key, device_name${c})`.execute(db);
        await sql`create index devices_by_username on devices (product_key, username${c})`.execute(db);
      }
      await sql`create index devices_by_sn on devices (product_key, sn${c})`.execute(db);
      await sql`create index devices_by_status on devices (product_key, disabled, connection_state, device_name${c})`.execute(db);
    },
  };
}
