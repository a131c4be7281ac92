/**
 * The domain's vocabulary: gateways, products, devices and verification functions as the control plane
 * and the data plane see them. Field names follow DESIGN.md ("Contracts decided", "Shapes").
 */

import type { AccessControl } from './access-control.ts';
import type { GatewayLimits } from './gateway-limits.ts';

export type GatewayProtocol = 'MQTT';
export type AuthType = 'ONE_PARTY' | 'THIRD_PARTY';
export type OcspMode = 'DISABLED' | 'SERVER' | 'CLIENT' | 'SERVER_AND_CLIENT';
/** What a client OCSP check does when the responder cannot answer. */
export type OcspResponderFailurePolicy = 'REJECT' | 'ACCEPT';
export type GatewayStatus = 'RUNNING' | 'STOPPED' | 'ERROR';

export const AUTH_TYPES: readonly AuthType[] = ['ONE_PARTY', 'THIRD_PARTY'];
export const OCSP_MODES: readonly OcspMode[] = ['DISABLED', 'SERVER', 'CLIENT', 'SERVER_AND_CLIENT'];
export const OCSP_FAILURE_POLICIES: readonly OcspResponderFailurePolicy[] = ['REJECT', 'ACCEPT'];
export const GATEWAY_STATUSES: readonly GatewayStatus[] = ['RUNNING', 'STOPPED', 'ERROR'];

export interface DataParsingConfig {
  enabled: boolean;
  /** Source defining `transformPayload(topic, bytes)`; null when never set. */
  script: string | null;
}

export interface HttpsParam {
  key: string;
  /** Literal text with `${…}` variables (see templates.ts). */
  value: string;
}

export interface FunctionProvider {
  provider: 'FUNCTION';
  functionName: string;
}

export interface HttpsProvider {
  provider: 'HTTPS';
  url: string;
  params: HttpsParam[];
  /** PEM CA(s) to trust for the verification service instead of the system store; null = system store. */
  caCertificate: string | null;
  /** Per-call time limit; a call that takes longer is a backend failure. */
  timeoutMs: number;
  /** How long an accept is remembered for the same credentials; 0 = not cached. */
  acceptCacheTtlSeconds: number;
  /** How long a reject is remembered (shorter: a device fixed on the service side gets in soon); 0 = not cached. */
  rejectCacheTtlSeconds: number;
  /**
   * HMAC-SHA256 key for the request signature header, so the service can tell the call came from this
   * gateway; null = unsigned. Write-only: the API shows `signingSecretSet` instead.
   */
  signingSecret: string | null;
}

export type ThirdPartyConfig = FunctionProvider | HttpsProvider;

/** Fields added to the HTTPS provider after the first release: records from before lack them (defaults apply). */
type HttpsProviderLaterFields = 'timeoutMs' | 'acceptCacheTtlSeconds' | 'rejectCacheTtlSeconds' | 'signingSecret';
/** The provider as storage keeps it (the signing secret encrypted). */
export type StoredThirdPartyConfig =
  | FunctionProvider
  | (Omit<HttpsProvider, HttpsProviderLaterFields> & Partial<Pick<HttpsProvider, HttpsProviderLaterFields>>);

export interface OcspConfig {
  mode: OcspMode;
  onResponderFailure: OcspResponderFailurePolicy;
}

/** The certificates of a gateway as the API shows them: the private key is write-only. */
export interface PublicCertificates {
  /** PEM, leaf first, then intermediates. */
  serverCertificateChain: string;
  /** PEM CA certificates that device certificates must chain to (required with X.509). */
  deviceRootCertificates: string | null;
  /** PEM root of the server chain, for OCSP response verification (required with SERVER OCSP modes). */
  trustedCertificate: string | null;
}

/** Everything an operator sets on a gateway. */
export interface GatewaySettings {
  name: string;
  protocol: GatewayProtocol;
  port: number;
  dataParsing: DataParsingConfig;
  authType: AuthType;
  /** Present exactly when `authType` is THIRD_PARTY. */
  thirdParty: ThirdPartyConfig | null;
  x509: { enabled: boolean };
  ocsp: OcspConfig;
  /** Topic access control applied to every session of the gateway (issue 13). */
  accessControl: AccessControl;
  /** What the gateway and each device on it may take (issue 13); each null = no limit. */
  limits: GatewayLimits;
}

/** The HTTPS provider as the API shows it: the signing secret is write-only. */
export type HttpsProviderView = Omit<HttpsProvider, 'signingSecret'> & { signingSecretSet: boolean };
export type ThirdPartyView = FunctionProvider | HttpsProviderView;

/** A gateway as the control plane returns it (no private key, no signing secret). */
export interface Gateway extends Omit<GatewaySettings, 'thirdParty'> {
  /** Present exactly when `authType` is THIRD_PARTY. */
  thirdParty: ThirdPartyView | null;
  id: string;
  productKey: string;
  /** `mqtts://<public host>:<port>`. */
  url: string;
  /** The operator wants the listener on (set by create/start, cleared by stop). */
  enabled: boolean;
  /** Last status the runtime reported (`setGatewayStatus`). */
  status: GatewayStatus;
  statusReason: string | null;
  certificates: PublicCertificates;
  /** Findings about the stored certificates (expiring, an incomplete chain …), as of this read. */
  warnings: Warning[];
  createdAt: string;
  updatedAt: string;
}

