/** The REST API client: every call carries the admin token; errors come back as `ApiError` with the field at fault. */

const TOKEN_KEY = 'gatehouse.adminToken';
export const API = '/api/v1';

export function getToken(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(token: string | null): void {
  if (token === null) sessionStorage.removeItem(TOKEN_KEY);
  else sessionStorage.setItem(TOKEN_KEY, token);
}

export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly field: string | null;

  constructor(status: number, code: string, message: string, field: string | null) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field;
  }
}

/** Listeners told when the token is refused, so the app can go back to the sign-in page. */
const unauthorizedListeners = new Set<() => void>();
export function onUnauthorized(listener: () => void): () => void {
  unauthorizedListeners.add(listener);
  return () => unauthorizedListeners.delete(listener);
}

export async function request<T>(method: string, path: string, body?: unknown, contentType = 'application/json', token = getToken()): Promise<T> {
  const headers: Record<string, string> = {};
  if (token !== null) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = contentType;
  let res: Response;
  try {
    res = await fetch(`${API}${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, 'NETWORK', 'Gatehouse is not reachable. Is it running?', null);
  }
  const text = await res.text();
  let json: unknown = undefined;
  if (text.length > 0) {
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
  }
  if (!res.ok) {
    const err = (json as { error?: { code?: string; message?: string; field?: string | null } } | undefined)?.error;
    if (res.status === 401) for (const l of unauthorizedListeners) l();
    throw new ApiError(res.status, err?.code ?? `HTTP_${res.status}`, err?.message ?? `${res.status} ${res.statusText}`, err?.field ?? null);
  }
  return json as T;
}

export const api = {
  get: <T>(path: string) => request<T>('GET', path),
  post: <T>(path: string, body?: unknown, contentType?: string) => request<T>('POST', path, body ?? {}, contentType),
  patch: <T>(path: string, body: unknown) => request<T>('PATCH', path, body),
  put: <T>(path: string, body: unknown) => request<T>('PUT', path, body),
  del: (path: string) => request<undefined>('DELETE', path),
};

// Shapes (DESIGN.md "Shapes"), as far as the console uses them.

export type GatewayStatus = 'RUNNING' | 'STOPPED' | 'ERROR';
export type AuthType = 'ONE_PARTY' | 'THIRD_PARTY';
export type OcspMode = 'DISABLED' | 'SERVER' | 'CLIENT' | 'SERVER_AND_CLIENT';

export interface HttpsParam { key: string; value: string }

export interface ThirdPartyView {
  provider: 'FUNCTION' | 'HTTPS';
  functionName?: string;
  url?: string;
  params?: HttpsParam[];
  caCertificate?: string | null;
  timeoutMs?: number;
  acceptCacheTtlSeconds?: number;
  rejectCacheTtlSeconds?: number;
  signingSecretSet?: boolean;
}

export interface GatewayListItem {
  id: string;
  name: string;
  url: string;
  port: number;
  authType: AuthType;
  enabled: boolean;
  status: GatewayStatus;
  statusReason: string | null;
  connectedClients: number;
  productKey: string;
  /** Trouble ahead (certificates expiring, a chain without intermediates, devices without an OCSP responder). */
  warnings: Warning[];
  createdAt: string;
}

export type AclAction = 'ALLOW' | 'DENY';
export type AclAccess = 'PUBLISH' | 'SUBSCRIBE' | 'ALL';
export interface AclRule { action: AclAction; access: AclAccess; topic: string }
export interface AccessControl { defaultAction: AclAction; rules: AclRule[] }

/** The gateway's limits, in the order the console shows them (the API's `limits`; each null = no limit). */
export const LIMIT_NAMES = [
  'maxConnections', 'messagesPerSecondPerDevice', 'bytesPerSecondPerDevice', 'maxSubscriptionsPerDevice', 'maxRetainedMessages',
  'maxPacketSize', 'maxQueuedMessagesPerDevice', 'maxSessionExpirySeconds', 'maxSessionsPerDevice', 'maxConnectionsPerAddress',
  'connectionRatePerAddress', 'maxRetainedBytes', 'maxQueuedBytesPerDevice', 'maxTopicLevels', 'maxTopicLength', 'maxClientIdLength',
  'maxUserPropertiesPerPacket', 'maxFiltersPerSubscribe',
] as const;
export type LimitName = (typeof LIMIT_NAMES)[number];
export type GatewayLimits = Record<LimitName, number | null>;
export type GatewayLimitsUsage = Record<LimitName, { current: number | null; hits: number }>;

export interface Gateway extends GatewayListItem {
  protocol: string;
  dataParsing: { enabled: boolean; script: string | null };
  thirdParty: ThirdPartyView | null;
  x509: { enabled: boolean };
  ocsp: { mode: OcspMode; onResponderFailure: 'REJECT' | 'ACCEPT' };
  accessControl: AccessControl;
  limits: GatewayLimits;
  /** Each limit's use on the running gateway; null when it is not running. */
  limitsUsage: GatewayLimitsUsage | null;
  certificates: { serverCertificateChain: string; deviceRootCertificates: string | null; trustedCertificate: string | null };
  updatedAt: string;
}

export interface Warning { code: string; message: string; field: string }
export type SavedGateway = Gateway;

export interface DeviceStatusCounts { online: number; offline: number; inactive: number; disabled: number }
export interface Product { productKey: string; name: string; gatewayId: string; deviceCount: number; deviceCounts: DeviceStatusCounts; createdAt: string }

/** A page of a product's devices (keyset: `nextCursor` leads to the next one). */
export interface DevicePage { items: Device[]; nextCursor: string | null; total: number }

export type DeviceStatus = 'INACTIVE' | 'ONLINE' | 'OFFLINE' | 'DISABLED';
export interface Device {
  deviceName: string;
  productKey: string;
  username: string | null;
  sn: string | null;
  status: DeviceStatus;
  origin: 'IMPORTED' | 'AUTO_CREATED';
  lastOnlineAt: string | null;
  clientAddress: string | null;
  certificate: { cn: string | null; serial: string; issuer: string; fingerprint256: string } | null;
  properties: Record<string, unknown>;
  createdAt: string;
  updatedAt: string;
}

/** A device's MQTT session as the engine holds it (GET …/devices/{name}/sessions). */
export interface DeviceSession {
  gatewayId: string;
  clientId: string;
  connected: boolean;
  address: string | null;
  protocolVersion: number | null;
  expiryIntervalSeconds: number;
  disconnectedAt: string | null;
  subscriptions: { filter: string; qos: number; noLocal: boolean; retainAsPublished: boolean; retainHandling: number }[];
  inflight: number;
  queued: number;
  queuedBytes: number;
  pending: { topic: string; qos: number; bytes: number; state: 'IN_FLIGHT' | 'QUEUED'; packetId: number | null }[];
}

/** A CONNECT outcome or a disconnect (GET /events). */
export interface ConnectionEvent {
  id: string;
  gatewayId: string;
  type: 'CONNECT_ACCEPTED' | 'CONNECT_REFUSED' | 'CONNECT_ABANDONED' | 'DISCONNECTED';
  reason: string;
  detail: string | null;
  mqttReasonCode: number | null;
  protocolVersion: number | null;
  clientId: string | null;
  username: string | null;
  deviceName: string | null;
  address: string | null;
  certificate: { cn: string | null; serial: string; issuer: string; fingerprint256: string } | null;
  at: string;
  count: number;
  lastAt: string;
}

export interface DownlinkResult { online: boolean; result: 'OFFLINE' | 'NOT_SUBSCRIBED' | 'SENT' | 'ACKED' | 'TIMEOUT'; acknowledged: boolean | null }

/** An import running in the background (POST /products/{key}/imports), polled for its progress. */
export interface ImportOperation {
  id: string;
  productKey: string;
  state: 'RUNNING' | 'DONE' | 'FAILED';
  total: number;
  processed: number;
  created: number;
  failed: number;
  error: { code: string; message: string; field: string | null } | null;
  failures: { row: number; error?: { code: string; message: string; field: string | null } }[];
  failuresOmitted: number;
}

export interface VerificationFunction { name: string; source: string; timeoutMs: number; memoryMb: number; createdAt: string; updatedAt: string }

export interface InvokeResult {
  output: Record<string, unknown> | null;
  error: { kind: string; message: string; line?: number } | null;
  decision: { result: 'ACCEPT' | 'REJECT' | 'SERVER_UNAVAILABLE'; deviceName: string | null; reason: string | null; message: string | null };
  logs: { level: string; message: string }[];
  durationMs: number;
}

export interface ParsingTestResult {
  output: Record<string, unknown> | null;
  error: { kind: string; message: string; line?: number } | null;
  propertyPost: boolean;
  logs: { level: string; message: string }[];
  durationMs: number;
}

export interface Message {
  id: string;
  gatewayId: string;
  productKey: string;
  deviceName: string;
  topic: string;
  qos: number;
  payload: string;
  parsed: Record<string, unknown> | null;
  parseError: string | null;
  receivedAt: string;
}

export interface SelfSigned { certificatePem: string; privateKeyPem: string; fingerprint256: string; notAfter: string; warning: string }
