/**
 * Per-gateway limits (issue 13). Nullable: gateways stored before it read as the defaults, which are
 * the limits every gateway had, so an upgrade changes nothing for a running fleet.
 */
import type { Kysely, Migration } from 'kysely';

export function gatewayLimitsSchema(): Migration {
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema.alterTable('gateways').addColumn('limits', 'text').execute();
    },
  };
}
