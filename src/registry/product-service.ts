/** Products: one per gateway, created and deleted with it; read-only for the operator. */
import { GatehouseError } from '../core/errors.ts';
import type { RegistryContext } from './context.ts';
import type { ProductRecord } from './ports.ts';
import type { DeviceStatusCounts, Product } from './types.ts';

function noDevices(): DeviceStatusCounts {
  return { online: 0, offline: 0, inactive: 0, disabled: 0 };
}

export class ProductService {
  readonly #ctx: RegistryContext;

  constructor(context: RegistryContext) {
    this.#ctx = context;
  }

  async list(): Promise<Product[]> {
    const [products, counts] = await Promise.all([this.#ctx.storage.products.listWithDeviceCounts(), this.#ctx.storage.devices.statusCounts()]);
    return products.map((p) => ({ ...p, deviceCounts: counts.get(p.productKey) ?? noDevices() }));
  }

  async get(productKey: string): Promise<Product> {
    const record = await this.require(productKey);
    const [deviceCount, counts] = await Promise.all([this.#ctx.storage.devices.count(productKey), this.#ctx.storage.devices.statusCounts(productKey)]);
    return { ...record, deviceCount, deviceCounts: counts.get(productKey) ?? noDevices() };
  }

  /** The product record, or GW_ERR_PRODUCT_NOT_FOUND. */
  async require(productKey: string): Promise<ProductRecord> {
    const record = await this.#ctx.storage.products.get(productKey);
    if (!record) throw new GatehouseError('GW_ERR_PRODUCT_NOT_FOUND', `no product with key "${productKey}"`, 'productKey');
    return record;
  }
}
