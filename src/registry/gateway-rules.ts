/**
 * The rules of DESIGN.md "Contracts decided" for gateway fields, applied to a draft (a gateway as it
 * would be after a create or an edit). Pure apart from the function lookup, so the same rules hold for
 * the API, the CLI and any direct caller.
 */
import { GatehouseError, type ErrorCode } from '../core/errors.ts';
import type { GatewayChange } from './events.ts';
import {
  checkCaCertificates, checkCertificates, checkServerChain, serverChainWarnings, trustedCertificateWarnings, type DateCheck,
  type ParsedCertificates,
} from './certificates.ts';
import { findSyntaxError } from './script-syntax.ts';
import { parseTemplate } from './templates.ts';
import { checkAccessControl, DEFAULT_ACCESS_CONTROL } from './access-control.ts';
import { checkGatewayLimits, DEFAULT_GATEWAY_LIMITS } from './gateway-limits.ts';
import {
  AUTH_TYPES, OCSP_FAILURE_POLICIES, OCSP_MODES, type GatewayCreateInput, type GatewayProtocol, type GatewaySettings, type GatewayUpdateInput,
  type HttpsParam, type StoredThirdPartyConfig, type ThirdPartyConfig, type ThirdPartyInput, type Warning,
} from './types.ts';

export const GATEWAY_NAME = /^[A-Za-z0-9_]{4,30}$/;
export const DEFAULT_PORT = 1883;
export const MIN_PORT = 1024;
export const MAX_PORT = 65535;
export const MAX_PARAMS = 10;
export const MAX_PARAM_LENGTH = 64;
export const MAX_SCRIPT_LENGTH = 256 * 1024;
/** HTTPS verification call limits and defaults (DESIGN.md: per-gateway timeout, default 5 s). */
export const HTTPS_TIMEOUT_MS = { min: 100, max: 30_000, default: 5_000 } as const;
export const ACCEPT_CACHE_TTL_SECONDS = { min: 0, max: 86_400, default: 60 } as const;
export const REJECT_CACHE_TTL_SECONDS = { min: 0, max: 3_600, default: 10 } as const;
export const SIGNING_SECRET_LENGTH = { min: 16, max: 256 } as const;
/** Body fields of the verification call itself; a custom parameter must not overwrite them. */
const RESERVED_PARAM_KEYS = ['username', 'password', 'certificateCommonName'];

/** A gateway as it would be saved, private key in the clear (it is encrypted by the service). */
export interface GatewayDraft extends Omit<GatewaySettings, 'protocol'> {
  /** Checked to be MQTT by `checkDraft`. */
  protocol: string;
  certificates: DraftCertificates;
}

export interface DraftCertificates {
  serverCertificateChain: string | null;
  serverPrivateKey: string | null;
  deviceRootCertificates: string | null;
  trustedCertificate: string | null;
}

export type CertificateField = keyof DraftCertificates;

function fail(code: ErrorCode, field: string, message?: string): never {
  throw new GatehouseError(code, message, field);
}

function expectBoolean(value: unknown, field: string): boolean {
  if (typeof value !== 'boolean') fail('GW_ERR_VALIDATION', field, `${field} must be true or false`);
  return value;
}

function expectOneOf<T extends string>(value: unknown, allowed: readonly T[], field: string): T {
  if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) {
    fail('GW_ERR_VALIDATION', field, `${field} must be one of ${allowed.join(', ')}`);
  }
  return value as T;
}

function optionalText(value: unknown, field: string): string | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== 'string') fail('GW_ERR_VALIDATION', field, `${field} must be a string`);
  return value.trim() === '' ? null : value;
}

function thirdPartyFromInput(input: ThirdPartyInput | null | undefined): ThirdPartyConfig | null {
  if (input === undefined || input === null) return null;
  if (typeof input !== 'object') fail('GW_ERR_VALIDATION', 'thirdParty', 'thirdParty must be an object');
  switch (input.provider) {
    case 'FUNCTION':
      return { provider: 'FUNCTION', functionName: input.functionName };
    case 'HTTPS':
      return {
        provider: 'HTTPS',
        url: input.url,
        params: input.params ?? [],
        caCertificate: optionalText(input.caCertificate, 'thirdParty.caCertificate'),
        timeoutMs: input.timeoutMs ?? HTTPS_TIMEOUT_MS.default,
        acceptCacheTtlSeconds: input.acceptCacheTtlSeconds ?? ACCEPT_CACHE_TTL_SECONDS.default,
        rejectCacheTtlSeconds: input.rejectCacheTtlSeconds ?? REJECT_CACHE_TTL_SECONDS.default,
        signingSecret: input.signingSecret ?? null,
      };
    default:
      return fail('GW_ERR_PROVIDER_REQUIRED', 'thirdParty.provider', 'thirdParty.provider must be FUNCTION or HTTPS');
  }
}

