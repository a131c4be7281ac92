/** Gateways: create (with their product), read, edit, delete, and the desired on/off state. */
import { isIPv6 } from 'node:net';
import { GatehouseError } from '../core/errors.ts';
import { withDuplicatesTranslated, type RegistryContext } from './context.ts';
import {
  changedFields, checkDraft, checkName, checkPort, draftFromCreate, draftFromUpdate, withThirdPartyDefaults,
  type CertificateField, type CheckedDraft, type GatewayDraft,
} from './gateway-rules.ts';
import { storedCertificateWarnings, uniqueWarnings } from './gateway-warnings.ts';
import { newGatewayId, newProductKey } from './ids.ts';
import { checkTransformScript } from './transform-script.ts';
import type { GatewayRecord } from './ports.ts';
import type {
  Gateway, GatewayCreateInput, GatewayRuntimeConfig, GatewaySettings, GatewayStatus, GatewayUpdateInput, ThirdPartyConfig,
  ThirdPartyView, Warning,
} from './types.ts';

const ALL_CERTIFICATE_FIELDS: ReadonlySet<CertificateField> = new Set([
  'serverCertificateChain', 'serverPrivateKey', 'deviceRootCertificates', 'trustedCertificate',
]);

export interface GatewaySaveResult {
  gateway: Gateway;
  warnings: Warning[];
}

/** The product of a gateway is named after it (reference page: "Gateway+${Gateway ID}"). */
export function productNameFor(gatewayId: string): string {
  return `Gateway${gatewayId}`;
}

export class GatewayService {
  readonly #ctx: RegistryContext;

  constructor(context: RegistryContext) {
    this.#ctx = context;
  }

