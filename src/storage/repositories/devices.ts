import { sql, type ExpressionBuilder, type Kysely, type RawBuilder, type Selectable, type Updateable } from 'kysely';
import { documentBytes, type PropertyTotals, type StoredProperty } from '../../registry/device-properties.ts';
import type { DeviceFilter, DevicePageQuery, DevicePatch, DeviceRecord, DeviceRepository, PropertyMergeResult } from '../../registry/ports.ts';
import type { DeviceConnectionState, DeviceOrigin, DeviceStatusCounts } from '../../registry/types.ts';
import { mappingDuplicates } from '../errors.ts';
import { fromJson, fromNullableJson, toNullableJson } from '../json.ts';
import type { Database, DevicesTable, Dialect } from '../schema.ts';

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
    created_at: r.createdAt,
    updated_at: r.updatedAt,
    online_node: null,
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
  if (patch.updatedAt !== undefined) row.updated_at = patch.updatedAt;
  if (patch.onlineNode !== undefined) row.online_node = patch.onlineNode;
  return row;
}

/**
 * The least string greater than every string that starts with `prefix`, in code point order: the prefix
 * with its last code point raised by one (a last U+10FFFF is dropped and the one before raised; none left:
 * no upper bound). Surrogate code points are skipped, as they cannot be stored.
 */
export function prefixEnd(prefix: string): string | undefined {
  const points = Array.from(prefix, (ch) => ch.codePointAt(0) as number);
  while (points.length > 0) {
    const last = (points.pop() as number) + 1;
    if (last <= 0x10ffff) return String.fromCodePoint(...points, last === 0xd800 ? 0xe000 : last);
  }
  return undefined;
}

export class KyselyDeviceRepository implements DeviceRepository {
  readonly #db: Kysely<Database>;
  readonly #dialect: Dialect;

