/**
 * Devices of a product: one-party rows added one by one or imported in bulk, edits, and the
 * connection state the data plane records.
 */
import { GatehouseError } from '../core/errors.ts';
import { withDuplicatesTranslated, type RegistryContext } from './context.ts';
import { rowsFromCsv, rowsFromJson, type RawImportRow } from './device-import.ts';
import { checkDeviceName, checkDeviceRow, checkPassword, checkSn, type CheckedDeviceRow } from './device-rules.ts';
import type { DeviceRef } from './events.ts';
import { storedProperty } from './device-properties.ts';
import { hashPassword, needsRehash } from './passwords.ts';
import {
  DuplicateKeyError, type DevicePatch, type DeviceRecord, type ProductRecord, type PropertyMergeResult, type Repositories,
} from './ports.ts';
import type { ProductService } from './product-service.ts';
import type {
  Device, DeviceConnectionInfo, DeviceCreateInput, DeviceCredential, DeviceUpdateInput, ImportResult, ImportRowResult,
} from './types.ts';

export const DEFAULT_PAGE_SIZE = 100;
export const MAX_PAGE_SIZE = 1000;
/** scrypt runs on libuv's pool (4 threads); leave room for the data plane's own password checks. */
const HASH_CONCURRENCY = 2;
/** Rows per INSERT: well under SQLite's 32,766 bound parameters and PostgreSQL's 65,535. */
const INSERT_CHUNK = 500;

export interface DevicePage {
  items: Device[];
  total: number;
}

export class DeviceService {
  readonly #ctx: RegistryContext;
  readonly #products: ProductService;

  constructor(context: RegistryContext, products: ProductService) {
    this.#ctx = context;
    this.#products = products;
  }

  async create(productKey: string, input: DeviceCreateInput): Promise<Device> {
    const product = await this.#products.require(productKey);
    const row = checkDeviceRow(input);
    const conflict = await this.#conflictOf(this.#ctx.storage, productKey, row);
    if (conflict) throw conflict;
    const record = this.#newRecord(productKey, row, await hashPassword(row.password, this.#ctx.passwordCost));
    await withDuplicatesTranslated(() => this.#ctx.storage.devices.insert(record));
    this.#ctx.events.emit('device.created', this.#ref(product, record));
    return toDevice(record, {});
  }

  /** A JSON array of rows (each `{sn?, username, password, deviceName?}`). */
  async importJson(productKey: string, body: unknown): Promise<ImportResult> {
    await this.#products.require(productKey);
    return this.#import(productKey, rowsFromJson(body));
  }

  /** CSV `sn,username,password`, header optional. */
  async importCsv(productKey: string, text: string): Promise<ImportResult> {
    await this.#products.require(productKey);
    return this.#import(productKey, rowsFromCsv(text));
  }

  async list(productKey: string, page: { limit?: number; offset?: number } = {}): Promise<DevicePage> {
    await this.#products.require(productKey);
    const limit = page.limit ?? DEFAULT_PAGE_SIZE;
    const offset = page.offset ?? 0;
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE_SIZE) {
      throw new GatehouseError('GW_ERR_VALIDATION', `limit must be an integer from 1 to ${MAX_PAGE_SIZE}`, 'limit');
    }
    if (!Number.isInteger(offset) || offset < 0) throw new GatehouseError('GW_ERR_VALIDATION', 'offset must be a non-negative integer', 'offset');
    const [records, total] = await Promise.all([
      this.#ctx.storage.devices.list(productKey, { limit, offset }),
      this.#ctx.storage.devices.count(productKey),
    ]);
    const properties = await this.#ctx.storage.devices.propertiesOf(productKey, records.map((r) => r.deviceName));
    return { items: records.map((r) => toDevice(r, properties.get(r.deviceName) ?? {})), total };
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
    let record = await this.#ctx.storage.devices.get(productKey, deviceName);
    if (!record) {
      // A third-party service accepted a device we have not seen: it joins the product now.
      checkDeviceName(deviceName);
      const created: DeviceRecord = {
        ...this.#blankRecord(productKey, deviceName, at), origin: 'AUTO_CREATED', ...connection,
      };
      try {
        await this.#ctx.storage.devices.insert(created);
        this.#ctx.events.emit('device.created', this.#ref(product, created));
        this.#ctx.events.emit('device.connected', { ...this.#ref(product, created), clientAddress: info.clientAddress, at });
        return toDevice(created, {});
      } catch (error) {
        // Two first connections at once: the other one created it; record this one as an update.
        if (!(error instanceof DuplicateKeyError)) throw error;
        record = await this.#record(productKey, deviceName);
      }
    }
    await this.#ctx.storage.devices.update(productKey, deviceName, connection);
    record = { ...record, ...connection };
    this.#ctx.events.emit('device.connected', { ...this.#ref(product, record), clientAddress: info.clientAddress, at });
    return this.#withProperties(record);
  }

