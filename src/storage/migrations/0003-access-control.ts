/**
 * Topic access control per gateway (issue 13). Nullable: gateways stored before it read as the default
 * (ALLOW with no rules), so firmware that cannot change keeps working after the upgrade.
 */
import type { Kysely, Migration } from 'kysely';

export function accessControlSchema(): Migration {
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema.alterTable('gateways').addColumn('access_control', 'text').execute();
    },
  };
}
