import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { GatehouseError } from './errors.ts';

/** What a self-signed server certificate is for: the names and addresses clients will connect to. */
export interface SelfSignedOptions {
  /** DNS names (a leading `*.` wildcard is allowed) and IPv4/IPv6 addresses; the first is the default CN. */
  hosts: string[];
  /** Validity in days from now, 1 to 825 (the CA/Browser Forum ceiling). Default 365. */
  days?: number;
  /** Subject CN, at most 64 characters (RFC 5280 ub-common-name). Default: `hosts[0]`. */
  commonName?: string;
}

/** A certificate and its key, both PEM, ready for `tls.createServer({ cert, key })`. */
export interface SelfSignedCertificate {
  certificatePem: string;
  /** Unencrypted PKCS#8 (`-----BEGIN PRIVATE KEY-----`). */
  privateKeyPem: string;
  /** SHA-256 of the DER, uppercase hex pairs joined by colons, as node's `X509Certificate.fingerprint256`. */
  fingerprint256: string;
  /** ISO 8601, whole seconds: the exact notAfter written into the certificate. */
  notAfter: string;
}

const DEFAULT_DAYS = 365;
const MAX_DAYS = 825;
const MAX_COMMON_NAME = 64;
const MAX_DNS_NAME = 253;
// Clocks of clients that are a little behind must not see a certificate from the future.
const BACKDATE_MS = 5 * 60 * 1000;
const DAY_MS = 24 * 60 * 60 * 1000;
const ORGANIZATION = 'Gatehouse test certificate (not for production)';
const DNS_LABEL = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

const OID_COMMON_NAME = '2.5.4.3';
const OID_ORGANIZATION = '2.5.4.10';
const OID_BASIC_CONSTRAINTS = '2.5.29.19';
const OID_KEY_USAGE = '2.5.29.15';
const OID_EXT_KEY_USAGE = '2.5.29.37';
const OID_SUBJECT_ALT_NAME = '2.5.29.17';
const OID_SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const GENERAL_NAME_DNS = 2;
const GENERAL_NAME_IP = 7;

/**
 * A self-signed ECDSA P-256 server certificate for the given hosts, built in-process (WebCrypto and
 * pkijs, no openssl). For tests and first starts only: the subject says so.
 */
export async function createSelfSignedCertificate(options: SelfSignedOptions): Promise<SelfSignedCertificate> {
  const hosts = validateHosts(options.hosts);
  const days = validateDays(options.days);
  const commonName = validateCommonName(options.commonName, hosts[0] as string);

  const subtle = globalThis.crypto.subtle;
  const keys = await subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify']);

  // UTCTime and GeneralizedTime carry whole seconds; round so that `notAfter` is what the certificate says.
  const now = Math.floor(Date.now() / 1000) * 1000;
  const notBefore = new Date(now - BACKDATE_MS);
  const notAfter = new Date(now + days * DAY_MS);

  const certificate = new pkijs.Certificate();
  certificate.version = 2; // v3
  certificate.serialNumber = new asn1js.Integer({ valueHex: randomSerial() });
  certificate.subject = distinguishedName(commonName);
  certificate.issuer = distinguishedName(commonName);
  certificate.notBefore = certificateTime(notBefore);
  certificate.notAfter = certificateTime(notAfter);
  certificate.extensions = [
    extension(OID_BASIC_CONSTRAINTS, true, new pkijs.BasicConstraints({ cA: false }).toSchema()),
    extension(OID_KEY_USAGE, true, digitalSignatureOnly()),
    extension(OID_EXT_KEY_USAGE, false, new pkijs.ExtKeyUsage({ keyPurposes: [OID_SERVER_AUTH] }).toSchema()),
    extension(OID_SUBJECT_ALT_NAME, false, new pkijs.AltName({ altNames: hosts.map(generalName) }).toSchema()),
  ];
  await certificate.subjectPublicKeyInfo.importKey(keys.publicKey);
  await certificate.sign(keys.privateKey, 'SHA-256');

  const der = Buffer.from(certificate.toSchema(true).toBER());
  const pkcs8 = Buffer.from(await subtle.exportKey('pkcs8', keys.privateKey));
  return {
    certificatePem: pem('CERTIFICATE', der),
    privateKeyPem: pem('PRIVATE KEY', pkcs8),
    fingerprint256: createHash('sha256').update(der).digest('hex').toUpperCase().replace(/(..)(?!$)/g, '$1:'),
    notAfter: notAfter.toISOString(),
  };
}

function validateHosts(hosts: unknown): string[] {
  if (!Array.isArray(hosts) || hosts.length === 0) {
    throw new GatehouseError('GW_ERR_VALIDATION', 'hosts must list at least one DNS name or IP address', 'hosts');
  }
  for (const host of hosts as unknown[]) {
    if (typeof host !== 'string' || !(isIpAddress(host) || isDnsName(host))) {
      throw new GatehouseError('GW_ERR_VALIDATION',
        `host ${JSON.stringify(host)} is neither a DNS name (letters, digits, hyphens and dots, optionally starting `
        + `with "*.", at most ${MAX_DNS_NAME} characters) nor an IPv4 or IPv6 address`, 'hosts');
    }
  }
  return hosts as string[];
}