  constructor(db: Kysely<Database>, dialect: Dialect) {
    this.#db = db;
    this.#dialect = dialect;
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

  async list(productKey: string, page: DevicePageQuery): Promise<DeviceRecord[]> {
    let select = this.#filtered(productKey, page).selectAll();
    if (page.after !== undefined) select = select.where(this.#c('device_name'), '>', page.after);
    const rows = await select.orderBy(this.#c('device_name')).limit(page.limit).execute();
    return rows.map(fromRow);
  }

  async count(productKey: string, filter: DeviceFilter = {}): Promise<number> {
    const row = await this.#filtered(productKey, filter)
      .select((eb) => eb.fn.countAll<number | string>().as('n')).executeTakeFirstOrThrow();
    return Number(row.n);
  }

  async statusCounts(productKey?: string): Promise<Map<string, DeviceStatusCounts>> {
    let select = this.#db.selectFrom('devices').select(['product_key', 'disabled', 'connection_state'])
      .select((eb) => eb.fn.countAll<number | string>().as('n'))
      .groupBy(['product_key', 'disabled', 'connection_state']);
    if (productKey !== undefined) select = select.where('product_key', '=', productKey);
    const counts = new Map<string, DeviceStatusCounts>();
    for (const row of await select.execute()) {
      let c = counts.get(row.product_key);
      if (c === undefined) counts.set(row.product_key, c = { online: 0, offline: 0, inactive: 0, disabled: 0 });
      const n = Number(row.n);
      if (Number(row.disabled) !== 0) c.disabled += n;
      else if (row.connection_state === 'ONLINE') c.online += n;
      else if (row.connection_state === 'OFFLINE') c.offline += n;
      else c.inactive += n;
    }
    return counts;
  }

  async listIdentities(productKey: string): Promise<{ deviceName: string; username: string | null }[]> {
    const rows = await this.#db.selectFrom('devices').select(['device_name', 'username'])
      .where('product_key', '=', productKey).execute();
    return rows.map((r) => ({ deviceName: r.device_name, username: r.username }));
  }

  async findIdentities(productKey: string, deviceNames: readonly string[], usernames: readonly string[]): Promise<{ deviceName: string; username: string | null }[]> {
    if (deviceNames.length === 0 && usernames.length === 0) return [];
    const rows = await this.#db.selectFrom('devices').select(['device_name', 'username'])
      .where('product_key', '=', productKey)
      .where((eb) => eb.or([
        ...(deviceNames.length > 0 ? [eb('device_name', 'in', deviceNames)] : []),
        ...(usernames.length > 0 ? [eb('username', 'in', usernames)] : []),
      ])).execute();
    return rows.map((r) => ({ deviceName: r.device_name, username: r.username }));
  }

  /** A column compared in code point order (migration 0007: PostgreSQL's indexes are built `COLLATE "C"`). */
  #c(column: 'device_name' | 'username' | 'sn'): RawBuilder<string> {
    return this.#dialect === 'postgres' ? sql<string>`${sql.ref(column)} collate "C"` : sql<string>`${sql.ref(column)}`;
  }

  #filtered(productKey: string, filter: DeviceFilter) {
    let select = this.#db.selectFrom('devices').where('product_key', '=', productKey);
    if (filter.status === 'DISABLED') select = select.where('disabled', '=', 1);
    else if (filter.status !== undefined) select = select.where('disabled', '=', 0).where('connection_state', '=', filter.status);
    const search = filter.search;
    if (search !== undefined && search !== '') {
      // A prefix as an index range: [search, the next string after every string that starts with it).
      const end = prefixEnd(search);
      const within = (column: 'device_name' | 'username' | 'sn') => (eb: ExpressionBuilder<Database, 'devices'>) => eb.and([
        eb(this.#c(column), '>=', search),
        ...(end === undefined ? [] : [eb(this.#c(column), '<', end)]),
      ]);
      select = select.where((eb) => eb.or([within('device_name')(eb), within('username')(eb), within('sn')(eb)]));
    }
    return select;
  }

  async update(productKey: string, deviceName: string, patch: DevicePatch): Promise<boolean> {
    const row = patchToRow(patch);
    if (Object.keys(row).length === 0) return (await this.get(productKey, deviceName)) !== undefined;
    const result = await this.#db.updateTable('devices').set(row)
      .where('product_key', '=', productKey).where('device_name', '=', deviceName).executeTakeFirst();
    return result.numUpdatedRows > 0n;
  }

  async replacePasswordHash(productKey: string, deviceName: string, expected: string, next: string): Promise<boolean> {
    const result = await this.#db.updateTable('devices').set({ password_hash: next })
      .where('product_key', '=', productKey).where('device_name', '=', deviceName).where('password_hash', '=', expected)
      .executeTakeFirst();
    return result.numUpdatedRows > 0n;
  }

  async delete(productKey: string, deviceName: string): Promise<boolean> {
    const result = await this.#db.deleteFrom('devices')
      .where('product_key', '=', productKey).where('device_name', '=', deviceName).executeTakeFirst();
    return result.numDeletedRows > 0n;
  }

  async markProductOffline(productKey: string, at: string, node?: string): Promise<number> {
    let query = this.#db.updateTable('devices').set({ connection_state: 'OFFLINE', online_node: null, updated_at: at })
      .where('product_key', '=', productKey).where('connection_state', '=', 'ONLINE');
    if (node !== undefined) query = query.where((eb) => eb.or([eb('online_node', '=', node), eb('online_node', 'is', null)]));
    const result = await query.executeTakeFirst();
    return Number(result.numUpdatedRows);
  }

  async markOffline(productKey: string, deviceName: string, node: string | null, at: string): Promise<boolean> {
    let query = this.#db.updateTable('devices').set({ connection_state: 'OFFLINE', online_node: null, updated_at: at })
      .where('product_key', '=', productKey).where('device_name', '=', deviceName);
    if (node !== null) query = query.where((eb) => eb.or([eb('online_node', '=', node), eb('online_node', 'is', null)]));
    const result = await query.executeTakeFirst();
    return result.numUpdatedRows > 0n;
  }

  async markDeadNodesOffline(live: readonly string[], at: string): Promise<number> {
    let query = this.#db.updateTable('devices').set({ connection_state: 'OFFLINE', online_node: null, updated_at: at })
      .where('online_node', 'is not', null);
    if (live.length > 0) query = query.where('online_node', 'not in', live);
    const result = await query.executeTakeFirst();
    return Number(result.numUpdatedRows);
  }

  async properties(productKey: string, deviceName: string): Promise<Record<string, unknown>> {
    const rows = await this.#db.selectFrom('device_properties').select(['name', 'value'])
      .where('product_key', '=', productKey).where('device_name', '=', deviceName).orderBy('name').execute();
    return Object.fromEntries(rows.map((r) => [r.name, fromJson(r.value)]));
  }

  async propertiesOf(productKey: string, deviceNames: readonly string[]): Promise<Map<string, Record<string, unknown>>> {
    const byDevice = new Map<string, Record<string, unknown>>();
    if (deviceNames.length === 0) return byDevice;
    const rows = await this.#db.selectFrom('device_properties').select(['device_name', 'name', 'value'])
      .where('product_key', '=', productKey).where('device_name', 'in', deviceNames).orderBy('device_name').orderBy('name').execute();
    for (const r of rows) {
      let properties = byDevice.get(r.device_name);
      if (properties === undefined) byDevice.set(r.device_name, properties = {});
      properties[r.name] = fromJson(r.value);
    }
    return byDevice;
  }

  mergeProperties(productKey: string, deviceName: string, posted: readonly StoredProperty[], updatedAt: string,
    judge: (after: PropertyTotals) => PropertyMergeResult): Promise<PropertyMergeResult> {
    const work = async (db: Kysely<Database>): Promise<PropertyMergeResult> => {
      // Lock the device row first so concurrent posts to one device are judged in turn (PostgreSQL; a
      // SQLite transaction already holds the only connection).
      let device = db.selectFrom('devices').select('device_name')
        .where('product_key', '=', productKey).where('device_name', '=', deviceName);
      if (this.#dialect === 'postgres') device = device.forUpdate();
      if ((await device.executeTakeFirst()) === undefined) return 'device_gone';
      const ofDevice = db.selectFrom('device_properties').where('product_key', '=', productKey).where('device_name', '=', deviceName);
      // Totals come from the stored sizes (an aggregate over an index range), not from the values.
      const totals = await ofDevice.select((eb) => [eb.fn.countAll<number | string>().as('n'), eb.fn.sum<number | string | null>('bytes').as('bytes')])
        .executeTakeFirstOrThrow();
      const names = posted.map((p) => p.name);
      const replaced = names.length === 0 ? [] : await ofDevice.select(['bytes']).where('name', 'in', names).execute();
      const count = Number(totals.n) + posted.length - replaced.length;
      const bytes = Number(totals.bytes ?? 0) - replaced.reduce((sum, r) => sum + r.bytes, 0) + posted.reduce((sum, p) => sum + p.bytes, 0);
      const verdict = judge({ count, bytes: documentBytes(count, bytes) });
      if (verdict !== 'updated' || posted.length === 0) return verdict;
      await db.insertInto('device_properties')
        .values(posted.map((p) => ({ product_key: productKey, device_name: deviceName, name: p.name, value: p.valueJson, bytes: p.bytes })))
        .onConflict((oc) => oc.columns(['product_key', 'device_name', 'name'])
          .doUpdateSet((eb) => ({ value: eb.ref('excluded.value'), bytes: eb.ref('excluded.bytes') })))
        .execute();
      await db.updateTable('devices').set({ updated_at: updatedAt })
        .where('product_key', '=', productKey).where('device_name', '=', deviceName).execute();
      return 'updated';
    };
    return this.#db.isTransaction ? work(this.#db) : this.#db.transaction().execute(work);
  }
}