/** What the data plane needs to run a gateway, private key decrypted. Never leaves the server. */
export interface GatewayRuntimeConfig extends GatewaySettings {
  id: string;
  productKey: string;
  url: string;
  enabled: boolean;
  certificates: PublicCertificates & { serverPrivateKey: string };
}

export interface CertificatesInput {
  serverCertificateChain?: string;
  serverPrivateKey?: string;
  /** null clears. */
  deviceRootCertificates?: string | null;
  /** null clears. */
  trustedCertificate?: string | null;
}

export type ThirdPartyInput =
  | { provider: 'FUNCTION'; functionName: string }
  | {
    provider: 'HTTPS'; url: string; params?: HttpsParam[]; caCertificate?: string | null;
    timeoutMs?: number; acceptCacheTtlSeconds?: number; rejectCacheTtlSeconds?: number;
    /** Omitted in an edit: the stored secret stays; null: removed. */
    signingSecret?: string | null;
  };

export interface GatewayCreateInput {
  name: string;
  /** Only MQTT; anything else is GW_ERR_PROTOCOL_UNSUPPORTED. */
  protocol?: string;
  /** Default 1883. */
  port?: number;
  dataParsing?: { enabled?: boolean; script?: string | null };
  /** Default ONE_PARTY. */
  authType?: AuthType;
  thirdParty?: ThirdPartyInput | null;
  x509?: { enabled?: boolean };
  ocsp?: { mode?: OcspMode; onResponderFailure?: OcspResponderFailurePolicy };
  /** Default ALLOW with no rules. */
  accessControl?: Partial<AccessControl>;
  /** Each omitted limit takes its default (`DEFAULT_GATEWAY_LIMITS`); null = no limit. */
  limits?: Partial<GatewayLimits>;
  certificates: CertificatesInput;
}

/**
 * A partial edit. Nested objects merge key by key, except `thirdParty`, which is replaced whole
 * (switching provider changes every field of it), and `accessControl.rules`, replaced whole (an
 * ordered list: a merge by position would mean nothing).
 */
export type GatewayUpdateInput = Partial<Omit<GatewayCreateInput, 'certificates' | 'accessControl'>> & {
  certificates?: CertificatesInput;
  accessControl?: Partial<AccessControl>;
};

/** A non-fatal finding returned with a save, e.g. a certificate that expires within 30 days. */
export interface Warning {
  code: string;
  message: string;
  field: string;
}

/** Devices of a product per status (the status a device shows: DISABLED first, then its connection). */
export interface DeviceStatusCounts {
  online: number;
  offline: number;
  /** Never connected. */
  inactive: number;
  disabled: number;
}

export interface Product {
  productKey: string;
  /** `Gateway` followed by the gateway ID. */
  name: string;
  gatewayId: string;
  deviceCount: number;
  /** Exact, counted by the database (a disabled device counts as disabled whatever its connection). */
  deviceCounts: DeviceStatusCounts;
  createdAt: string;
}

export type DeviceOrigin = 'IMPORTED' | 'AUTO_CREATED';
/** Connection history; DISABLED is shown instead when the operator disabled the device. */
export type DeviceConnectionState = 'INACTIVE' | 'ONLINE' | 'OFFLINE';
export type DeviceStatus = DeviceConnectionState | 'DISABLED';

export interface DeviceCertificateInfo {
  cn: string | null;
  serial: string;
  issuer: string;
  fingerprint256: string;
}

/** A device as the API shows it: the password hash never appears. */
export interface Device {
  deviceName: string;
  productKey: string;
  username: string | null;
  sn: string | null;
  status: DeviceStatus;
  origin: DeviceOrigin;
  lastOnlineAt: string | null;
  clientAddress: string | null;
  certificate: DeviceCertificateInfo | null;
  properties: Record<string, unknown>;
  createdAt: string;
  updatedAt: string;
}

/** One one-party row (add one device, or one row of an import). */
export interface DeviceCreateInput {
  username: string;
  password: string;
  sn?: string | null;
  /** Defaults to the username. */
  deviceName?: string;
}

export interface DeviceUpdateInput {
  password?: string;
  sn?: string | null;
  disabled?: boolean;
}

export interface ImportRowError {
  code: string;
  message: string;
  field: string | null;
}

export interface ImportRowResult {
  /** 1-based position among the rows (a CSV header line is not counted). */
  row: number;
  ok: boolean;
  deviceName?: string;
  error?: ImportRowError;
}

export interface ImportResult {
  total: number;
  created: number;
  failed: number;
  rows: ImportRowResult[];
}

export interface VerificationFunction {
  name: string;
  source: string;
  timeoutMs: number;
  memoryMb: number;
  createdAt: string;
  updatedAt: string;
}

export interface FunctionInput {
  source: string;
  timeoutMs?: number;
  memoryMb?: number;
}

/** What the data plane reads to check a one-party CONNECT. */
export interface DeviceCredential {
  deviceName: string;
  passwordHash: string;
  disabled: boolean;
}

export interface DeviceConnectionInfo {
  clientAddress: string | null;
  at: Date;
  certificate?: DeviceCertificateInfo | null;
}
