/**
 * Webhook outbox rows claimed by the node that sends them (issue 16 item 7): in a cluster every node
 * reads the shared outbox when it starts, and without a claim it resent what another live node was
 * sending. `claimed_by` is the node id, `claimed_until` an ISO time the holder keeps pushing forward;
 * a row whose claim lapsed (its node died) is taken by another node. Nullable: rows written before
 * belong to no node (any node may take them).
 */
import type { Kysely, Migration } from 'kysely';

export function webhookOutboxClaimsSchema(): Migration {
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema.alterTable('webhook_outbox').addColumn('claimed_by', 'text').execute();
      await db.schema.alterTable('webhook_outbox').addColumn('claimed_until', 'text').execute();
    },
  };
}
