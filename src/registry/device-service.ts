/**
 * Devices of a product: one-party rows added one by one or imported in bulk, edits, and the
 * connection state the data plane records.
 */
import { GatehouseError } from '../core/errors.ts';
import { withDuplicatesTranslated, type RegistryContext } from './context.ts';
import { MAX_IMPORT_OPERATION_ROWS, rowsFromCsv, rowsFromJson, type RawImportRow } from './device-import.ts';
import { DeviceImporter, type ImportProgress } from './device-importer.ts';
import { checkDeviceListInput, encodeCursor, type DeviceListInput } from './device-list-query.ts';
import { blankDeviceRecord, rowDeviceRecord } from './device-records.ts';
import { checkDeviceName, checkDeviceRow, checkPassword, checkSn, type CheckedDeviceRow } from './device-rules.ts';
import type { DeviceRef } from './events.ts';
import { storedProperty } from './device-properties.ts';
import { hashPassword, needsRehash } from './passwords.ts';
import {
  DuplicateKeyError, type DevicePatch, type DeviceRecord, type ProductRecord, type PropertyMergeResult, type Repositories,
} from './ports.ts';
import { ImportOperations, type ImportOperation } from './import-operations.ts';
import type { ProductService } from './product-service.ts';
import type { Device, DeviceConnectionInfo, DeviceCreateInput, DeviceCredential, DeviceUpdateInput, ImportResult } from './types.ts';

export interface DevicePage {
  items: Device[];
  /** Pass as `cursor` for the next page; null on the last one. */
  nextCursor: string | null;
  /** Devices that match the search and status (all of the product's without them). */
  total: number;
}

export class DeviceService {
  readonly #ctx: RegistryContext;
  readonly #products: ProductService;

  readonly #importer: DeviceImporter;
  readonly #operations: ImportOperations;