  async recordDisconnected(productKey: string, deviceName: string, at: Date): Promise<void> {
    const product = await this.#ctx.storage.products.get(productKey);
    const record = await this.#ctx.storage.devices.get(productKey, deviceName);
    if (!product || !record) return; // deleted while connected: nothing left to record
    await this.#ctx.storage.devices.update(productKey, deviceName, { connectionState: 'OFFLINE', updatedAt: at.toISOString() });
    this.#ctx.events.emit('device.disconnected', { ...this.#ref(product, record), at: at.toISOString() });
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

  async markGatewayOffline(gatewayId: string, at: Date): Promise<number> {
    const product = await this.#ctx.storage.products.getByGatewayId(gatewayId);
    return product ? this.#ctx.storage.devices.markProductOffline(product.productKey, at.toISOString()) : 0;
  }

  // ── Import ──────────────────────────────────────────────────────────────────────────────────────

  async #import(productKey: string, rows: RawImportRow[]): Promise<ImportResult> {
    const results: ImportRowResult[] = rows.map(({ row }) => ({ row, ok: false }));
    const candidates: { index: number; row: CheckedDeviceRow }[] = [];
    rows.forEach((raw, index) => {
      const result = results[index] as ImportRowResult;
      if (raw.error) {
        result.error = raw.error;
        return;
      }
      try {
        candidates.push({ index, row: checkDeviceRow(raw.value) });
      } catch (error) {
        result.error = rowError(error);
      }
    });

    // Check against the product (and earlier rows) before hashing: hashing is the slow part.
    let accepted = this.#dropConflicts(candidates, await this.#ctx.storage.devices.listIdentities(productKey), results);
    const hashes = await mapWithConcurrency(accepted, HASH_CONCURRENCY, ({ row }) => hashPassword(row.password, this.#ctx.passwordCost));
    const hashOf = new Map(accepted.map((candidate, i) => [candidate, hashes[i] as string]));

    // Another request may have added devices while we hashed: check again inside the transaction.
    // On PostgreSQL a concurrent insert can still slip in; one retry re-checks against it.
    let inserted: DeviceRecord[] = [];
    for (let attempt = 1; ; attempt++) {
      try {
        inserted = await this.#ctx.storage.transaction(async (tx) => {
          accepted = this.#dropConflicts(accepted, await tx.devices.listIdentities(productKey), results);
          const records = accepted.map((c) => this.#newRecord(productKey, c.row, hashOf.get(c) as string));
          for (let i = 0; i < records.length; i += INSERT_CHUNK) await tx.devices.insertMany(records.slice(i, i + INSERT_CHUNK));
          return records;
        });
        break;
      } catch (error) {
        if (!(error instanceof DuplicateKeyError) || attempt >= 2) throw translateConflict(error);
      }
    }

    accepted.forEach((candidate, i) => {
      const result = results[candidate.index] as ImportRowResult;
      result.ok = true;
      result.deviceName = (inserted[i] as DeviceRecord).deviceName;
    });
    const product = await this.#products.require(productKey);
    for (const record of inserted) this.#ctx.events.emit('device.created', this.#ref(product, record));
    this.#ctx.logger.info({ productKey, rows: rows.length, created: inserted.length }, 'devices_imported');
    return { total: rows.length, created: inserted.length, failed: rows.length - inserted.length, rows: results };
  }

  /** Keeps the candidates whose name and username are free, in order; marks the others. */
  #dropConflicts<T extends { index: number; row: CheckedDeviceRow }>(
    candidates: T[],
    existing: { deviceName: string; username: string | null }[],
    results: ImportRowResult[],
  ): T[] {
    const names = new Set(existing.map((d) => d.deviceName));
    const usernames = new Set(existing.flatMap((d) => (d.username === null ? [] : [d.username])));
    return candidates.filter(({ index, row }) => {
      const result = results[index] as ImportRowResult;
      const error = usernames.has(row.username)
        ? new GatehouseError('GW_ERR_USERNAME_TAKEN', `username "${row.username}" is taken in this product`, 'username')
        : names.has(row.deviceName)
          ? new GatehouseError('GW_ERR_DEVICE_NAME_TAKEN', `device name "${row.deviceName}" is taken in this product`, 'deviceName')
          : undefined;
      if (error) {
        result.error = rowError(error);
        return false;
      }
      names.add(row.deviceName);
      usernames.add(row.username);
      return true;
    });
  }

  // ── Helpers ─────────────────────────────────────────────────────────────────────────────────────

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

  #blankRecord(productKey: string, deviceName: string, at: string): DeviceRecord {
    return {
      productKey, deviceName, username: null, passwordHash: null, sn: null, origin: 'IMPORTED',
      connectionState: 'INACTIVE', disabled: false, lastOnlineAt: null, clientAddress: null, certificate: null,
      createdAt: at, updatedAt: at,
    };
  }

  #newRecord(productKey: string, row: CheckedDeviceRow, passwordHash: string): DeviceRecord {
    const at = this.#ctx.now().toISOString();
    return { ...this.#blankRecord(productKey, row.deviceName, at), username: row.username, passwordHash, sn: row.sn };
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

function rowError(error: unknown): { code: string; message: string; field: string | null } {
  if (error instanceof GatehouseError) return { code: error.code, message: error.message, field: error.field ?? null };
  throw error;
}

function translateConflict(error: unknown): unknown {
  return error instanceof DuplicateKeyError
    ? new GatehouseError('GW_ERR_CONFLICT', 'devices of this product changed during the import; retry it')
    : error;
}

async function mapWithConcurrency<T, R>(items: readonly T[], concurrency: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const index = next++;
      results[index] = await work(items[index] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
  return results;
}
