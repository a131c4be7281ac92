/**
 * Which node holds a device's connection (issue 16): a node that starts marks offline only the devices
 * it held itself, and a disconnect seen by one node does not mark offline a device that has since
 * connected to another. Nullable: devices recorded before it belong to no node (any node may clear them).
 */
import type { Kysely, Migration } from 'kysely';

export function devicePresenceSchema(): Migration {
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema.alterTable('devices').addColumn('online_node', 'text').execute();
    },
  };
}
