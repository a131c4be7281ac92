/**
 * The registry's ports. Storage implements the repositories (src/storage), the gateway runtime
 * implements `GatewayRuntime` (src/gateway), and the data plane talks to the registry only through
 * `RegistryForDataPlane`. Nothing here imports an implementation.
 */
import type { RegistryEventSource } from './events.ts';
import type {
  AuthType, DataParsingConfig, Device, DeviceCertificateInfo, DeviceConnectionInfo, DeviceConnectionState,
  DeviceCredential, DeviceOrigin, GatewayProtocol, GatewayRuntimeConfig, GatewayStatus, OcspConfig,
  ThirdPartyConfig,
} from './types.ts';

// ── Records: what storage keeps ────────────────────────────────────────────────────────────────────

export interface GatewayRecord {
  id: string;
  name: string;
  protocol: GatewayProtocol;
  port: number;
  productKey: string;
  dataParsing: DataParsingConfig;
  authType: AuthType;
  thirdParty: ThirdPartyConfig | null;
  x509Enabled: boolean;
  ocsp: OcspConfig;
  serverCertificateChain: string;
  /** AES-256-GCM under the master key (see secrets.ts); never the plain PEM. */
  serverPrivateKeyEncrypted: string;
  deviceRootCertificates: string | null;
  trustedCertificate: string | null;
  enabled: boolean;
  status: GatewayStatus;
  statusReason: string | null;
  /** ISO 8601. */
  createdAt: string;
  updatedAt: string;
}

export interface ProductRecord {
  productKey: string;
  name: string;
  gatewayId: string;
  createdAt: string;
}

export interface DeviceRecord {
  productKey: string;
  deviceName: string;
  username: string | null;
  /** scrypt hash (see passwords.ts); null for auto-created devices. */
  passwordHash: string | null;
  sn: string | null;
  origin: DeviceOrigin;
  connectionState: DeviceConnectionState;
  disabled: boolean;
  lastOnlineAt: string | null;
  clientAddress: string | null;
  certificate: DeviceCertificateInfo | null;
  properties: Record<string, unknown>;
  createdAt: string;
  updatedAt: string;
}

export type DevicePatch = Partial<Pick<DeviceRecord,
  'passwordHash' | 'sn' | 'disabled' | 'connectionState' | 'lastOnlineAt' | 'clientAddress' | 'certificate'
  | 'properties' | 'updatedAt'>>;

export interface FunctionRecord {
  name: string;
  source: string;
  timeoutMs: number;
  memoryMb: number;
  createdAt: string;
  updatedAt: string;
}

/** MQTT v5 properties as JSON; Buffers (correlation data) survive the round trip. */
export type StoredProperties = Record<string, unknown>;

export interface RetainedMessageRecord {
  gatewayId: string;
  topic: string;
  payload: Buffer;
  qos: 0 | 1 | 2;
  properties: StoredProperties | null;
  /** Epoch ms after which the message is dropped; null = never. */
  expiresAt: number | null;
}

export interface PersistedSubscription {
  /** The filter as the client sent it (`$share/g/a/+` included). */
  topicFilter: string;
  qos: 0 | 1 | 2;
  noLocal: boolean;
  retainAsPublished: boolean;
  retainHandling: number;
  subscriptionId: number | null;
}

export interface SessionRecord {
  gatewayId: string;
  clientId: string;
  /** The session expiry interval the client asked for (seconds; 0xFFFFFFFF = never). */
  expiryIntervalSeconds: number;
  /** Epoch ms at which the session may be discarded; null while connected or when it never expires. */
  expiresAt: number | null;
  subscriptions: PersistedSubscription[];
}

export interface QueuedMessageRecord {
  /** Assigned by storage, increasing: the delivery order. */
  id: number;
  gatewayId: string;
  clientId: string;
  topic: string;
  payload: Buffer;
  qos: 0 | 1 | 2;
  retain: boolean;
  properties: StoredProperties | null;
  /** Set once the message was sent and is awaiting acknowledgement. */
  packetId: number | null;
  expiresAt: number | null;
}

// ── Repositories ──────────────────────────────────────────────────────────────────────────────────

