import type { Kysely, Selectable } from 'kysely';
import type { ProductRecord, ProductRepository } from '../../registry/ports.ts';
import { mappingDuplicates } from '../errors.ts';
import type { Database, ProductsTable } from '../schema.ts';

function fromRow(row: Selectable<ProductsTable>): ProductRecord {
  return { productKey: row.product_key, name: row.name, gatewayId: row.gateway_id, createdAt: row.created_at };
}

export class KyselyProductRepository implements ProductRepository {
  readonly #db: Kysely<Database>;

  constructor(db: Kysely<Database>) {
    this.#db = db;
  }

  async insert(record: ProductRecord): Promise<void> {
    await mappingDuplicates(() => this.#db.insertInto('products').values({
      product_key: record.productKey, name: record.name, gateway_id: record.gatewayId, created_at: record.createdAt,
    }).execute());
  }

  async get(productKey: string): Promise<ProductRecord | undefined> {
    const row = await this.#db.selectFrom('products').selectAll().where('product_key', '=', productKey).executeTakeFirst();
    return row && fromRow(row);
  }

  async getByGatewayId(gatewayId: string): Promise<ProductRecord | undefined> {
    const row = await this.#db.selectFrom('products').selectAll().where('gateway_id', '=', gatewayId).executeTakeFirst();
    return row && fromRow(row);
  }

  async listWithDeviceCounts(): Promise<(ProductRecord & { deviceCount: number })[]> {
    const rows = await this.#db.selectFrom('products')
      .leftJoin('devices', 'devices.product_key', 'products.product_key')
      .select(['products.product_key', 'products.name', 'products.gateway_id', 'products.created_at'])
      .select((eb) => eb.fn.count<number | string>('devices.device_name').as('device_count'))
      .groupBy(['products.product_key', 'products.name', 'products.gateway_id', 'products.created_at'])
      .orderBy('products.created_at').orderBy('products.product_key')
      .execute();
    return rows.map((row) => ({ ...fromRow(row), deviceCount: Number(row.device_count) }));
  }
}
