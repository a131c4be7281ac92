/**
 * Gateway request and response schemas. They check shapes and types; the registry checks the rules
 * (name pattern, port range, https URL, certificates …) so that each rule answers with its own code.
 */
import { Type, type TSchema } from 'typebox';
import { Nullable, WarningSchema } from '../common-schemas.ts';
import { DEFAULT_GATEWAY_LIMITS, GATEWAY_LIMIT_RANGES, type GatewayLimitName } from '../../registry/gateway-limits.ts';

const AuthType = Type.Enum(['ONE_PARTY', 'THIRD_PARTY']);
const OcspMode = Type.Enum(['DISABLED', 'SERVER', 'CLIENT', 'SERVER_AND_CLIENT']);
const OcspFailure = Type.Enum(['REJECT', 'ACCEPT']);
const Pem = (description: string) => Type.String({ description });

const HttpsParam = Type.Object({
  key: Type.String({ description: '1-64 characters' }),
  value: Type.String({
    description: 'Up to 64 characters; may use ${username}, ${password}, ${clientId}, ${cert.cn}, ${cert.serial}, ${cert.issuer}, ${userProperties.<key>}',
  }),
}, { additionalProperties: false });

const ThirdParty = Type.Object({
  provider: Type.Enum(['FUNCTION', 'HTTPS']),
  functionName: Type.Optional(Type.String({
    description: 'FUNCTION: name of a stored verification function. handler(event) returns {result, deviceName, message?, acl?}; '
      + 'acl is a list of access rules (as accessControl.rules) applied to that device before the gateway\'s rules',
  })),
  url: Type.Optional(Type.String({
    description: 'HTTPS: must start with https://. A 2xx answer {"deviceName": "…", "acl": [rules]?} accepts; acl (as accessControl.rules) '
      + 'applies to that device before the gateway\'s rules; rules that do not check out make the answer a backend failure (0x88). '
      + 'Any 4xx refuses the device (0x86); a timeout, a network error or a 5xx is a backend failure (0x88)',
  })),
  params: Type.Optional(Type.Array(HttpsParam, { description: 'HTTPS: up to 10 custom body fields' })),
  caCertificate: Type.Optional(Nullable(Pem('HTTPS: CA to trust for the service instead of the system store'))),
  timeoutMs: Type.Optional(Type.Integer({ description: 'HTTPS: per-call time limit, 100-30000, default 5000; a slower answer is a backend failure' })),
  acceptCacheTtlSeconds: Type.Optional(Type.Integer({ description: 'HTTPS: how long an accept is reused for the same credentials, 0-86400, default 60 (0 = off)' })),
  rejectCacheTtlSeconds: Type.Optional(Type.Integer({ description: 'HTTPS: how long a reject is reused, 0-3600, default 10 (0 = off)' })),
  signingSecret: Type.Optional(Nullable(Type.String({
    description: 'HTTPS: 16-256 characters; signs each call with X-Gatehouse-Timestamp and X-Gatehouse-Signature '
      + '(sha256=hex HMAC-SHA256 of "<timestamp>.<body>"). Write-only; omitted in an edit keeps it, null removes it',
  }))),
}, { additionalProperties: false, description: 'Required with THIRD_PARTY, absent with ONE_PARTY' });

const DataParsing = Type.Object({
  enabled: Type.Optional(Type.Boolean()),
  script: Type.Optional(Nullable(Type.String({ description: 'Defines transformPayload(topic, bytes); required when enabled' }))),
}, { additionalProperties: false });

const CertificatesInput = Type.Object({
  serverCertificateChain: Type.Optional(Pem('Server certificate first, then intermediates')),
  serverPrivateKey: Type.Optional(Pem('Private key of the server certificate, unencrypted; write-only')),
  deviceRootCertificates: Type.Optional(Nullable(Pem('CA certificates device certificates chain to; required with X.509'))),
  trustedCertificate: Type.Optional(Nullable(Pem('Server root certificate; required with SERVER / SERVER_AND_CLIENT OCSP'))),
}, { additionalProperties: false });

const AclRule = Type.Object({
  action: Type.Enum(['ALLOW', 'DENY']),
  access: Type.Enum(['PUBLISH', 'SUBSCRIBE', 'ALL']),
  topic: Type.String({
    description: 'A topic filter (+ and # allowed) whose levels may each be exactly one placeholder: '
      + '${deviceName}, ${username}, ${clientId}, ${productKey}, ${cert.cn}. A placeholder value holding +, # or / never matches',
  }),
}, { additionalProperties: false });