/** Unique columns whose violation storage reports as `DuplicateKeyError`. */
export type UniqueKey =
  | 'gateways.id' | 'gateways.name' | 'gateways.port' | 'products.product_key' | 'devices.device_name'
  | 'devices.username' | 'functions.name';

/**
 * A unique constraint refused a write. The registry checks first and gives a precise error; this is
 * the race a check cannot close (two requests at once), turned into the same error.
 */
export class DuplicateKeyError extends Error {
  readonly key: UniqueKey;
  constructor(key: UniqueKey, options?: ErrorOptions) {
    super(`duplicate value for ${key}`, options);
    this.name = 'DuplicateKeyError';
    this.key = key;
  }
}

export interface GatewayRepository {
  insert(record: GatewayRecord): Promise<void>;
  /** Replaces every field of the gateway with this id. */
  update(record: GatewayRecord): Promise<void>;
  setEnabled(id: string, enabled: boolean, updatedAt: string): Promise<boolean>;
  /** Does not touch `updatedAt`: status is runtime state, not a configuration change. */
  setStatus(id: string, status: GatewayStatus, reason: string | null): Promise<boolean>;
  /** Removes the gateway; its product, devices, retained messages and sessions go with it. */
  delete(id: string): Promise<boolean>;
  get(id: string): Promise<GatewayRecord | undefined>;
  findByName(name: string): Promise<GatewayRecord | undefined>;
  findByPort(port: number): Promise<GatewayRecord | undefined>;
  /** Oldest first. */
  list(): Promise<GatewayRecord[]>;
}

export interface ProductRepository {
  insert(record: ProductRecord): Promise<void>;
  get(productKey: string): Promise<ProductRecord | undefined>;
  getByGatewayId(gatewayId: string): Promise<ProductRecord | undefined>;
  /** Oldest first, with the number of devices in each. */
  listWithDeviceCounts(): Promise<(ProductRecord & { deviceCount: number })[]>;
}

export interface DeviceRepository {
  insert(record: DeviceRecord): Promise<void>;
  /** All or nothing. */
  insertMany(records: DeviceRecord[]): Promise<void>;
  get(productKey: string, deviceName: string): Promise<DeviceRecord | undefined>;
  findByUsername(productKey: string, username: string): Promise<DeviceRecord | undefined>;
  /** Ordered by device name. */
  list(productKey: string, page: { limit: number; offset: number }): Promise<DeviceRecord[]>;
  count(productKey: string): Promise<number>;
  /** Names and usernames of every device in a product (for checking an import in one query). */
  listIdentities(productKey: string): Promise<{ deviceName: string; username: string | null }[]>;
  update(productKey: string, deviceName: string, patch: DevicePatch): Promise<boolean>;
  delete(productKey: string, deviceName: string): Promise<boolean>;
  /** Sets every ONLINE device of a product OFFLINE (after a restart or a stopped listener); returns how many. */
  markProductOffline(productKey: string, at: string): Promise<number>;
}

export interface FunctionRepository {
  insert(record: FunctionRecord): Promise<void>;
  update(record: FunctionRecord): Promise<boolean>;
  get(name: string): Promise<FunctionRecord | undefined>;
  /** By name. */
  list(): Promise<FunctionRecord[]>;
  delete(name: string): Promise<boolean>;
}

/** Small key/value facts about the installation (e.g. the master key's check value). */
export interface SettingsRepository {
  get(key: string): Promise<string | undefined>;
  put(key: string, value: string): Promise<void>;
}

/** Retained messages of each gateway's topic space, so they survive a restart. */
export interface RetainedMessageRepository {
  get(gatewayId: string, topic: string): Promise<RetainedMessageRecord | undefined>;
  /** Inserts or replaces the message of `(gatewayId, topic)`. */
  put(record: RetainedMessageRecord): Promise<void>;
  delete(gatewayId: string, topic: string): Promise<boolean>;
  /** By topic. */
  listByGateway(gatewayId: string): Promise<RetainedMessageRecord[]>;
  /** Drops messages with `expiresAt <= now`; returns how many. */
  deleteExpired(now: number): Promise<number>;
}

