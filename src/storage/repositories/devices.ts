import type { Kysely, Selectable, Updateable } from 'kysely';
import type { DevicePatch, DeviceRecord, DeviceRepository } from '../../registry/ports.ts';
import type { DeviceConnectionState, DeviceOrigin } from '../../registry/types.ts';
import { mappingDuplicates } from '../errors.ts';
import { fromJson, fromNullableJson, toJson, toNullableJson } from '../json.ts';
import type { Database, DevicesTable } from '../schema.ts';

function toRow(r: DeviceRecord): DevicesTable {
  return {
    product_key: r.productKey,
    device_name: r.deviceName,
    username: r.username,
    password_hash: r.passwordHash,
    sn: r.sn,
    origin: r.origin,
    connection_state: r.connectionState,
    disabled: r.disabled ? 1 : 0,
    last_online_at: r.lastOnlineAt,
    client_address: r.clientAddress,
    certificate: toNullableJson(r.certificate),
    properties: toJson(r.properties),
    created_at: r.createdAt,
    updated_at: r.updatedAt,
  };
}

function fromRow(row: Selectable<DevicesTable>): DeviceRecord {
  return {
    productKey: row.product_key,
    deviceName: row.device_name,
    username: row.username,
    passwordHash: row.password_hash,
    sn: row.sn,
    origin: row.origin as DeviceOrigin,
    connectionState: row.connection_state as DeviceConnectionState,
    disabled: Boolean(row.disabled),
    lastOnlineAt: row.last_online_at,
    clientAddress: row.client_address,
    certificate: fromNullableJson(row.certificate),
    properties: fromJson(row.properties),
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

function patchToRow(patch: DevicePatch): Updateable<DevicesTable> {
  const row: Updateable<DevicesTable> = {};
  if (patch.passwordHash !== undefined) row.password_hash = patch.passwordHash;
  if (patch.sn !== undefined) row.sn = patch.sn;
  if (patch.disabled !== undefined) row.disabled = patch.disabled ? 1 : 0;
  if (patch.connectionState !== undefined) row.connection_state = patch.connectionState;
  if (patch.lastOnlineAt !== undefined) row.last_online_at = patch.lastOnlineAt;
  if (patch.clientAddress !== undefined) row.client_address = patch.clientAddress;
  if (patch.certificate !== undefined) row.certificate = toNullableJson(patch.certificate);
  if (patch.properties !== undefined) row.properties = toJson(patch.properties);
  if (patch.updatedAt !== undefined) row.updated_at = patch.updatedAt;
  return row;
}

export class KyselyDeviceRepository implements DeviceRepository {
  readonly #db: Kysely<Database>;

  constructor(db: Kysely<Database>) {
    this.#db = db;
  }

  async insert(record: DeviceRecord): Promise<void> {
    await mappingDuplicates(() => this.#db.insertInto('devices').values(toRow(record)).execute());
  }

  async insertMany(records: DeviceRecord[]): Promise<void> {
    if (records.length === 0) return;
    await mappingDuplicates(() => this.#db.insertInto('devices').values(records.map(toRow)).execute());
  }

  async get(productKey: string, deviceName: string): Promise<DeviceRecord | undefined> {
    const row = await this.#db.selectFrom('devices').selectAll()
      .where('product_key', '=', productKey).where('device_name', '=', deviceName).executeTakeFirst();
    return row && fromRow(row);
  }

  async findByUsername(productKey: string, username: string): Promise<DeviceRecord | undefined> {
    const row = await this.#db.selectFrom('devices').selectAll()
      .where('product_key', '=', productKey).where('username', '=', username).executeTakeFirst();
    return row && fromRow(row);
  }

  async list(productKey: string, page: { limit: number; offset: number }): Promise<DeviceRecord[]> {
    const rows = await this.#db.selectFrom('devices').selectAll().where('product_key', '=', productKey)
      .orderBy('device_name').limit(page.limit).offset(page.offset).execute();
    return rows.map(fromRow);
  }

  async count(productKey: string): Promise<number> {
    const row = await this.#db.selectFrom('devices').where('product_key', '=', productKey)
      .select((eb) => eb.fn.countAll<number | string>().as('n')).executeTakeFirstOrThrow();
    return Number(row.n);
  }

  async listIdentities(productKey: string): Promise<{ deviceName: string; username: string | null }[]> {
    const rows = await this.#db.selectFrom('devices').select(['device_name', 'username'])
      .where('product_key', '=', productKey).execute();
    return rows.map((r) => ({ deviceName: r.device_name, username: r.username }));
  }

  async update(productKey: string, deviceName: string, patch: DevicePatch): Promise<boolean> {
    const row = patchToRow(patch);
    if (Object.keys(row).length === 0) return (await this.get(productKey, deviceName)) !== undefined;
    const result = await this.#db.updateTable('devices').set(row)
      .where('product_key', '=', productKey).where('device_name', '=', deviceName).executeTakeFirst();
    return result.numUpdatedRows > 0n;
  }

  async delete(productKey: string, deviceName: string): Promise<boolean> {
    const result = await this.#db.deleteFrom('devices')
      .where('product_key', '=', productKey).where('device_name', '=', deviceName).executeTakeFirst();
    return result.numDeletedRows > 0n;
  }

  async markProductOffline(productKey: string, at: string): Promise<number> {
    const result = await this.#db.updateTable('devices').set({ connection_state: 'OFFLINE', updated_at: at })
      .where('product_key', '=', productKey).where('connection_state', '=', 'ONLINE').executeTakeFirst();
    return Number(result.numUpdatedRows);
  }
}
