/**
 * The registry: the domain services the API calls, and the narrow interface the data plane uses.
 * Created once by `main` over an opened storage.
 */
import { GatehouseError } from '../core/errors.ts';
import { QuickJsRunner, type ScriptRunner } from '../sandbox/index.ts';
import type { Logger } from '../core/logger.ts';
import type { RegistryContext } from './context.ts';
import { DeviceService } from './device-service.ts';
import { RegistryEvents } from './events.ts';
import { FunctionService } from './function-service.ts';
import { GatewayService } from './gateway-service.ts';
import { DEFAULT_SCRYPT_COST, verifyPassword, type ScryptCost } from './passwords.ts';
import type { RegistryForDataPlane, Storage } from './ports.ts';
import { ProductService } from './product-service.ts';
import { SecretBox } from './secrets.ts';
import { WebhookService } from './webhook-service.ts';
import type {
  Device, DeviceConnectionInfo, DeviceCredential, GatewayRuntimeConfig, GatewayStatus, VerificationFunction,
} from './types.ts';

/** The setting holding the master key's check value (`gatehouse doctor` compares it too). */
export const MASTER_KEY_CHECK = 'master_key_check';

export interface RegistryOptions {
  storage: Storage;
  /** 32 bytes; encrypts server private keys at rest. */
  masterKey: Buffer;
  /** Host name in gateway URLs. */
  publicHost: string;
  logger: Logger;
  /** The clock (tests move it to check certificate dates). */
  now?: () => Date;
  /** The process's one sandbox (main passes the shared one; tests may leave it out and get their own). */
  runner?: ScriptRunner;
  /** scrypt cost of new password hashes, and of old ones after a login (GATEHOUSE_PASSWORD_SCRYPT_N). */
  passwordCost?: ScryptCost;
  /** This process's node id: device presence records which node holds a device (absent: none is recorded). */
  nodeId?: string;
}

export class Registry implements RegistryForDataPlane {
  readonly events: RegistryEvents;
  readonly gateways: GatewayService;
  readonly products: ProductService;
  readonly devices: DeviceService;
  readonly functions: FunctionService;
  readonly webhooks: WebhookService;
  readonly #storage: Storage;
  readonly #passwordCost: ScryptCost;

  constructor(options: RegistryOptions) {
    this.events = new RegistryEvents(options.logger);
    const context: RegistryContext = {
      storage: options.storage,
      secrets: new SecretBox(options.masterKey),
      events: this.events,
      logger: options.logger,
      publicHost: options.publicHost,
      now: options.now ?? (() => new Date()),
      runner: options.runner ?? new QuickJsRunner(),
      passwordCost: options.passwordCost ?? DEFAULT_SCRYPT_COST,
      nodeId: options.nodeId ?? null,
    };
    this.#storage = options.storage;
    this.#passwordCost = context.passwordCost;
    this.gateways = new GatewayService(context);
    this.products = new ProductService(context);
    this.devices = new DeviceService(context, this.products);
    this.functions = new FunctionService(context, this.gateways);
    this.webhooks = new WebhookService(context);
  }

  /** Resolves when storage answers (for `/health`). */
  async ping(): Promise<void> {
    await this.#storage.ping();
  }

  listGatewayRuntimeConfigs(): Promise<GatewayRuntimeConfig[]> {
    return this.gateways.listRuntimeConfigs();
  }

  getGatewayRuntimeConfig(id: string): Promise<GatewayRuntimeConfig> {
    return this.gateways.runtimeConfig(id);
  }

  getFunction(name: string): Promise<VerificationFunction | undefined> {
    return this.functions.find(name);
  }

  findDeviceCredential(productKey: string, username: string): Promise<DeviceCredential | undefined> {
    return this.devices.findCredential(productKey, username);
  }

  findDevice(productKey: string, deviceName: string): Promise<Device | undefined> {
    return this.devices.find(productKey, deviceName);
  }

  verifyPassword(hash: string | undefined, password: string | Buffer): Promise<boolean> {
    return verifyPassword(hash, password, this.#passwordCost);
  }

  upgradePasswordHash(productKey: string, deviceName: string, verifiedHash: string, password: string | Buffer): Promise<string | undefined> {
    return this.devices.upgradePasswordHash(productKey, deviceName, verifiedHash, password);
  }

  recordDeviceConnected(productKey: string, deviceName: string, info: DeviceConnectionInfo): Promise<Device> {
    return this.devices.recordConnected(productKey, deviceName, info);
  }

  recordDeviceDisconnected(productKey: string, deviceName: string, info: { at: Date }): Promise<boolean> {
    return this.devices.recordDisconnected(productKey, deviceName, info.at);
  }

  markGatewayDevicesOffline(gatewayId: string, at: Date, scope: 'all' | 'node' = 'all'): Promise<number> {
    return this.devices.markGatewayOffline(gatewayId, at, scope);
  }

  setGatewayStatus(id: string, status: GatewayStatus, reason: string | null): Promise<void> {
    return this.gateways.setStatus(id, status, reason);
  }
}

/**
 * Builds the registry and checks the master key against the one that encrypted what storage holds,
 * so a wrong GATEHOUSE_MASTER_KEY fails at start rather than at the first gateway start.
 */
export async function createRegistry(options: RegistryOptions): Promise<Registry> {
  const check = new SecretBox(options.masterKey).keyCheck();
  const stored = await options.storage.settings.get(MASTER_KEY_CHECK);
  if (stored === undefined) {
    await options.storage.settings.put(MASTER_KEY_CHECK, check);
  } else if (stored !== check) {
    throw new GatehouseError('GW_ERR_CONFIG_INVALID',
      'GATEHOUSE_MASTER_KEY is not the key this database was created with (stored private keys would not decrypt)',
      'GATEHOUSE_MASTER_KEY');
  }
  return new Registry(options);
}