  async create(input: GatewayCreateInput): Promise<GatewaySaveResult> {
    const draft = draftFromCreate(input);
    await this.#checkUnique(draft, undefined);
    const checked = await checkDraft(draft, {
      now: this.#ctx.now(),
      strictCertificateFields: ALL_CERTIFICATE_FIELDS,
      strictThirdPartyCa: true,
      functionExists: (name) => this.#functionExists(name),
    });
    if (checked.draft.dataParsing.script !== null) await checkTransformScript(this.#ctx.runner, checked.draft.dataParsing.script);
    const id = newGatewayId();
    const productKey = newProductKey();
    const at = this.#ctx.now().toISOString();
    const record = this.#toRecord(id, productKey, checked.draft, {
      enabled: true, status: 'STOPPED', statusReason: null, createdAt: at, updatedAt: at,
    });
    await withDuplicatesTranslated(() => this.#ctx.storage.transaction(async (tx) => {
      await tx.gateways.insert(record);
      await tx.products.insert({ productKey, name: productNameFor(id), gatewayId: id, createdAt: at });
    }));
    this.#ctx.logger.info({ gatewayId: id, name: record.name, port: record.port }, 'gateway_created');
    this.#ctx.events.emit('gateway.created', { gatewayId: id, productKey });
    return this.#saved(record, checked.warnings);
  }

  async list(): Promise<Gateway[]> {
    return (await this.#ctx.storage.gateways.list()).map((r) => this.#toGateway(r));
  }

  async get(id: string): Promise<Gateway> {
    return this.#toGateway(await this.#record(id));
  }

  async update(id: string, patch: GatewayUpdateInput): Promise<GatewaySaveResult> {
    const record = await this.#record(id);
    const current = this.#toDraft(record);
    const { draft, certificateFieldsGiven } = draftFromUpdate(current, patch);
    await this.#checkUnique(draft, id);
    const checked = await checkDraft(draft, {
      now: this.#ctx.now(),
      strictCertificateFields: certificateFieldsGiven,
      strictThirdPartyCa: patch.thirdParty !== undefined,
      functionExists: (name) => this.#functionExists(name),
    });
    const changed = changedFields(current, checked.draft);
    if (changed.length === 0) return this.#saved(record, checked.warnings);
    // Only a script being saved now is compiled: a stored one must not block an unrelated edit.
    const script = checked.draft.dataParsing.script;
    if (script !== null && script !== current.dataParsing.script) await checkTransformScript(this.#ctx.runner, script);

    const updated = this.#toRecord(id, record.productKey, checked.draft, {
      enabled: record.enabled, status: record.status, statusReason: record.statusReason,
      createdAt: record.createdAt, updatedAt: this.#ctx.now().toISOString(),
    });
    await withDuplicatesTranslated(() => this.#ctx.storage.gateways.update(updated));
    this.#ctx.logger.info({ gatewayId: id, changed }, 'gateway_updated');
    this.#ctx.events.emit('gateway.updated', { gatewayId: id, productKey: record.productKey, changed });
    return this.#saved(updated, checked.warnings);
  }

  /** What a save found, with what the stored gateway shows on every read, each once. */
  #saved(record: GatewayRecord, found: Warning[]): GatewaySaveResult {
    const gateway = this.#toGateway(record);
    return { gateway, warnings: uniqueWarnings([...found, ...gateway.warnings]) };
  }

  /** Removes the gateway with its product and devices. */
  async delete(id: string): Promise<void> {
    const record = await this.#record(id);
    await this.#ctx.storage.gateways.delete(id);
    this.#ctx.logger.info({ gatewayId: id }, 'gateway_deleted');
    this.#ctx.events.emit('gateway.deleted', { gatewayId: id, productKey: record.productKey });
  }

  /** Records that the operator wants the listener on; the caller asks the runtime to start it. */
  async start(id: string): Promise<Gateway> {
    return this.#setEnabled(id, true);
  }

  async stop(id: string): Promise<Gateway> {
    return this.#setEnabled(id, false);
  }

  async setStatus(id: string, status: GatewayStatus, reason: string | null): Promise<void> {
    // A report racing a delete is not an error: the gateway is gone either way.
    await this.#ctx.storage.gateways.setStatus(id, status, status === 'ERROR' ? reason : null);
  }

  async runtimeConfig(id: string): Promise<GatewayRuntimeConfig> {
    return this.#toRuntimeConfig(await this.#record(id));
  }

  async listRuntimeConfigs(): Promise<GatewayRuntimeConfig[]> {
    return (await this.#ctx.storage.gateways.list()).map((r) => this.#toRuntimeConfig(r));
  }

  /** Gateways whose HTTPS or function provider names this function. */
  async usingFunction(name: string): Promise<Gateway[]> {
    return (await this.list()).filter((g) => g.thirdParty?.provider === 'FUNCTION' && g.thirdParty.functionName === name);
  }

  async #setEnabled(id: string, enabled: boolean): Promise<Gateway> {
    const record = await this.#record(id);
    if (record.enabled === enabled) {
      // A start of a gateway already on is a retry (one in ERROR tries again): on every node of a cluster, not only
      // the one whose API took it, or a node left in ERROR would stay there while the others listen.
      if (enabled) this.#ctx.events.emit('gateway.started', { gatewayId: id });
      return this.#toGateway(record);
    }
    const updatedAt = this.#ctx.now().toISOString();
    await this.#ctx.storage.gateways.setEnabled(id, enabled, updatedAt);
    this.#ctx.events.emit(enabled ? 'gateway.started' : 'gateway.stopped', { gatewayId: id });
    return this.#toGateway({ ...record, enabled, updatedAt });
  }

  async #record(id: string): Promise<GatewayRecord> {
    const record = await this.#ctx.storage.gateways.get(id);
    if (!record) throw new GatehouseError('GW_ERR_GATEWAY_NOT_FOUND', `no gateway with ID "${id}"`, 'id');
    return record;
  }

  /** Name and port first, so a form shows "taken" before anything about certificates. */
  async #checkUnique(draft: GatewayDraft, ownId: string | undefined): Promise<void> {
    checkName(draft.name);
    const byName = await this.#ctx.storage.gateways.findByName(draft.name);
    if (byName && byName.id !== ownId) throw new GatehouseError('GW_ERR_GATEWAY_NAME_TAKEN', `a gateway named "${draft.name}" exists`, 'name');
    checkPort(draft.port);
    const byPort = await this.#ctx.storage.gateways.findByPort(draft.port);
    if (byPort && byPort.id !== ownId) throw new GatehouseError('GW_ERR_PORT_TAKEN', `gateway "${byPort.name}" uses port ${draft.port}`, 'port');
  }

  async #functionExists(name: string): Promise<boolean> {
    return (await this.#ctx.storage.functions.get(name)) !== undefined;
  }

  #keyContext(id: string): string {
    return `gateway:${id}:serverPrivateKey`;
  }

  #toRecord(
    id: string,
    productKey: string,
    draft: CheckedDraft['draft'],
    state: Pick<GatewayRecord, 'enabled' | 'status' | 'statusReason' | 'createdAt' | 'updatedAt'>,
  ): GatewayRecord {
    return {
      id,
      name: draft.name,
      protocol: draft.protocol,
      port: draft.port,
      productKey,
      dataParsing: draft.dataParsing,
      authType: draft.authType,
      thirdParty: this.#sealThirdParty(id, draft.thirdParty),
      x509Enabled: draft.x509.enabled,
      ocsp: draft.ocsp,
      accessControl: draft.accessControl,
      limits: draft.limits,
      serverCertificateChain: draft.certificates.serverCertificateChain,
      serverPrivateKeyEncrypted: this.#ctx.secrets.encrypt(draft.certificates.serverPrivateKey, this.#keyContext(id)),
      deviceRootCertificates: draft.certificates.deviceRootCertificates,
      trustedCertificate: draft.certificates.trustedCertificate,
      ...state,
    };
  }

  #secretContext(id: string): string {
    return `gateway:${id}:signingSecret`;
  }

  /** The HTTPS signing secret is kept encrypted like the private key. */
  #sealThirdParty(id: string, thirdParty: ThirdPartyConfig | null): ThirdPartyConfig | null {
    if (thirdParty?.provider !== 'HTTPS' || thirdParty.signingSecret === null) return thirdParty;
    return { ...thirdParty, signingSecret: this.#ctx.secrets.encrypt(thirdParty.signingSecret, this.#secretContext(id)) };
  }

  #openThirdParty(record: GatewayRecord): ThirdPartyConfig | null {
    const thirdParty = withThirdPartyDefaults(record.thirdParty);
    if (thirdParty?.provider !== 'HTTPS' || thirdParty.signingSecret === null) return thirdParty;
    return { ...thirdParty, signingSecret: this.#ctx.secrets.decrypt(thirdParty.signingSecret, this.#secretContext(record.id)) };
  }

  #thirdPartyView(record: GatewayRecord): ThirdPartyView | null {
    const thirdParty = withThirdPartyDefaults(record.thirdParty);
    if (thirdParty?.provider !== 'HTTPS') return thirdParty;
    const { signingSecret, ...rest } = thirdParty;
    return { ...rest, signingSecretSet: signingSecret !== null };
  }

  #toDraft(record: GatewayRecord): GatewayDraft {
    return {
      ...this.#settings(record),
      certificates: {
        serverCertificateChain: record.serverCertificateChain,
        serverPrivateKey: this.#ctx.secrets.decrypt(record.serverPrivateKeyEncrypted, this.#keyContext(record.id)),
        deviceRootCertificates: record.deviceRootCertificates,
        trustedCertificate: record.trustedCertificate,
      },
    };
  }

  #settings(record: GatewayRecord): GatewaySettings {
    return {
      name: record.name,
      protocol: record.protocol,
      port: record.port,
      dataParsing: record.dataParsing,
      authType: record.authType,
      thirdParty: this.#openThirdParty(record),
      x509: { enabled: record.x509Enabled },
      ocsp: record.ocsp,
      accessControl: record.accessControl,
      limits: record.limits,
    };
  }

  #url(port: number): string {
    const host = isIPv6(this.#ctx.publicHost) ? `[${this.#ctx.publicHost}]` : this.#ctx.publicHost;
    return `mqtts://${host}:${port}`;
  }

  #toGateway(record: GatewayRecord): Gateway {
    return {
      id: record.id,
      ...this.#settings(record),
      thirdParty: this.#thirdPartyView(record),
      productKey: record.productKey,
      url: this.#url(record.port),
      enabled: record.enabled,
      status: record.status,
      statusReason: record.statusReason,
      certificates: {
        serverCertificateChain: record.serverCertificateChain,
        deviceRootCertificates: record.deviceRootCertificates,
        trustedCertificate: record.trustedCertificate,
      },
      warnings: storedCertificateWarnings({
        serverCertificateChain: record.serverCertificateChain,
        deviceRootCertificates: record.deviceRootCertificates,
        trustedCertificate: record.trustedCertificate,
      }, this.#ctx.now()),
      createdAt: record.createdAt,
      updatedAt: record.updatedAt,
    };
  }

  #toRuntimeConfig(record: GatewayRecord): GatewayRuntimeConfig {
    const draft = this.#toDraft(record);
    return {
      id: record.id,
      ...this.#settings(record),
      thirdParty: draft.thirdParty,
      productKey: record.productKey,
      url: this.#url(record.port),
      enabled: record.enabled,
      certificates: {
        serverCertificateChain: record.serverCertificateChain,
        serverPrivateKey: draft.certificates.serverPrivateKey as string,
        deviceRootCertificates: record.deviceRootCertificates,
        trustedCertificate: record.trustedCertificate,
      },
    };
  }
}