/** Fills fields added after a gateway was stored (records from before they existed). */
export function withThirdPartyDefaults(stored: StoredThirdPartyConfig | null): ThirdPartyConfig | null {
  if (stored?.provider !== 'HTTPS') return stored;
  return {
    ...stored,
    timeoutMs: stored.timeoutMs ?? HTTPS_TIMEOUT_MS.default,
    acceptCacheTtlSeconds: stored.acceptCacheTtlSeconds ?? ACCEPT_CACHE_TTL_SECONDS.default,
    rejectCacheTtlSeconds: stored.rejectCacheTtlSeconds ?? REJECT_CACHE_TTL_SECONDS.default,
    signingSecret: stored.signingSecret ?? null,
  };
}

/** Defaults applied to a create request. */
export function draftFromCreate(input: GatewayCreateInput): GatewayDraft {
  const certificates = input.certificates ?? {};
  return {
    name: input.name,
    protocol: input.protocol ?? 'MQTT',
    port: input.port ?? DEFAULT_PORT,
    dataParsing: { enabled: input.dataParsing?.enabled ?? false, script: optionalText(input.dataParsing?.script, 'dataParsing.script') },
    authType: input.authType ?? 'ONE_PARTY',
    thirdParty: thirdPartyFromInput(input.thirdParty),
    x509: { enabled: input.x509?.enabled ?? false },
    ocsp: { mode: input.ocsp?.mode ?? 'DISABLED', onResponderFailure: input.ocsp?.onResponderFailure ?? 'REJECT' },
    accessControl: {
      defaultAction: input.accessControl?.defaultAction ?? DEFAULT_ACCESS_CONTROL.defaultAction,
      rules: input.accessControl?.rules ?? DEFAULT_ACCESS_CONTROL.rules,
    },
    limits: { ...DEFAULT_GATEWAY_LIMITS, ...input.limits },
    certificates: {
      serverCertificateChain: optionalText(certificates.serverCertificateChain, 'certificates.serverCertificateChain'),
      serverPrivateKey: optionalText(certificates.serverPrivateKey, 'certificates.serverPrivateKey'),
      deviceRootCertificates: optionalText(certificates.deviceRootCertificates, 'certificates.deviceRootCertificates'),
      trustedCertificate: optionalText(certificates.trustedCertificate, 'certificates.trustedCertificate'),
    },
  };
}

export interface DraftUpdate {
  draft: GatewayDraft;
  /** Certificate fields given in this edit: their dates are checked strictly. */
  certificateFieldsGiven: Set<CertificateField>;
}

/** Merges an edit into the current gateway (see `GatewayUpdateInput` for the merge rules). */
export function draftFromUpdate(current: GatewayDraft, patch: GatewayUpdateInput): DraftUpdate {
  const authType = patch.authType ?? current.authType;
  let thirdParty = patch.thirdParty !== undefined ? thirdPartyFromInput(patch.thirdParty) : current.thirdParty;
  // The signing secret is write-only, so an edit that does not mention it keeps it (null removes it).
  if (thirdParty?.provider === 'HTTPS' && patch.thirdParty?.provider === 'HTTPS' && patch.thirdParty.signingSecret === undefined
    && current.thirdParty?.provider === 'HTTPS') {
    thirdParty = { ...thirdParty, signingSecret: current.thirdParty.signingSecret };
  }
  // Switching to one-party verification drops the provider; naming one in the same edit is a mistake.
  if (authType === 'ONE_PARTY' && patch.thirdParty === undefined) thirdParty = null;

  const certificateFieldsGiven = new Set<CertificateField>();
  const certificates = { ...current.certificates };
  for (const field of ['serverCertificateChain', 'serverPrivateKey', 'deviceRootCertificates', 'trustedCertificate'] as const) {
    const given = patch.certificates?.[field];
    if (given === undefined) continue;
    certificateFieldsGiven.add(field);
    certificates[field] = optionalText(given, `certificates.${field}`);
  }

  const draft: GatewayDraft = {
    name: patch.name ?? current.name,
    protocol: patch.protocol ?? current.protocol,
    port: patch.port ?? current.port,
    dataParsing: {
      enabled: patch.dataParsing?.enabled ?? current.dataParsing.enabled,
      script: patch.dataParsing?.script !== undefined ? optionalText(patch.dataParsing.script, 'dataParsing.script') : current.dataParsing.script,
    },
    authType,
    thirdParty,
    x509: { enabled: patch.x509?.enabled ?? current.x509.enabled },
    ocsp: {
      mode: patch.ocsp?.mode ?? current.ocsp.mode,
      onResponderFailure: patch.ocsp?.onResponderFailure ?? current.ocsp.onResponderFailure,
    },
    accessControl: {
      defaultAction: patch.accessControl?.defaultAction ?? current.accessControl.defaultAction,
      rules: patch.accessControl?.rules ?? current.accessControl.rules,
    },
    // Limits merge key by key: an edit names the ones it changes (null = no limit).
    limits: { ...current.limits, ...patch.limits },
    certificates,
  };
  return { draft, certificateFieldsGiven };
}

