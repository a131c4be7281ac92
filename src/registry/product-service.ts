/** Products: one per gateway, created and deleted with it; read-only for the operator. */
import { GatehouseError } from '../core/errors.ts';
import type { RegistryContext } from './context.ts';
import type { ProductRecord } from './ports.ts';
import type { Product } from './types.ts';

export class ProductService {
  readonly #ctx: RegistryContext;

  constructor(context: RegistryContext) {
    this.#ctx = context;
  }

  async list(): Promise<Product[]> {
    return (await this.#ctx.storage.products.listWithDeviceCounts()).map((p) => ({ ...p }));
  }

  async get(productKey: string): Promise<Product> {
    const record = await this.require(productKey);
    return { ...record, deviceCount: await this.#ctx.storage.devices.count(productKey) };
  }

  /** The product record, or GW_ERR_PRODUCT_NOT_FOUND. */
  async require(productKey: string): Promise<ProductRecord> {
    const record = await this.#ctx.storage.products.get(productKey);
    if (!record) throw new GatehouseError('GW_ERR_PRODUCT_NOT_FOUND', `no product with key "${productKey}"`, 'productKey');
    return record;
  }
}
