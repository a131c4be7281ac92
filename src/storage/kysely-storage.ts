/** `Storage` over a Kysely instance: the same repositories for SQLite and PostgreSQL, and transactions. */
import { sql, type Kysely } from 'kysely';
import type { Repositories, Storage } from '../registry/ports.ts';
import { KyselyConnectionEventRepository } from './repositories/connection-events.ts';
import { KyselyDeviceRepository } from './repositories/devices.ts';
import { KyselyFunctionRepository } from './repositories/functions.ts';
import { KyselyGatewayRepository } from './repositories/gateways.ts';
import { KyselyImportOperationRepository } from './repositories/import-operations.ts';
import { KyselyMessageRepository } from './repositories/messages.ts';
import { KyselyProductRepository } from './repositories/products.ts';
import { KyselySettingsRepository } from './repositories/settings.ts';
import { KyselyWebhookRepository } from './repositories/webhooks.ts';
import type { Database, Dialect } from './schema.ts';

function repositoriesOver(db: Kysely<Database>, dialect: Dialect): Repositories {
  return {
    gateways: new KyselyGatewayRepository(db),
    products: new KyselyProductRepository(db),
    devices: new KyselyDeviceRepository(db, dialect),
    functions: new KyselyFunctionRepository(db),
    settings: new KyselySettingsRepository(db),
    messages: new KyselyMessageRepository(db),
    webhooks: new KyselyWebhookRepository(db, dialect),
    connectionEvents: new KyselyConnectionEventRepository(db, dialect),
    importOperations: new KyselyImportOperationRepository(db),
  };
}

export class KyselyStorage implements Storage {
  readonly dialect: Dialect;
  /** The installation this database belongs to, once checked at start (null when not checked). */
  installationId: string | null = null;
  readonly gateways;
  readonly products;
  readonly devices;
  readonly functions;
  readonly settings;
  readonly messages;
  readonly webhooks;
  readonly connectionEvents;
  readonly importOperations;
  readonly #db: Kysely<Database>;
  readonly #onClose: () => Promise<void>;

  constructor(db: Kysely<Database>, dialect: Dialect, onClose: () => Promise<void> = () => db.destroy()) {
    this.#db = db;
    this.dialect = dialect;
    this.#onClose = onClose;
    ({
      gateways: this.gateways, products: this.products, devices: this.devices, functions: this.functions,
      settings: this.settings, messages: this.messages, webhooks: this.webhooks,
      connectionEvents: this.connectionEvents, importOperations: this.importOperations,
    } = repositoriesOver(db, dialect));
  }

  /** For migrations and tests; application code goes through the repositories. */
  get db(): Kysely<Database> {
    return this.#db;
  }

  transaction<T>(work: (tx: Repositories) => Promise<T>): Promise<T> {
    return this.#db.transaction().execute((trx) => work(repositoriesOver(trx, this.dialect)));
  }

  async ping(): Promise<void> {
    await sql`select 1`.execute(this.#db);
  }

  close(): Promise<void> {
    return this.#onClose();
  }
}