/** Which settings differ; compare checked (normalised) drafts, so re-sent identical PEM is no change. */
export function changedFields(before: GatewayDraft, after: GatewayDraft): GatewayChange[] {
  return (['name', 'port', 'dataParsing', 'authType', 'thirdParty', 'x509', 'ocsp', 'accessControl', 'limits', 'certificates'] as const)
    .filter((key) => JSON.stringify(before[key]) !== JSON.stringify(after[key]));
}

export interface DraftCheckContext {
  now: Date;
  /** Certificate fields whose dates are errors rather than warnings (all of them on create). */
  strictCertificateFields: ReadonlySet<CertificateField>;
  /** The HTTPS provider (and its CA certificate) is being saved now. */
  strictThirdPartyCa: boolean;
  functionExists(name: string): Promise<boolean>;
}

export interface CheckedDraft {
  /** The draft with certificates and key normalised (PEM blocks only, key as PKCS#8). */
  draft: GatewayDraft & {
    protocol: GatewayProtocol;
    certificates: DraftCertificates & { serverCertificateChain: string; serverPrivateKey: string };
  };
  warnings: Warning[];
}

/** Every rule, in the order a form shows the fields. Throws the first violation. */
export async function checkDraft(draft: GatewayDraft, context: DraftCheckContext): Promise<CheckedDraft> {
  checkName(draft.name);
  if (draft.protocol !== 'MQTT') fail('GW_ERR_PROTOCOL_UNSUPPORTED', 'protocol');
  checkPort(draft.port);
  checkDataParsing(draft);
  expectOneOf(draft.authType, AUTH_TYPES, 'authType');
  await checkThirdParty(draft, context);
  expectBoolean(draft.x509.enabled, 'x509.enabled');
  checkOcsp(draft);
  const accessControl = checkAccessControl(draft.accessControl);
  const limits = checkGatewayLimits(draft.limits);
  return checkCertificateSet({ ...draft, accessControl, limits }, context);
}

export function checkName(name: unknown): void {
  if (typeof name !== 'string' || !GATEWAY_NAME.test(name)) fail('GW_ERR_GATEWAY_NAME_INVALID', 'name');
}

export function checkPort(port: unknown): void {
  if (typeof port !== 'number' || !Number.isInteger(port) || port < MIN_PORT || port > MAX_PORT) {
    fail('GW_ERR_PORT_OUT_OF_RANGE', 'port');
  }
}

function checkDataParsing(draft: GatewayDraft): void {
  expectBoolean(draft.dataParsing.enabled, 'dataParsing.enabled');
  const { script } = draft.dataParsing;
  if (draft.dataParsing.enabled && script === null) {
    fail('GW_ERR_SCRIPT_REQUIRED', 'dataParsing.script', 'dataParsing.script is required when data parsing is enabled');
  }
  if (script === null) return;
  if (script.length > MAX_SCRIPT_LENGTH) fail('GW_ERR_VALIDATION', 'dataParsing.script', `dataParsing.script is longer than ${MAX_SCRIPT_LENGTH} characters`);
  const syntaxError = findSyntaxError(script, 'transformPayload.js');
  if (syntaxError !== null) fail('GW_ERR_SCRIPT_SYNTAX', 'dataParsing.script', `dataParsing.script: ${syntaxError}`);
}

