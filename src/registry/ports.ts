/**
 * The registry's ports. Storage implements the repositories (src/storage), the gateway runtime
 * implements `GatewayRuntime` (src/gateway), and the data plane talks to the registry only through
 * `RegistryForDataPlane`. Nothing here imports an implementation.
 */
import type { ConnectionEventRepository } from './connection-events.ts';
import type { ImportOperationRepository } from './import-operation-records.ts';
import type { RegistryEventSource } from './events.ts';
import type { AccessControl } from './access-control.ts';
import type { GatewayLimits, GatewayLimitsUsage } from './gateway-limits.ts';
import type { PropertyTotals, StoredProperty } from './device-properties.ts';
import type {
  AuthType, DataParsingConfig, Device, DeviceCertificateInfo, DeviceConnectionInfo, DeviceConnectionState,
  DeviceCredential, DeviceOrigin, DeviceStatusCounts, GatewayProtocol, GatewayRuntimeConfig, GatewayStatus, OcspConfig,
  StoredThirdPartyConfig, VerificationFunction, Warning,
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
  thirdParty: StoredThirdPartyConfig | null;
  x509Enabled: boolean;
  ocsp: OcspConfig;
  accessControl: AccessControl;
  limits: GatewayLimits;
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
  createdAt: string;
  updatedAt: string;
}

export type DevicePatch = Partial<Pick<DeviceRecord,
  'passwordHash' | 'sn' | 'disabled' | 'connectionState' | 'lastOnlineAt' | 'clientAddress' | 'certificate'
  | 'updatedAt'>> & {
  /** The node now holding the device's connection (written with ONLINE). */
  onlineNode?: string | null;
};

/** What became of a property post. */
export type PropertyMergeResult = 'updated' | 'device_gone' | 'too_many' | 'too_large';

export interface FunctionRecord {
  name: string;
  source: string;
  timeoutMs: number;
  memoryMb: number;
  createdAt: string;
  updatedAt: string;
}

/**
 * An acknowledged uplink as received, before parsing: what the platform journals before PUBACK and the
 * storage's journal file keeps (issue 17).
 */
export interface JournaledUplink {
  /** The message's id in the store and in events, given when the engine received it. */
  id: string;
  gatewayId: string;
  productKey: string;
  deviceName: string;
  topic: string;
  qos: number;
  payload: Buffer;
  /** Epoch ms. */
  receivedAt: number;
}

/** A device message as stored (issue 6): raw bytes, and the parsing result or why it failed. */
export interface MessageRecord {
  /** Time-ordered (see platform ids): sorting by id is sorting by arrival. */
  id: string;
  gatewayId: string;
  productKey: string;
  deviceName: string;
  topic: string;
  qos: number;
  payload: Buffer;
  parsed: Record<string, unknown> | null;
  parseError: string | null;
  receivedAt: string;
}

export interface MessageQuery {
  gatewayId?: string;
  productKey?: string;
  deviceName?: string;
  /** ISO 8601: only messages received at or after it. */
  since?: string;
  /** Only messages whose parsing failed. */
  parseFailed?: boolean;
  limit: number;
}

export type WebhookEventType = 'message' | 'online' | 'offline';

export interface WebhookRecord {
  id: string;
  /** https:// only. */
  url: string;
  description: string | null;
  /** Only this gateway's events; null = every gateway. */
  gatewayId: string | null;
  eventTypes: WebhookEventType[];
  /** The HMAC key, encrypted under the master key (secrets.ts). */
  secretEncrypted: string;
  /** PEM trusted in addition to the system roots (private CAs). */
  caCertificate: string | null;
  enabled: boolean;
  createdAt: string;
  updatedAt: string;
}

export interface DeadLetterRecord {
  id: string;
  webhookId: string;
  /** The delivery's event id (the receiver's deduplication key). */
  eventId: string;
  /** The JSON body that was POSTed. */
  body: string;
  attempts: number;
  lastError: string;
  failedAt: string;
}

/** A webhook delivery its endpoint has not acknowledged yet. */
export interface OutboxEntry {
  webhookId: string;
  eventId: string;
  eventType: WebhookEventType;
  body: string;
  createdAt: string;
}