/** Shared with a third-party answer's `acl` (OpenAPI: the verification service's contract). */
export const AclRules = Type.Array(AclRule, {
  description: 'Read in order; the first rule that applies decides. A SUBSCRIBE is allowed by an ALLOW rule only when its filter '
    + 'covers every topic the requested filter can match; a DENY rule refuses any filter that can match one of its topics. At most 100',
});

const AccessControlInput = Type.Object({
  defaultAction: Type.Optional(Type.Enum(['ALLOW', 'DENY'], { description: 'When no rule applies; default ALLOW' })),
  rules: Type.Optional(AclRules),
}, {
  additionalProperties: false,
  description: 'Topic access control of every session. Default ALLOW with no rules. In an edit, rules are replaced whole. '
    + 'Refusals: v5 SUBACK 0x87 per filter and PUBACK/PUBREC 0x87; v3.1.1 SUBACK 0x80, a PUBLISH acknowledged and dropped',
});

const LIMIT_DESCRIPTIONS: Record<GatewayLimitName, string> = {
  maxConnections: 'Devices connected at once; more are refused (v5 CONNACK 0x97, v3.1.1 3)',
  messagesPerSecondPerDevice: 'PUBLISH packets per second per connection; a faster device is paced (its socket reads pause), never dropped',
  bytesPerSecondPerDevice: 'Bytes (whole PUBLISH packets) per second per connection; paced like the message rate',
  maxSubscriptionsPerDevice: 'Subscriptions per session (client id); more get 0x97 per filter (v3.1.1 0x80)',
  maxRetainedMessages: 'Retained topics of the gateway; a new one beyond it is not stored (v5 PUBACK 0x97)',
  maxPacketSize: 'Largest MQTT packet in bytes (v5 CONNACK Maximum Packet Size); a larger one ends the connection (0x95). Applies to connections made after an edit',
  maxQueuedMessagesPerDevice: 'QoS 1/2 messages queued per session while it is offline or busy; the oldest is dropped beyond it',
  maxSessionExpirySeconds: 'Longest session expiry granted; v5 CONNACK carries the granted Session Expiry Interval when it is lower than asked',
  maxSessionsPerDevice: 'Sessions (distinct client ids) one device may hold; one more is refused (0x97 / v3.1.1 3)',
  maxConnectionsPerAddress: 'Open sockets from one source address, before TLS; more are closed at once',
  connectionRatePerAddress: 'New sockets per second from one source address (bursts of twice as many); more are closed at once',
  maxRetainedBytes: 'Bytes (payloads and topics) of all retained messages of the gateway; a message that would pass it is not stored (v5 PUBACK 0x97)',
  maxQueuedBytesPerDevice: 'Bytes of QoS 1/2 messages queued per session; the oldest are dropped beyond it',
  maxTopicLevels: 'Levels in a topic name or filter; deeper ones are refused (PUBLISH: v5 DISCONNECT 0x90; SUBSCRIBE: 0x8F per filter; will: CONNACK 0x90). null = the engine\'s most, 1000',
  maxTopicLength: 'Bytes (UTF-8) of a topic name or filter; longer ones are refused like deeper ones. null = the protocol\'s most, 65535',
  maxClientIdLength: 'Bytes (UTF-8) of a client identifier; longer ones are refused (v5 CONNACK 0x85, v3.1.1 2). At least 23 [MQTT-3.1.3-5]; null = 65535',
  maxUserPropertiesPerPacket: 'User properties in one packet (a will\'s included); a packet with more ends the connection (v5 0x97)',
  maxFiltersPerSubscribe: 'Topic filters in one SUBSCRIBE or UNSUBSCRIBE; a packet with more ends the connection (v5 0x97)',
};
const limitNames = Object.keys(DEFAULT_GATEWAY_LIMITS) as GatewayLimitName[];
/** One property per limit, typed by name (Object.fromEntries alone would lose the keys). */
const perLimit = <T extends TSchema>(schema: (name: GatewayLimitName) => T): Record<GatewayLimitName, T> =>
  Object.fromEntries(limitNames.map((n) => [n, schema(n)])) as Record<GatewayLimitName, T>;
const limitDescription = (name: GatewayLimitName): string => {
  const [min, max] = GATEWAY_LIMIT_RANGES[name];
  const fallback = DEFAULT_GATEWAY_LIMITS[name];
  return `${LIMIT_DESCRIPTIONS[name]}. ${min}-${max}, or null for no limit; default ${fallback === null ? 'null' : fallback}`;
};

const LimitsInput = Type.Object(
  perLimit((n) => Type.Optional(Nullable(Type.Number({ description: limitDescription(n) })))),
  {
    additionalProperties: false,
    description: 'Per-gateway limits, enforced live; each null = no limit. In an edit, only the limits named change. '
      + 'Out of range: GW_ERR_LIMIT_OUT_OF_RANGE; not a whole number: GW_ERR_LIMIT_NOT_INTEGER (field limits.<name>)',
  },
);