  constructor(context: RegistryContext, products: ProductService) {
    this.#ctx = context;
    this.#products = products;
    this.#importer = new DeviceImporter(context);
    this.#operations = new ImportOperations((productKey, rows, onProgress) => this.#import(productKey, rows, onProgress),
      context.storage.importOperations, context.logger, () => context.now(), context.nodeId);
  }

  async create(productKey: string, input: DeviceCreateInput): Promise<Device> {
    const product = await this.#products.require(productKey);
    const row = checkDeviceRow(input);
    const conflict = await this.#conflictOf(this.#ctx.storage, productKey, row);
    if (conflict) throw conflict;
    const record = rowDeviceRecord(productKey, row, await hashPassword(row.password, this.#ctx.passwordCost), this.#ctx.now().toISOString());
    await withDuplicatesTranslated(() => this.#ctx.storage.devices.insert(record));
    this.#ctx.events.emit('device.created', this.#ref(product, record));
    return toDevice(record, {});
  }

  /** A JSON array of rows (each `{sn?, username, password, deviceName?}`), answered row by row when done. */
  async importJson(productKey: string, body: unknown): Promise<ImportResult> {
    await this.#products.require(productKey);
    return this.#import(productKey, rowsFromJson(body));
  }

  /** CSV `sn,username,password`, header optional, answered row by row when done. */
  async importCsv(productKey: string, text: string): Promise<ImportResult> {
    await this.#products.require(productKey);
    return this.#import(productKey, rowsFromCsv(text));
  }

  /** The same, up to 100,000 rows, as an operation: answered at once, its progress read with `importOperation`. */
  async startImport(productKey: string, body: { csv: string } | { json: unknown }): Promise<ImportOperation> {
    await this.#products.require(productKey);
    const rows = 'csv' in body ? rowsFromCsv(body.csv, MAX_IMPORT_OPERATION_ROWS) : rowsFromJson(body.json, MAX_IMPORT_OPERATION_ROWS);
    return this.#operations.start(productKey, rows);
  }

  importOperation(productKey: string, id: string): Promise<ImportOperation> {
    return this.#operations.get(productKey, id);
  }

  /** Resolves when every import operation has finished. */
  importsSettled(): Promise<void> {
    return this.#operations.settled();
  }

  /** At the node's start: import operations a previous life of this node left RUNNING are FAILED. */
  failInterruptedImports(): Promise<number> {
    return this.#operations.failOwnInterrupted();
  }

  /** At the node's stop: its running import operations are recorded FAILED and stop at their next step. */
  closeImports(): Promise<void> {
    return this.#operations.close();
  }

  /** A page of devices in name order, after `cursor`, of those matching `search` (a prefix) and `status`. */
  async list(productKey: string, input: DeviceListInput = {}): Promise<DevicePage> {
    await this.#products.require(productKey);
    const query = checkDeviceListInput(input);
    // One more than the page: whether a next page exists, without a cursor that leads to an empty page.
    const [records, total] = await Promise.all([
      this.#ctx.storage.devices.list(productKey, { ...query, limit: query.limit + 1 }),
      this.#ctx.storage.devices.count(productKey, { search: query.search, status: query.status }),
    ]);
    const page = records.slice(0, query.limit);
    const properties = await this.#ctx.storage.devices.propertiesOf(productKey, page.map((r) => r.deviceName));
    const last = page[page.length - 1];
    return {
      items: page.map((r) => toDevice(r, properties.get(r.deviceName) ?? {})),
      nextCursor: records.length > query.limit && last !== undefined ? encodeCursor(last.deviceName) : null,
      total,
    };
  }

  async get(productKey: string, deviceName: string): Promise<Device> {
    await this.#products.require(productKey);
    return this.#withProperties(await this.#record(productKey, deviceName));
  }

  /** Undefined when the product or the device does not exist. */
  async find(productKey: string, deviceName: string): Promise<Device | undefined> {
    const record = await this.#ctx.storage.devices.get(productKey, deviceName);
    return record && this.#withProperties(record);
  }

  async update(productKey: string, deviceName: string, input: DeviceUpdateInput): Promise<Device> {
    const product = await this.#products.require(productKey);
    const record = await this.#record(productKey, deviceName);
    const patch: DevicePatch = {};
    if (input.password !== undefined) {
      if (record.username === null) {
        throw new GatehouseError('GW_ERR_VALIDATION', 'this device was created by third-party verification and has no one-party password', 'password');
      }
      patch.passwordHash = await hashPassword(checkPassword(input.password), this.#ctx.passwordCost);
    }
    if (input.sn !== undefined) patch.sn = checkSn(input.sn);
    if (input.disabled !== undefined) {
      if (typeof input.disabled !== 'boolean') throw new GatehouseError('GW_ERR_VALIDATION', 'disabled must be true or false', 'disabled');
      patch.disabled = input.disabled;
    }
    if (Object.keys(patch).length === 0) return this.#withProperties(record);
    patch.updatedAt = this.#ctx.now().toISOString();
    await this.#ctx.storage.devices.update(productKey, deviceName, patch);
    const updated = { ...record, ...patch };
    this.#ctx.events.emit('device.updated', this.#ref(product, updated));
    return this.#withProperties(updated);
  }

  async delete(productKey: string, deviceName: string): Promise<void> {
    const product = await this.#products.require(productKey);
    const record = await this.#record(productKey, deviceName);
    await this.#ctx.storage.devices.delete(productKey, deviceName);
    this.#ctx.events.emit('device.deleted', this.#ref(product, record));
  }

  // ── For the data plane ──────────────────────────────────────────────────────────────────────────

  async findCredential(productKey: string, username: string): Promise<DeviceCredential | undefined> {
    const record = await this.#ctx.storage.devices.findByUsername(productKey, username);
    if (!record || record.passwordHash === null) return undefined;
    return { deviceName: record.deviceName, passwordHash: record.passwordHash, disabled: record.disabled };
  }

  async upgradePasswordHash(productKey: string, deviceName: string, verifiedHash: string, password: string | Buffer): Promise<string | undefined> {
    if (!needsRehash(verifiedHash, this.#ctx.passwordCost)) return undefined;
    const next = await hashPassword(password, this.#ctx.passwordCost);
    // No device.updated event: the credential means the same; the authenticator that asked keeps the new hash.
    return (await this.#ctx.storage.devices.replacePasswordHash(productKey, deviceName, verifiedHash, next)) ? next : undefined;
  }

  async recordConnected(productKey: string, deviceName: string, info: DeviceConnectionInfo): Promise<Device> {
    const product = await this.#products.require(productKey);
    const at = info.at.toISOString();
    const connection: DevicePatch = {
      connectionState: 'ONLINE',
      lastOnlineAt: at,
      clientAddress: info.clientAddress,
      ...(info.certificate !== undefined ? { certificate: info.certificate } : {}),
      updatedAt: at,
    };
    // Which node holds it: that node's restart or disconnect marks it offline, no other node's.
    const presence: DevicePatch = this.#ctx.nodeId === null ? {} : { onlineNode: this.#ctx.nodeId };
    let record = await this.#ctx.storage.devices.get(productKey, deviceName);
    if (!record) {
      // A third-party service accepted a device we have not seen: it joins the product now.
      checkDeviceName(deviceName);
      const created: DeviceRecord = {
        ...blankDeviceRecord(productKey, deviceName, at), origin: 'AUTO_CREATED', ...connection,
      };
      try {
        await this.#ctx.storage.devices.insert(created);
        if (this.#ctx.nodeId !== null) await this.#ctx.storage.devices.update(productKey, deviceName, presence);
        this.#ctx.events.emit('device.created', this.#ref(product, created));
        this.#ctx.events.emit('device.connected', { ...this.#ref(product, created), clientAddress: info.clientAddress, at });
        return toDevice(created, {});
      } catch (error) {
        // Two first connections at once: the other one created it; record this one as an update.
        if (!(error instanceof DuplicateKeyError)) throw error;
        record = await this.#record(productKey, deviceName);
      }
    }
    await this.#ctx.storage.devices.update(productKey, deviceName, { ...connection, ...presence });
    record = { ...record, ...connection };
    this.#ctx.events.emit('device.connected', { ...this.#ref(product, record), clientAddress: info.clientAddress, at });
    return this.#withProperties(record);
  }

  /** Whether it was recorded (and announced). */
  async recordDisconnected(productKey: string, deviceName: string, at: Date): Promise<boolean> {
    const product = await this.#ctx.storage.products.get(productKey);
    const record = await this.#ctx.storage.devices.get(productKey, deviceName);
    if (!product || !record) return false; // deleted while connected: nothing left to record
    // A device that has connected to another node since is still online there: not recorded, not announced.
    if (!(await this.#ctx.storage.devices.markOffline(productKey, deviceName, this.#ctx.nodeId, at.toISOString()))) return false;
    this.#ctx.events.emit('device.disconnected', { ...this.#ref(product, record), at: at.toISOString() });
    return true;
  }

  /**
   * A device reported property values (Alink property post): each one replaces the one it last
   * reported, the others stay, untouched in storage (one row per property). A post that would leave the
   * device with more than `limits.maxCount` properties or more than `limits.maxBytes` of them (as one
   * JSON document) is refused whole, as Alink refuses an oversized post: a device cannot grow its
   * record without bound.
   */
  mergeProperties(productKey: string, deviceName: string, values: Record<string, unknown>, at: Date,
    limits: { maxCount: number; maxBytes: number }): Promise<PropertyMergeResult> {
    const posted = Object.entries(values).map(([name, value]) => storedProperty(name, value));
    return this.#ctx.storage.devices.mergeProperties(productKey, deviceName, posted, at.toISOString(), (after) =>
      after.count > limits.maxCount ? 'too_many' : after.bytes > limits.maxBytes ? 'too_large' : 'updated');
  }

  /** `node`: only the devices this node held (and those no node is recorded for); `all`: every one. */
  async markGatewayOffline(gatewayId: string, at: Date, scope: 'all' | 'node' = 'all'): Promise<number> {
    const product = await this.#ctx.storage.products.getByGatewayId(gatewayId);
    if (!product) return 0;
    const node = scope === 'node' && this.#ctx.nodeId !== null ? this.#ctx.nodeId : undefined;
    return this.#ctx.storage.devices.markProductOffline(product.productKey, at.toISOString(), node);
  }

  /**
   * A cluster's nodes whose lease lapsed are dead: the devices they held go OFFLINE (issue 16 item 7), as a
   * node that starts clears its own. Idempotent, so any live node may run it; `live`: every node with a live lease.
   */
  markDeadNodesOffline(live: readonly string[], at: Date): Promise<number> {
    return this.#ctx.storage.devices.markDeadNodesOffline(live, at.toISOString());
  }

  // ── Helpers ─────────────────────────────────────────────────────────────────────────────────────

  async #import(productKey: string, rows: RawImportRow[], onProgress?: (progress: ImportProgress) => void): Promise<ImportResult> {
    const { result, created } = await this.#importer.run(productKey, rows, onProgress);
    const product = await this.#products.require(productKey);
    for (const record of created) this.#ctx.events.emit('device.created', this.#ref(product, record));
    return result;
  }

  async #conflictOf(repos: Repositories, productKey: string, row: CheckedDeviceRow): Promise<GatehouseError | undefined> {
    if (await repos.devices.findByUsername(productKey, row.username)) {
      return new GatehouseError('GW_ERR_USERNAME_TAKEN', `username "${row.username}" is taken in this product`, 'username');
    }
    if (await repos.devices.get(productKey, row.deviceName)) {
      return new GatehouseError('GW_ERR_DEVICE_NAME_TAKEN', `device name "${row.deviceName}" is taken in this product`, 'deviceName');
    }
    return undefined;
  }

  async #record(productKey: string, deviceName: string): Promise<DeviceRecord> {
    const record = await this.#ctx.storage.devices.get(productKey, deviceName);
    if (!record) throw new GatehouseError('GW_ERR_DEVICE_NOT_FOUND', `no device "${deviceName}" in product "${productKey}"`, 'deviceName');
    return record;
  }

  async #withProperties(record: DeviceRecord): Promise<Device> {
    return toDevice(record, await this.#ctx.storage.devices.properties(record.productKey, record.deviceName));
  }

  #ref(product: ProductRecord, record: DeviceRecord): DeviceRef {
    return { gatewayId: product.gatewayId, productKey: product.productKey, deviceName: record.deviceName, username: record.username };
  }
}

export function toDevice(record: DeviceRecord, properties: Record<string, unknown>): Device {
  return {
    deviceName: record.deviceName,
    productKey: record.productKey,
    username: record.username,
    sn: record.sn,
    status: record.disabled ? 'DISABLED' : record.connectionState,
    origin: record.origin,
    lastOnlineAt: record.lastOnlineAt,
    clientAddress: record.clientAddress,
    certificate: record.certificate,
    properties,
    createdAt: record.createdAt,
    updatedAt: record.updatedAt,
  };
}