/** Persistent MQTT sessions and their queued QoS 1/2 messages. */
export interface SessionRepository {
  get(gatewayId: string, clientId: string): Promise<SessionRecord | undefined>;
  /** Inserts or replaces the session (its queued messages stay). */
  put(record: SessionRecord): Promise<void>;
  /** Removes the session and its queued messages. */
  delete(gatewayId: string, clientId: string): Promise<boolean>;
  /** By client ID. */
  listByGateway(gatewayId: string): Promise<SessionRecord[]>;
  /** Appends to the session's queue (the session must exist); returns the message's id. */
  appendQueued(message: Omit<QueuedMessageRecord, 'id'>): Promise<number>;
  /** In delivery order. */
  listQueued(gatewayId: string, clientId: string): Promise<QueuedMessageRecord[]>;
  setQueuedPacketId(id: number, packetId: number | null): Promise<boolean>;
  /** Removes acknowledged (or dropped) messages; returns how many. */
  deleteQueued(gatewayId: string, clientId: string, ids: readonly number[]): Promise<number>;
}

export interface Repositories {
  gateways: GatewayRepository;
  products: ProductRepository;
  devices: DeviceRepository;
  functions: FunctionRepository;
  settings: SettingsRepository;
  retained: RetainedMessageRepository;
  sessions: SessionRepository;
}

export interface Storage extends Repositories {
  readonly dialect: 'sqlite' | 'postgres';
  /** Runs `work` in one transaction: committed when it resolves, rolled back when it throws. */
  transaction<T>(work: (tx: Repositories) => Promise<T>): Promise<T>;
  /** Resolves when the database answers a trivial query. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

// ── The gateway runtime, as the API drives it ─────────────────────────────────────────────────────

export interface GatewayState {
  status: GatewayStatus;
  /** Why the status is ERROR (port in use, bad certificate …); null otherwise. */
  reason: string | null;
  connectedClients: number;
}

/**
 * Implemented by the data plane's gateway runtime. Start and stop are idempotent and resolve once the
 * listener has settled (listening, or ERROR with a reason: they do not reject for that).
 */
export interface GatewayRuntime {
  startGateway(id: string): Promise<GatewayState>;
  stopGateway(id: string): Promise<GatewayState>;
  /** Live state; `{ status: 'STOPPED', reason: null, connectedClients: 0 }` for a gateway without a listener. */
  gatewayState(id: string): GatewayState;
}

// ── The registry, as the data plane sees it ───────────────────────────────────────────────────────

/** The narrow read (and record) API the data plane uses. Server side only: it hands out decrypted keys. */
export interface RegistryForDataPlane {
  readonly events: RegistryEventSource;
  /** Every gateway's runtime configuration (start-up: start those with `enabled`). */
  listGatewayRuntimeConfigs(): Promise<GatewayRuntimeConfig[]>;
  /** Throws GW_ERR_GATEWAY_NOT_FOUND. */
  getGatewayRuntimeConfig(id: string): Promise<GatewayRuntimeConfig>;
  /** The one-party credential of `username` in a product, or undefined. */
  findDeviceCredential(productKey: string, username: string): Promise<DeviceCredential | undefined>;
  findDevice(productKey: string, deviceName: string): Promise<Device | undefined>;
  /**
   * Constant time. Pass `undefined` when no device has the username: a dummy hash is checked anyway,
   * so a missing user takes as long as a wrong password.
   */
  verifyPassword(hash: string | undefined, password: string | Buffer): Promise<boolean>;
  /**
   * The device is online. A device that does not exist yet (a third-party verification accepted it)
   * is created with origin AUTO_CREATED; throws GW_ERR_DEVICE_NAME_INVALID for a name outside the rules.
   */
  recordDeviceConnected(productKey: string, deviceName: string, info: DeviceConnectionInfo): Promise<Device>;
  /**
   * The device went offline. Do not record the end of a connection that another one of the same device
   * took over: the device is still online, through the new connection.
   */
  recordDeviceDisconnected(productKey: string, deviceName: string, info: { at: Date }): Promise<void>;
  /** Every ONLINE device of the gateway goes OFFLINE (listener stopped, process restarted). */
  markGatewayDevicesOffline(gatewayId: string, at: Date): Promise<number>;
  /** Records what the runtime observed; shown by the API until the runtime reports again. */
  setGatewayStatus(id: string, status: GatewayStatus, reason: string | null): Promise<void>;
}