export const LimitsView = Type.Object(perLimit((n) => Nullable(Type.Integer({ description: limitDescription(n) }))), {
  description: 'Per-gateway limits; each null = no limit',
});

const LimitsUsageView = Type.Object(
  perLimit(() => Type.Object({ current: Nullable(Type.Integer()), hits: Type.Integer() })),
  {
    description: 'A running gateway\'s use of each limit: current = the level now against the limit (for per-device limits, the most any '
      + 'one device, session or address holds; null for rates, packet size and expiry), hits = refusals or pacings since the listener started',
  },
);

const settingsProperties = {
  name: Type.String({ description: '4-30 of A-Z a-z 0-9 _, unique' }),
  protocol: Type.String({ description: 'MQTT' }),
  port: Type.Integer({ description: '1024-65535, unique among gateways; default 1883' }),
  dataParsing: DataParsing,
  authType: AuthType,
  thirdParty: Nullable(ThirdParty),
  x509: Type.Object({ enabled: Type.Optional(Type.Boolean()) }, { additionalProperties: false }),
  ocsp: Type.Object({
    mode: Type.Optional(OcspMode),
    onResponderFailure: Type.Optional(OcspFailure),
  }, { additionalProperties: false, description: 'CLIENT and SERVER_AND_CLIENT need x509.enabled' }),
  accessControl: AccessControlInput,
  limits: LimitsInput,
};

export const AccessControlView = Type.Object({ defaultAction: Type.Enum(['ALLOW', 'DENY']), rules: AclRules }, {
  description: 'Topic access control of every session of a gateway',
});

/**
 * What a third-party verifier answers (not a route of ours: the customer's HTTPS service's 2xx body, or a
 * verification function's return value), documented so a service can be written against it.
 */
export const VerificationAnswer = Type.Object({
  result: Type.Optional(Type.Union([Type.Enum(['true', 'false']), Type.Boolean()], { description: 'Verification function only; HTTPS decides by status' })),
  deviceName: Type.Optional(Type.String({ description: 'The device accepted (4-32 of A-Z a-z 0-9 - _ @ . :); created on its first connection. Without it: a refusal' })),
  message: Type.Optional(Type.String({ description: 'Verification function only: why, for the log' })),
  acl: Type.Optional(AclRules),
}, {
  description: 'A third-party verifier\'s accept: an HTTPS 2xx body, or a verification function\'s result. acl rules (as accessControl.rules) '
    + 'apply to that device\'s session before the gateway\'s; rules that do not check out make the answer a backend failure (0x88), never an accept',
});

export const GatewayCreateBody = Type.Object({
  name: settingsProperties.name,
  protocol: Type.Optional(settingsProperties.protocol),
  port: Type.Optional(settingsProperties.port),
  dataParsing: Type.Optional(settingsProperties.dataParsing),
  authType: Type.Optional(settingsProperties.authType),
  thirdParty: Type.Optional(settingsProperties.thirdParty),
  x509: Type.Optional(settingsProperties.x509),
  ocsp: Type.Optional(settingsProperties.ocsp),
  accessControl: Type.Optional(settingsProperties.accessControl),
  limits: Type.Optional(settingsProperties.limits),
  certificates: CertificatesInput,
}, { additionalProperties: false });

export const GatewayUpdateBody = Type.Object({
  name: Type.Optional(settingsProperties.name),
  protocol: Type.Optional(settingsProperties.protocol),
  port: Type.Optional(settingsProperties.port),
  dataParsing: Type.Optional(settingsProperties.dataParsing),
  authType: Type.Optional(settingsProperties.authType),
  thirdParty: Type.Optional(settingsProperties.thirdParty),
  x509: Type.Optional(settingsProperties.x509),
  ocsp: Type.Optional(settingsProperties.ocsp),
  accessControl: Type.Optional(settingsProperties.accessControl),
  limits: Type.Optional(settingsProperties.limits),
  certificates: Type.Optional(CertificatesInput),
}, {
  additionalProperties: false,
  description: 'Only the fields to change. Nested objects merge key by key, except thirdParty, which is replaced whole.',
});

const ThirdPartyView = Type.Object({
  provider: Type.Enum(['FUNCTION', 'HTTPS']),
  functionName: Type.Optional(Type.String()),
  url: Type.Optional(Type.String()),
  params: Type.Optional(Type.Array(Type.Object({ key: Type.String(), value: Type.String() }))),
  caCertificate: Type.Optional(Nullable(Type.String())),
  timeoutMs: Type.Optional(Type.Integer()),
  acceptCacheTtlSeconds: Type.Optional(Type.Integer()),
  rejectCacheTtlSeconds: Type.Optional(Type.Integer()),
  signingSecretSet: Type.Optional(Type.Boolean({ description: 'HTTPS: calls are signed (the secret itself is write-only)' })),
});

