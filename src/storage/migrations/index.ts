/**
 * Migrations are TypeScript modules bundled with the app (no migration files to ship or find at run
 * time), listed here in order. Add a new one as `NNNN-what.ts` and a line below; never edit an
 * applied one.
 */
import type { Migration, MigrationProvider } from 'kysely';
import { initialSchema } from './0001-initial.ts';
import { platformSchema } from './0002-platform.ts';
import { accessControlSchema } from './0003-access-control.ts';
import { gatewayLimitsSchema } from './0004-gateway-limits.ts';
import { devicePropertiesSchema } from './0005-device-properties.ts';
import { connectionEventsSchema } from './0006-connection-events.ts';
import { deviceSearchSchema } from './0007-device-search.ts';
import { messagePayloadBlobSchema } from './0009-message-payload-blob.ts';
import type { Dialect } from '../schema.ts';
import { devicePresenceSchema } from './0008-device-presence.ts';
import { webhookOutboxClaimsSchema } from './0010-webhook-outbox-claims.ts';
import { importOperationsSchema } from './0011-import-operations.ts';

export class BundledMigrations implements MigrationProvider {
  readonly #dialect: Dialect;

  /** Most migrations are portable; one that is not (an index collation) is written per dialect. */
  constructor(dialect: Dialect) {
    this.#dialect = dialect;
  }

  getMigrations(): Promise<Record<string, Migration>> {
    return Promise.resolve({
      '0001-initial': initialSchema(),
      '0002-platform': platformSchema(),
      '0003-access-control': accessControlSchema(),
      '0004-gateway-limits': gatewayLimitsSchema(),
      '0005-device-properties': devicePropertiesSchema(),
      '0006-connection-events': connectionEventsSchema(),
      '0007-device-search': deviceSearchSchema(this.#dialect),
      '0008-device-presence': devicePresenceSchema(),
      '0009-message-payload-blob': messagePayloadBlobSchema(this.#dialect),
      '0010-webhook-outbox-claims': webhookOutboxClaimsSchema(),
      '0011-import-operations': importOperationsSchema(),
    });
  }
}
