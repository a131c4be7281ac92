import type { Kysely, Selectable } from 'kysely';
import type { GatewayRecord, GatewayRepository } from '../../registry/ports.ts';
import type { AuthType, GatewayProtocol, GatewayStatus } from '../../registry/types.ts';
import { DEFAULT_ACCESS_CONTROL, type AccessControl } from '../../registry/access-control.ts';
import { DEFAULT_GATEWAY_LIMITS, type GatewayLimits } from '../../registry/gateway-limits.ts';
import { mappingDuplicates } from '../errors.ts';
import { fromJson, fromNullableJson, toJson, toNullableJson } from '../json.ts';
import type { Database, GatewaysTable } from '../schema.ts';

function toRow(r: GatewayRecord): GatewaysTable {
  return {
    id: r.id,
    name: r.name,
    protocol: r.protocol,
    port: r.port,
    product_key: r.productKey,
    data_parsing: toJson(r.dataParsing),
    auth_type: r.authType,
    third_party: toNullableJson(r.thirdParty),
    x509_enabled: r.x509Enabled ? 1 : 0,
    ocsp: toJson(r.ocsp),
    access_control: toJson(r.accessControl),
    limits: toJson(r.limits),
    server_certificate_chain: r.serverCertificateChain,
    server_private_key_encrypted: r.serverPrivateKeyEncrypted,
    device_root_certificates: r.deviceRootCertificates,
    trusted_certificate: r.trustedCertificate,
    enabled: r.enabled ? 1 : 0,
    status: r.status,
    status_reason: r.statusReason,
    created_at: r.createdAt,
    updated_at: r.updatedAt,
  };
}

function fromRow(row: Selectable<GatewaysTable>): GatewayRecord {
  return {
    id: row.id,
    name: row.name,
    protocol: row.protocol as GatewayProtocol,
    port: Number(row.port),
    productKey: row.product_key,
    dataParsing: fromJson(row.data_parsing),
    authType: row.auth_type as AuthType,
    thirdParty: fromNullableJson(row.third_party),
    x509Enabled: Boolean(row.x509_enabled),
    ocsp: fromJson(row.ocsp),
    accessControl: fromNullableJson<AccessControl>(row.access_control) ?? DEFAULT_ACCESS_CONTROL,
    // A limit added after the row was written reads as its default.
    limits: { ...DEFAULT_GATEWAY_LIMITS, ...fromNullableJson<Partial<GatewayLimits>>(row.limits) },
    serverCertificateChain: row.server_certificate_chain,
    serverPrivateKeyEncrypted: row.server_private_key_encrypted,
    deviceRootCertificates: row.device_root_certificates,
    trustedCertificate: row.trusted_certificate,
    enabled: Boolean(row.enabled),
    status: row.status as GatewayStatus,
    statusReason: row.status_reason,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

export class KyselyGatewayRepository implements GatewayRepository {
  readonly #db: Kysely<Database>;

  constructor(db: Kysely<Database>) {
    this.#db = db;
  }

  async insert(record: GatewayRecord): Promise<void> {
    await mappingDuplicates(() => this.#db.insertInto('gateways').values(toRow(record)).execute());
  }

  async update(record: GatewayRecord): Promise<void> {
    const { id: _id, ...row } = toRow(record);
    await mappingDuplicates(() => this.#db.updateTable('gateways').set(row).where('id', '=', record.id).execute());
  }

  async setEnabled(id: string, enabled: boolean, updatedAt: string): Promise<boolean> {
    const result = await this.#db.updateTable('gateways').set({ enabled: enabled ? 1 : 0, updated_at: updatedAt })
      .where('id', '=', id).executeTakeFirst();
    return result.numUpdatedRows > 0n;
  }

  async setStatus(id: string, status: GatewayStatus, reason: string | null): Promise<boolean> {
    const result = await this.#db.updateTable('gateways').set({ status, status_reason: reason })
      .where('id', '=', id).executeTakeFirst();
    return result.numUpdatedRows > 0n;
  }

  async delete(id: string): Promise<boolean> {
    const result = await this.#db.deleteFrom('gateways').where('id', '=', id).executeTakeFirst();
    return result.numDeletedRows > 0n;
  }

  async get(id: string): Promise<GatewayRecord | undefined> {
    const row = await this.#db.selectFrom('gateways').selectAll().where('id', '=', id).executeTakeFirst();
    return row && fromRow(row);
  }

  async findByName(name: string): Promise<GatewayRecord | undefined> {
    const row = await this.#db.selectFrom('gateways').selectAll().where('name', '=', name).executeTakeFirst();
    return row && fromRow(row);
  }

  async findByPort(port: number): Promise<GatewayRecord | undefined> {
    const row = await this.#db.selectFrom('gateways').selectAll().where('port', '=', port).executeTakeFirst();
    return row && fromRow(row);
  }

  async list(): Promise<GatewayRecord[]> {
    const rows = await this.#db.selectFrom('gateways').selectAll().orderBy('created_at').orderBy('id').execute();
    return rows.map(fromRow);
  }
}