const GatewayStatus = Type.Enum(['RUNNING', 'STOPPED', 'ERROR']);

const Counts = Type.Record(Type.String(), Type.Integer());
const LastError = Nullable(Type.Object({ at: Type.String(), reason: Type.String() }));

const OcspStatusView = Type.Object({
  mode: OcspMode,
  server: Nullable(Type.Object({
    stapling: Type.Boolean({ description: 'A fresh, verified good response is stapled to handshakes right now' }),
    certStatus: Nullable(Type.Enum(['good', 'revoked', 'unknown'])),
    thisUpdate: Nullable(Type.String()),
    nextUpdate: Nullable(Type.String()),
    fetchedAt: Nullable(Type.String()),
    ageSeconds: Nullable(Type.Integer({ description: 'Seconds since the kept response\'s thisUpdate' })),
    expiresAt: Nullable(Type.String({ description: 'nextUpdate clamped to 5 min … 1 h after the fetch' })),
    nextRefreshAt: Nullable(Type.String()),
    staplesServed: Type.Integer(),
    responderErrors: Counts,
    lastError: LastError,
  }, { description: 'Stapling of the server certificate (SERVER, SERVER_AND_CLIENT)' })),
  client: Nullable(Type.Object({
    onResponderFailure: OcspFailure,
    checks: Type.Object({ good: Type.Integer(), revoked: Type.Integer(), unknown: Type.Integer(), responder_error: Type.Integer() }),
    cacheHits: Type.Integer(),
    cacheSize: Type.Integer(),
    responderErrors: Counts,
    lastError: LastError,
    revokedWhileConnected: Type.Integer(),
  }, { description: 'Device-certificate checks (CLIENT, SERVER_AND_CLIENT)' })),
  x509Refusals: Type.Record(Type.String(), Type.Integer(), { description: 'TLS connections refused for their client certificate, by reason' }),
}, { description: 'Live certificate checks of a running gateway with X.509 or OCSP on; counters since the listener started' });

export const GatewayView = Type.Object({
  id: Type.String(),
  name: Type.String(),
  protocol: Type.String(),
  port: Type.Integer(),
  url: Type.String({ description: 'mqtts://<public host>:<port>: the endpoint devices use' }),
  productKey: Type.String(),
  dataParsing: Type.Object({ enabled: Type.Boolean(), script: Nullable(Type.String()) }),
  authType: AuthType,
  thirdParty: Nullable(ThirdPartyView),
  x509: Type.Object({ enabled: Type.Boolean() }),
  ocsp: Type.Object({ mode: OcspMode, onResponderFailure: OcspFailure }),
  accessControl: AccessControlView,
  limits: LimitsView,
  certificates: Type.Object({
    serverCertificateChain: Type.String(),
    deviceRootCertificates: Nullable(Type.String()),
    trustedCertificate: Nullable(Type.String()),
  }, { description: 'The private key is write-only and never returned' }),
  enabled: Type.Boolean({ description: 'The operator wants the listener on (create/start) or off (stop)' }),
  status: GatewayStatus,
  statusReason: Nullable(Type.String()),
  connectedClients: Type.Integer(),
  ocspStatus: Nullable(OcspStatusView),
  limitsUsage: Nullable(LimitsUsageView),
  warnings: Type.Array(WarningSchema, {
    description: 'Trouble ahead, as of this read: certificates expiring within 30 days (or expired), a server chain without its '
      + 'intermediates, device certificates that name no OCSP responder while client OCSP is on …',
  }),
  createdAt: Type.String(),
  updatedAt: Type.String(),
});

/** A create or an edit answers the gateway with what the save found besides (e.g. the HTTPS service's CA expiring). */
export const GatewaySaved = GatewayView;

export const GatewayListItem = Type.Object({
  id: Type.String(),
  name: Type.String(),
  url: Type.String(),
  port: Type.Integer(),
  authType: AuthType,
  enabled: Type.Boolean(),
  status: GatewayStatus,
  statusReason: Nullable(Type.String()),
  connectedClients: Type.Integer(),
  productKey: Type.String(),
  warnings: Type.Array(WarningSchema),
  createdAt: Type.String(),
});

export const GatewayList = Type.Object({ items: Type.Array(GatewayListItem) });

export const GatewayIdParams = Type.Object({ id: Type.String() });