async function checkThirdParty(draft: GatewayDraft, context: DraftCheckContext): Promise<void> {
  const { thirdParty } = draft;
  if (draft.authType === 'ONE_PARTY') {
    if (thirdParty !== null) fail('GW_ERR_VALIDATION', 'thirdParty', 'thirdParty is only for authType THIRD_PARTY');
    return;
  }
  if (thirdParty === null) fail('GW_ERR_PROVIDER_REQUIRED', 'thirdParty');
  if (thirdParty.provider === 'FUNCTION') {
    if (typeof thirdParty.functionName !== 'string' || thirdParty.functionName === '') {
      fail('GW_ERR_FUNCTION_UNKNOWN', 'thirdParty.functionName', 'thirdParty.functionName is required');
    }
    if (!await context.functionExists(thirdParty.functionName)) {
      fail('GW_ERR_FUNCTION_UNKNOWN', 'thirdParty.functionName', `no function named "${thirdParty.functionName}"`);
    }
    return;
  }
  checkHttpsUrl(thirdParty.url);
  checkParams(thirdParty.params);
  checkInteger(thirdParty.timeoutMs, HTTPS_TIMEOUT_MS, 'thirdParty.timeoutMs');
  checkInteger(thirdParty.acceptCacheTtlSeconds, ACCEPT_CACHE_TTL_SECONDS, 'thirdParty.acceptCacheTtlSeconds');
  checkInteger(thirdParty.rejectCacheTtlSeconds, REJECT_CACHE_TTL_SECONDS, 'thirdParty.rejectCacheTtlSeconds');
  const secret = thirdParty.signingSecret;
  if (secret !== null && (typeof secret !== 'string' || secret.length < SIGNING_SECRET_LENGTH.min || secret.length > SIGNING_SECRET_LENGTH.max)) {
    fail('GW_ERR_VALIDATION', 'thirdParty.signingSecret',
      `thirdParty.signingSecret must be ${SIGNING_SECRET_LENGTH.min}-${SIGNING_SECRET_LENGTH.max} characters (or null for unsigned calls)`);
  }
}

function checkInteger(value: unknown, range: { min: number; max: number }, field: string): void {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < range.min || value > range.max) {
    fail('GW_ERR_VALIDATION', field, `${field} must be an integer from ${range.min} to ${range.max}`);
  }
}