/**
 * Which node sends an outbox row, and until when (issue 16): one node at a time sends a delivery, and
 * one whose node died is taken by another once the claim lapses. ISO times (they compare as text).
 */
export interface OutboxClaim {
  nodeId: string;
  until: string;
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
  /**
   * Removes the gateway; its product and devices go with it. Its retained messages and sessions are not
   * kept here: the data plane's own store forgets them (`GatewayRuntime.removeGateway`).
   */
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

/** A device's status as the API shows it: DISABLED wins over the connection state. */
export type DeviceStatusFilter = 'ONLINE' | 'OFFLINE' | 'INACTIVE' | 'DISABLED';

export interface DeviceFilter {
  /**
   * A prefix of the device name, the username or the SN (case-sensitive, code point order): served by
   * an index on each column on both backends, where a substring would need trigram indexes.
   */
  search?: string;
  status?: DeviceStatusFilter;
}

export interface DevicePageQuery extends DeviceFilter {
  limit: number;
  /** The last device name of the previous page. */
  after?: string;
}

export interface DeviceRepository {
  insert(record: DeviceRecord): Promise<void>;
  /** All or nothing. */
  insertMany(records: DeviceRecord[]): Promise<void>;
  get(productKey: string, deviceName: string): Promise<DeviceRecord | undefined>;
  findByUsername(productKey: string, username: string): Promise<DeviceRecord | undefined>;
  /**
   * One page in device-name order (code point order on both backends), the page after `after` (keyset:
   * stable under inserts, never an offset), of the devices that match `filter`.
   */
  list(productKey: string, page: DevicePageQuery): Promise<DeviceRecord[]>;
  /** Devices of the product, or of them those that match `filter`. */
  count(productKey: string, filter?: DeviceFilter): Promise<number>;
  /** Devices per status, exact, for one product or (no key) every product; a product without devices is absent. */
  statusCounts(productKey?: string): Promise<Map<string, DeviceStatusCounts>>;
  /** Names and usernames of every device in a product (for checking an import in one query). */
  listIdentities(productKey: string): Promise<{ deviceName: string; username: string | null }[]>;
  /** The devices of a product that hold one of these names or usernames (an import chunk's conflicts). */
  findIdentities(productKey: string, deviceNames: readonly string[], usernames: readonly string[]): Promise<{ deviceName: string; username: string | null }[]>;
  update(productKey: string, deviceName: string, patch: DevicePatch): Promise<boolean>;
  /** Compare-and-set: writes `next` only while the stored hash is still `expected`; whether it wrote. */
  replacePasswordHash(productKey: string, deviceName: string, expected: string, next: string): Promise<boolean>;
  delete(productKey: string, deviceName: string): Promise<boolean>;
  /**
   * Sets ONLINE devices of a product OFFLINE (after a restart or a stopped listener); returns how many.
   * With `node`, only those that node held (or no node is recorded for): the other nodes' stay.
   */
  markProductOffline(productKey: string, at: string, node?: string): Promise<number>;
  /**
   * A device's connection ended on `node`: OFFLINE unless another node holds it now (null: whoever holds it).
   * Whether it wrote (false: unknown device, or held by another node).
   */
  markOffline(productKey: string, deviceName: string, node: string | null, at: string): Promise<boolean>;
  /** Devices recorded as held by a node not in `live` (a dead node's) go OFFLINE; how many. */
  markDeadNodesOffline(live: readonly string[], at: string): Promise<number>;
  /** A device's properties by name (empty for an unknown device). */
  properties(productKey: string, deviceName: string): Promise<Record<string, unknown>>;
  /** The properties of several devices of a product (a list page), by device name; devices without any are absent. */
  propertiesOf(productKey: string, deviceNames: readonly string[]): Promise<Map<string, Record<string, unknown>>>;
  /**
   * Writes the posted properties (and only those: the device's others are neither read nor rewritten)
   * and the device's `updatedAt`, if `judge` answers 'updated' for the device's totals as they would be
   * after the post; otherwise writes nothing. Atomic: concurrent posts to one device are judged one
   * after the other, and posts of different keys both survive.
   */
  mergeProperties(productKey: string, deviceName: string, posted: readonly StoredProperty[], updatedAt: string,
    judge: (after: PropertyTotals) => PropertyMergeResult): Promise<PropertyMergeResult>;
}

export interface FunctionRepository {
  insert(record: FunctionRecord): Promise<void>;
  update(record: FunctionRecord): Promise<boolean>;
  get(name: string): Promise<FunctionRecord | undefined>;
  /** By name. */
  list(): Promise<FunctionRecord[]>;
  delete(name: string): Promise<boolean>;
}

export interface MessageRepository {
  /** A few statements for the whole batch, not one per message; an id already stored is left as it is. */
  insertMany(records: MessageRecord[]): Promise<void>;
  /** Newest first. */
  query(query: MessageQuery): Promise<MessageRecord[]>;
  /** Keeps the newest `keep` of one device; returns how many went. */
  pruneDevice(productKey: string, deviceName: string, keep: number): Promise<number>;
  /** Drops every message received before `before` (ISO 8601); returns how many. */
  pruneOlderThan(before: string): Promise<number>;
}

export interface WebhookRepository {
  insert(record: WebhookRecord): Promise<void>;
  update(record: WebhookRecord): Promise<boolean>;
  get(id: string): Promise<WebhookRecord | undefined>;
  /** Oldest first. */
  list(): Promise<WebhookRecord[]>;
  /** Its dead letters and pending deliveries go with it. */
  delete(id: string): Promise<boolean>;
  insertDeadLetter(record: DeadLetterRecord): Promise<void>;
  /** Newest first. */
  listDeadLetters(webhookId: string, limit: number): Promise<DeadLetterRecord[]>;
  deleteDeadLetter(webhookId: string, id: string): Promise<boolean>;
  /** Records pending deliveries, claimed by the node that sends them; one already recorded is left as it is. */
  addToOutbox(entries: OutboxEntry[], claim?: OutboxClaim): Promise<void>;
  removeFromOutbox(keys: { webhookId: string; eventId: string }[]): Promise<void>;
  /** Oldest first. */
  listOutbox(webhookId: string, limit: number): Promise<OutboxEntry[]>;
  /**
   * Claims up to `limit` of the webhook's rows, oldest first, and returns them: rows nobody claims, rows whose
   * claim lapsed before `now`, and with `own`, rows claimed by `claim.nodeId` (a previous life of this node, or
   * rows a closed endpoint of it left). Rows another claimer holds locked at that moment are skipped, never
   * waited for: two nodes claiming at once get disjoint rows.
   */
  claimOutbox(webhookId: string, claim: OutboxClaim & { now: string; own: boolean }, limit: number): Promise<OutboxEntry[]>;
  /** Pushes every claim of the node to `until`; how many rows it holds. */
  renewOutboxClaims(claim: OutboxClaim): Promise<number>;
}

/** Small key/value facts about the installation (e.g. the master key's check value). */
export interface SettingsRepository {
  get(key: string): Promise<string | undefined>;
  put(key: string, value: string): Promise<void>;
}

export interface Repositories {
  gateways: GatewayRepository;
  products: ProductRepository;
  devices: DeviceRepository;
  functions: FunctionRepository;
  settings: SettingsRepository;
  messages: MessageRepository;
  webhooks: WebhookRepository;
  connectionEvents: ConnectionEventRepository;
  importOperations: ImportOperationRepository;
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
  /** Certificate checks of a running gateway with X.509 or OCSP on; absent otherwise. */
  ocsp?: GatewayOcspState;
  /** Use of each limit on a running gateway; absent when it is not running. */
  limitsUsage?: GatewayLimitsUsage;
  /** What only traffic reveals (device certificates naming no OCSP responder …); absent when none. */
  warnings?: Warning[];
}

/** A running gateway's OCSP stapling and client-certificate checks (counters since the listener started). */
export interface GatewayOcspState {
  mode: OcspConfig['mode'];
  /** Stapling of the server certificate (modes SERVER, SERVER_AND_CLIENT); null otherwise. */
  server: OcspServerState | null;
  /** Device-certificate checks (modes CLIENT, SERVER_AND_CLIENT); null otherwise. */
  client: OcspClientState | null;
  /** TLS connections refused for their client certificate, by reason (`cert_has_expired` …). */
  x509Refusals: Record<string, number>;
}

export interface OcspServerState {
  /** A response is stapled to handshakes right now. */
  stapling: boolean;
  /** Status in the last verified response; null before the first. */
  certStatus: 'good' | 'revoked' | 'unknown' | null;
  thisUpdate: string | null;
  nextUpdate: string | null;
  fetchedAt: string | null;
  /** Seconds since the kept response's thisUpdate. */
  ageSeconds: number | null;
  /** When the kept response is dropped (nextUpdate clamped to 5 min … 1 h). */
  expiresAt: string | null;
  nextRefreshAt: string | null;
  /** Handshakes that got the response stapled. */
  staplesServed: number;
  /** Responder failures by kind (`network`, `timeout`, `unverified`, `stale` …). */
  responderErrors: Record<string, number>;
  lastError: { at: string; reason: string } | null;
}

export interface OcspClientState {
  onResponderFailure: OcspConfig['onResponderFailure'];
  /** Checks by result: good, revoked, unknown, responder_error. */
  checks: Record<'good' | 'revoked' | 'unknown' | 'responder_error', number>;
  cacheHits: number;
  cacheSize: number;
  responderErrors: Record<string, number>;
  lastError: { at: string; reason: string } | null;
  /** Connected devices disconnected because their certificate became revoked. */
  revokedWhileConnected: number;
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
  /** The live state once what is queued for the gateway (an edit applying, a retry after ERROR) has run. */
  settled(id: string): Promise<GatewayState>;
}

// ── The registry, as the data plane sees it ───────────────────────────────────────────────────────

/** The narrow read (and record) API the data plane uses. Server side only: it hands out decrypted keys. */
export interface RegistryForDataPlane {
  readonly events: RegistryEventSource;
  /** Every gateway's runtime configuration (start-up: start those with `enabled`). */
  listGatewayRuntimeConfigs(): Promise<GatewayRuntimeConfig[]>;
  /** Throws GW_ERR_GATEWAY_NOT_FOUND. */
  getGatewayRuntimeConfig(id: string): Promise<GatewayRuntimeConfig>;
  /** A verification function (source and limits), or undefined; the FUNCTION provider compiles it once. */
  getFunction(name: string): Promise<VerificationFunction | undefined>;
  /** The one-party credential of `username` in a product, or undefined. */
  findDeviceCredential(productKey: string, username: string): Promise<DeviceCredential | undefined>;
  findDevice(productKey: string, deviceName: string): Promise<Device | undefined>;
  /**
   * Constant time. Pass `undefined` when no device has the username: a dummy hash is checked anyway,
   * so a missing user takes as long as a wrong password.
   */
  verifyPassword(hash: string | undefined, password: string | Buffer): Promise<boolean>;
  /**
   * A login just proved `password` against `verifiedHash`: when that hash was made at another cost than
   * the current one, hash the password again at the current cost and store it, unless the device's hash
   * changed meanwhile. The new hash, or undefined when nothing was written. Costs one hash when it writes.
   */
  upgradePasswordHash(productKey: string, deviceName: string, verifiedHash: string, password: string | Buffer): Promise<string | undefined>;
  /**
   * The device is online. A device that does not exist yet (a third-party verification accepted it)
   * is created with origin AUTO_CREATED; throws GW_ERR_DEVICE_NAME_INVALID for a name outside the rules.
   */
  recordDeviceConnected(productKey: string, deviceName: string, info: DeviceConnectionInfo): Promise<Device>;
  /**
   * The device went offline. Do not record the end of a connection that another one of the same device
   * took over: the device is still online, through the new connection. Resolves whether it was recorded
   * (false: that, or the device is gone).
   */
  recordDeviceDisconnected(productKey: string, deviceName: string, info: { at: Date }): Promise<boolean>;
  /**
   * ONLINE devices of the gateway go OFFLINE: every one (`all`: the listener stopped everywhere, or a single
   * process restarted), or those this node held (`node`: a cluster node restarted; the others' stay ONLINE).
   */
  markGatewayDevicesOffline(gatewayId: string, at: Date, scope?: 'all' | 'node'): Promise<number>;
  /** Records what the runtime observed; shown by the API until the runtime reports again. */
  setGatewayStatus(id: string, status: GatewayStatus, reason: string | null): Promise<void>;
}