// node accepts IPv6 zone IDs (`fe80::1%eth0`); they mean nothing outside the host and have no SAN form.
function isIpAddress(host: string): boolean {
  return isIP(host) !== 0 && !host.includes('%');
}

// An all-digit last label is no top-level domain (RFC 3696 section 2): it is a mistyped IPv4 address.
function isDnsName(host: string): boolean {
  const labels = (host.startsWith('*.') ? host.slice(2) : host).split('.');
  return host.length <= MAX_DNS_NAME && labels.every((label) => DNS_LABEL.test(label)) && !/^\d+$/.test(labels.at(-1) as string);
}

function validateDays(days: number | undefined): number {
  if (days === undefined) return DEFAULT_DAYS;
  if (!Number.isInteger(days) || days < 1 || days > MAX_DAYS) {
    throw new GatehouseError('GW_ERR_VALIDATION', `days must be a whole number from 1 to ${MAX_DAYS}, got ${String(days)}`, 'days');
  }
  return days;
}

function validateCommonName(commonName: string | undefined, firstHost: string): string {
  const name = commonName ?? firstHost;
  if (typeof name !== 'string' || name.length === 0 || name.length > MAX_COMMON_NAME) {
    throw new GatehouseError('GW_ERR_VALIDATION', commonName === undefined
      ? `the first host is longer than ${MAX_COMMON_NAME} characters and cannot be the common name: give a commonName`
      : `commonName must be 1 to ${MAX_COMMON_NAME} characters`, 'commonName');
  }
  return name;
}

// 16 random bytes read as a positive DER INTEGER: the top bit clear (else negative) and the first
// byte non-zero (else the encoding is not minimal and strict parsers reject it).
function randomSerial(): ArrayBuffer {
  const bytes = globalThis.crypto.getRandomValues(new Uint8Array(16));
  bytes[0] = ((bytes[0] as number) & 0x7f) || 0x01;
  return bytes.buffer;
}

// One attribute per RDN (`O=…, CN=…`). pkijs 4 writes every `typesAndValues` entry into a single SET,
// a multi-valued RDN (`O=… + CN=…`), unless the name is parsed from DER, which it then writes back as is.
function distinguishedName(commonName: string): pkijs.RelativeDistinguishedNames {
  const rdn = (type: string, value: string): asn1js.Set => new asn1js.Set({
    value: [new pkijs.AttributeTypeAndValue({ type, value: new asn1js.Utf8String({ value }) }).toSchema()],
  });
  const name = new asn1js.Sequence({ value: [rdn(OID_ORGANIZATION, ORGANIZATION), rdn(OID_COMMON_NAME, commonName)] });
  return pkijs.RelativeDistinguishedNames.fromBER(name.toBER());
}

// RFC 5280 4.1.2.5: UTCTime up to 2049, GeneralizedTime from 2050.
function certificateTime(date: Date): pkijs.Time {
  return new pkijs.Time({ type: date.getUTCFullYear() < 2050 ? pkijs.TimeType.UTCTime : pkijs.TimeType.GeneralizedTime, value: date });
}

function extension(extnID: string, critical: boolean, value: asn1js.BaseBlock): pkijs.Extension {
  return new pkijs.Extension({ extnID, critical, extnValue: value.toBER() });
}

// KeyUsage is a named BIT STRING; digitalSignature is bit 0, so one byte 0x80 with 7 unused bits.
function digitalSignatureOnly(): asn1js.BitString {
  return new asn1js.BitString({ valueHex: new Uint8Array([0x80]).buffer, unusedBits: 7 });
}

function generalName(host: string): pkijs.GeneralName {
  const family = isIP(host);
  if (family === 0) return new pkijs.GeneralName({ type: GENERAL_NAME_DNS, value: host });
  const octets = family === 4 ? ipv4Bytes(host) : ipv6Bytes(host);
  return new pkijs.GeneralName({ type: GENERAL_NAME_IP, value: new asn1js.OctetString({ valueHex: new Uint8Array(octets).buffer }) });
}

function ipv4Bytes(ip: string): number[] {
  return ip.split('.').map(Number);
}

// `isIP` has already accepted the text, so this only expands `::` and a trailing dotted IPv4 part.
function ipv6Bytes(ip: string): number[] {
  const groups = (part: string): number[] => part === '' ? [] : part.split(':').flatMap((group) => {
    if (!group.includes('.')) return [parseInt(group, 16)];
    const [a, b, c, d] = ipv4Bytes(group) as [number, number, number, number];
    return [(a << 8) | b, (c << 8) | d];
  });
  const [head = '', tail] = ip.split('::');
  const left = groups(head);
  const right = tail === undefined ? [] : groups(tail);
  const all = [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
  return all.flatMap((group) => [group >> 8, group & 0xff]);
}

function pem(label: string, der: Buffer): string {
  const lines = der.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}