function checkHttpsUrl(url: unknown): void {
  if (typeof url !== 'string' || url.length > 2048) fail('GW_ERR_URL_INVALID', 'thirdParty.url');
  if (!/^https:\/\//i.test(url)) fail('GW_ERR_URL_NOT_HTTPS', 'thirdParty.url');
  try {
    new URL(url);
  } catch {
    fail('GW_ERR_URL_INVALID', 'thirdParty.url', `thirdParty.url is not a valid URL: ${url}`);
  }
}

function checkParams(params: HttpsParam[]): void {
  if (!Array.isArray(params)) fail('GW_ERR_VALIDATION', 'thirdParty.params', 'thirdParty.params must be an array');
  if (params.length > MAX_PARAMS) fail('GW_ERR_TOO_MANY_PARAMS', 'thirdParty.params', `thirdParty.params has ${params.length} entries; at most ${MAX_PARAMS}`);
  const seen = new Set<string>();
  params.forEach((param, i) => {
    const at = `thirdParty.params[${i}]`;
    if (typeof param?.key !== 'string' || param.key === '') fail('GW_ERR_PARAM_KEY_INVALID', `${at}.key`, `${at}.key must be a non-empty string`);
    if (param.key.length > MAX_PARAM_LENGTH) fail('GW_ERR_PARAM_TOO_LONG', `${at}.key`, `${at}.key is longer than ${MAX_PARAM_LENGTH} characters`);
    if (RESERVED_PARAM_KEYS.includes(param.key)) fail('GW_ERR_PARAM_KEY_INVALID', `${at}.key`, `${at}.key "${param.key}" is a field of the verification call itself`);
    if (seen.has(param.key)) fail('GW_ERR_PARAM_KEY_INVALID', `${at}.key`, `${at}.key "${param.key}" is repeated`);
    seen.add(param.key);
    if (typeof param.value !== 'string') fail('GW_ERR_VALIDATION', `${at}.value`, `${at}.value must be a string`);
    if (param.value.length > MAX_PARAM_LENGTH) fail('GW_ERR_PARAM_TOO_LONG', `${at}.value`, `${at}.value is longer than ${MAX_PARAM_LENGTH} characters`);
    const parsed = parseTemplate(param.value);
    if (!parsed.ok) fail('GW_ERR_TEMPLATE_VARIABLE_UNKNOWN', `${at}.value`, `${at}.value: ${parsed.message}`);
  });
}

function checkOcsp(draft: GatewayDraft): void {
  const mode = expectOneOf(draft.ocsp.mode, OCSP_MODES, 'ocsp.mode');
  expectOneOf(draft.ocsp.onResponderFailure, OCSP_FAILURE_POLICIES, 'ocsp.onResponderFailure');
  if ((mode === 'CLIENT' || mode === 'SERVER_AND_CLIENT') && !draft.x509.enabled) {
    fail('GW_ERR_OCSP_NEEDS_X509', 'ocsp.mode', `ocsp.mode ${mode} checks client certificates and needs x509.enabled`);
  }
}

function checkCertificateSet(draft: GatewayDraft, context: DraftCheckContext): CheckedDraft {
  const { certificates } = draft;
  const dates = (field: CertificateField): DateCheck => ({ now: context.now, strict: context.strictCertificateFields.has(field) });
  const field = (name: CertificateField): string => `certificates.${name}`;

  const chainPem = certificates.serverCertificateChain;
  const keyPem = certificates.serverPrivateKey;
  if (chainPem === null) fail('GW_ERR_CERT_REQUIRED', field('serverCertificateChain'), 'certificates.serverCertificateChain is required: devices connect over TLS only');
  if (keyPem === null) fail('GW_ERR_CERT_REQUIRED', field('serverPrivateKey'), 'certificates.serverPrivateKey is required with the server certificate');
  if (draft.x509.enabled && certificates.deviceRootCertificates === null) {
    fail('GW_ERR_CERT_REQUIRED', field('deviceRootCertificates'), 'certificates.deviceRootCertificates is required with X.509 device verification');
  }
  const serverOcsp = draft.ocsp.mode === 'SERVER' || draft.ocsp.mode === 'SERVER_AND_CLIENT';
  if (serverOcsp && certificates.trustedCertificate === null) {
    fail('GW_ERR_CERT_REQUIRED', field('trustedCertificate'), `certificates.trustedCertificate (the server root) is required with ocsp.mode ${draft.ocsp.mode}`);
  }

  const chainDates = dates('serverCertificateChain');
  const server = checkServerChain(chainPem, keyPem, {
    now: context.now,
    strict: chainDates.strict || context.strictCertificateFields.has('serverPrivateKey'),
  }, { chain: field('serverCertificateChain'), key: field('serverPrivateKey') });
  const warnings = [...server.warnings];

  let deviceRootCertificates: string | null = null;
  if (certificates.deviceRootCertificates !== null) {
    const roots = checkCaCertificates(certificates.deviceRootCertificates, field('deviceRootCertificates'), dates('deviceRootCertificates'));
    deviceRootCertificates = roots.parsed.pem;
    warnings.push(...roots.warnings);
  }
  let trustedCertificate: string | null = null;
  let trustedParsed: ParsedCertificates | null = null;
  if (certificates.trustedCertificate !== null) {
    const trusted = checkCertificates(certificates.trustedCertificate, field('trustedCertificate'), dates('trustedCertificate'));
    trustedCertificate = trusted.parsed.pem;
    trustedParsed = trusted.parsed;
    warnings.push(...trusted.warnings, ...trustedCertificateWarnings(trusted.parsed, server.chain, field('trustedCertificate')));
  }
  warnings.push(...serverChainWarnings(server.chain, field('serverCertificateChain'), trustedParsed));
  let thirdParty = draft.thirdParty;
  if (thirdParty?.provider === 'HTTPS' && thirdParty.caCertificate !== null) {
    const ca = checkCertificates(thirdParty.caCertificate, 'thirdParty.caCertificate', { now: context.now, strict: context.strictThirdPartyCa });
    thirdParty = { ...thirdParty, caCertificate: ca.parsed.pem };
    warnings.push(...ca.warnings);
  }

  return {
    draft: {
      ...draft,
      protocol: 'MQTT',
      thirdParty,
      certificates: {
        serverCertificateChain: server.chain.pem,
        serverPrivateKey: server.privateKeyPem,
        deviceRootCertificates,
        trustedCertificate,
      },
    },
    warnings,
  };
}
