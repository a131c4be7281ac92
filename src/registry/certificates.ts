/**
 * Checks of the PEM material an operator gives a gateway, with node:crypto only. Every failure is a
 * `GatehouseError` naming the field; findings that should not block a save (a certificate expiring
 * within 30 days) come back as warnings.
 */
import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { GatehouseError } from '../core/errors.ts';
import type { Warning } from './types.ts';

export const EXPIRY_WARNING_DAYS = 30;
const DAY_MS = 86_400_000;
const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----[\s\S]*?-----END \1-----/g;

/** Certificates of one field, in the order given, and the same PEM normalised (blocks only). */
export interface ParsedCertificates {
  certificates: X509Certificate[];
  pem: string;
}

export function parseCertificates(pem: string, field: string): ParsedCertificates {
  const certificates: X509Certificate[] = [];
  for (const match of pem.matchAll(PEM_BLOCK)) {
    const type = match[1];
    if (type !== 'CERTIFICATE') {
      // A private key pasted here would be stored in the clear and returned by the API: refuse it.
      throw new GatehouseError('GW_ERR_CERT_INVALID', `${field} must hold only CERTIFICATE blocks, found a ${type ?? 'unknown'} block`, field);
    }
    try {
      certificates.push(new X509Certificate(match[0]));
    } catch (error) {
      throw new GatehouseError('GW_ERR_CERT_INVALID', `certificate ${certificates.length + 1} of ${field} does not parse: ${(error as Error).message}`, field);
    }
  }
  if (certificates.length === 0) {
    throw new GatehouseError('GW_ERR_CERT_INVALID', `${field} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`, field);
  }
  return { certificates, pem: certificates.map((c) => c.toString()).join('') };
}

/** The key as KeyObject and as normalised PKCS#8 PEM. */
export function parsePrivateKey(pem: string, field: string): { key: KeyObject; pem: string } {
  // OpenSSL reports a missing passphrase as "interrupted or cancelled"; recognise the PEM itself instead.
  if (/-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type:\s*4,ENCRYPTED/.test(pem)) {
    throw new GatehouseError('GW_ERR_KEY_INVALID',
      `${field} is encrypted; give the key without a passphrase (openssl pkey -in key.pem -out plain.pem)`, field);
  }
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: pem, format: 'pem' });
  } catch (error) {
    throw new GatehouseError('GW_ERR_KEY_INVALID', `${field} does not parse as a PEM private key: ${(error as Error).message}`, field);
  }
  return { key, pem: key.export({ type: 'pkcs8', format: 'pem' }).toString() };
}

function describe(cert: X509Certificate): string {
  const cn = /(?:^|\n)CN=([^\n]*)/.exec(cert.subject)?.[1];
  return cn ? `"${cn}"` : `"${cert.subject.replace(/\n/g, ', ')}"`;
}

function issuedBy(child: X509Certificate, parent: X509Certificate): boolean {
  return child.checkIssued(parent) && child.verify(parent.publicKey);
}

/**
 * Expired and not-yet-valid are errors when `strict` (the field is being saved now), warnings
 * otherwise (a stored certificate that aged must not block an unrelated edit such as a rename).
 * Expiring within `EXPIRY_WARNING_DAYS` is always a warning. `label` says which certificate of the field.
 */
function checkDates(cert: X509Certificate, field: string, label: string, dates: DateCheck, warnings: Warning[]): void {
  const now = dates.now.getTime();
  const notBefore = new Date(cert.validFrom);
  const notAfter = new Date(cert.validTo);
  const problem = (code: 'GW_ERR_CERT_EXPIRED' | 'GW_ERR_CERT_NOT_YET_VALID', message: string): void => {
    if (dates.strict) throw new GatehouseError(code, message, field);
    warnings.push({ code: code.replace('GW_ERR_', 'GW_WARN_'), message, field });
  };
  if (notAfter.getTime() <= now) {
    problem('GW_ERR_CERT_EXPIRED', `${label} ${describe(cert)} of ${field} expired on ${notAfter.toISOString()}`);
  } else if (notBefore.getTime() > now) {
    problem('GW_ERR_CERT_NOT_YET_VALID', `${label} ${describe(cert)} of ${field} is valid only from ${notBefore.toISOString()}`);
  } else {
    const daysLeft = Math.floor((notAfter.getTime() - now) / DAY_MS);
    if (daysLeft < EXPIRY_WARNING_DAYS) {
      warnings.push({
        code: 'GW_WARN_CERT_EXPIRES_SOON',
        message: `${label} ${describe(cert)} of ${field} expires on ${notAfter.toISOString()} (in ${daysLeft} days)`,
        field,
      });
    }
  }
}

export interface DateCheck {
  now: Date;
  /** Out-of-date certificates are errors (true) or warnings (false). */
  strict: boolean;
}

export interface ServerChainCheck {
  chain: ParsedCertificates;
  /** Normalised PKCS#8 PEM. */
  privateKeyPem: string;
  warnings: Warning[];
}

/**
 * The server chain must be leaf first, each certificate issued by the next; the key must be the
 * leaf's. A chain given root first (the order the reference page warns about) is named as such.
 */
export function checkServerChain(chainPem: string, keyPem: string, dates: DateCheck, fields: { chain: string; key: string }): ServerChainCheck {
  const chain = parseCertificates(chainPem, fields.chain);
  const { key, pem: privateKeyPem } = parsePrivateKey(keyPem, fields.key);
  const certs = chain.certificates;
  const leaf = certs[0] as X509Certificate;
  const last = certs[certs.length - 1] as X509Certificate;

  for (let i = 0; i + 1 < certs.length; i++) {
    const child = certs[i] as X509Certificate;
    const parent = certs[i + 1] as X509Certificate;
    if (issuedBy(child, parent)) continue;
    const reversed = certs.every((cert, j) => j === 0 || issuedBy(cert, certs[j - 1] as X509Certificate));
    if (reversed) {
      throw new GatehouseError('GW_ERR_CERT_CHAIN_REVERSED',
        `${fields.chain} is in reverse order (issuer first); give the server certificate first, then its intermediates`, fields.chain);
    }
    throw new GatehouseError('GW_ERR_CERT_CHAIN_BROKEN',
      `certificate ${i + 1} ${describe(child)} of ${fields.chain} was not issued by certificate ${i + 2} ${describe(parent)}`, fields.chain);
  }

  if (!leaf.checkPrivateKey(key)) {
    if (certs.length > 1 && last.checkPrivateKey(key)) {
      throw new GatehouseError('GW_ERR_CERT_CHAIN_REVERSED',
        `${fields.key} matches the last certificate of ${fields.chain}: the chain is in reverse order; give the server certificate first`, fields.chain);
    }
    throw new GatehouseError('GW_ERR_KEY_MISMATCH', `${fields.key} does not match the server certificate ${describe(leaf)}`, fields.key);
  }

  return { chain, privateKeyPem, warnings: serverChainDateWarnings(chain, fields.chain, dates) };
}

/** The dates of a server chain's certificates, the leaf named as the server certificate. */
export function serverChainDateWarnings(chain: ParsedCertificates, field: string, dates: DateCheck): Warning[] {
  const warnings: Warning[] = [];
  chain.certificates.forEach((cert, i) => checkDates(cert, field, i === 0 ? 'server certificate' : `certificate ${i + 1}`, dates, warnings));
  return warnings;
}

/** CA certificates (device roots): each must be a CA and within its dates. */
export function checkCaCertificates(pem: string, field: string, dates: DateCheck): { parsed: ParsedCertificates; warnings: Warning[] } {
  const parsed = parseCertificates(pem, field);
  const warnings: Warning[] = [];
  parsed.certificates.forEach((cert, i) => {
    if (!cert.ca) {
      throw new GatehouseError('GW_ERR_CERT_NOT_CA', `certificate ${i + 1} ${describe(cert)} of ${field} is not a CA certificate (basicConstraints CA:TRUE)`, field);
    }
    checkDates(cert, field, `certificate ${i + 1}`, dates, warnings);
  });
  return { parsed, warnings };
}

/** Any certificates within their dates (trusted root, HTTPS service CA). */
export function checkCertificates(pem: string, field: string, dates: DateCheck): { parsed: ParsedCertificates; warnings: Warning[] } {
  const parsed = parseCertificates(pem, field);
  const warnings: Warning[] = [];
  parsed.certificates.forEach((cert, i) => checkDates(cert, field, `certificate ${i + 1}`, dates, warnings));
  return { parsed, warnings };
}

/**
 * OCSP responses for the server certificate are verified against the trusted certificate, so it
 * should be the root the chain leads to. Not an error: a cross-signed root can be legitimate.
 */
export function trustedCertificateWarnings(trusted: ParsedCertificates, chain: ParsedCertificates, field: string): Warning[] {
  const top = chain.certificates[chain.certificates.length - 1] as X509Certificate;
  const related = trusted.certificates.some((t) => t.fingerprint256 === top.fingerprint256 || issuedBy(top, t));
  return related ? [] : [{
    code: 'GW_WARN_TRUSTED_CERT_UNRELATED',
    message: `${field} did not issue the last certificate of the server chain ${describe(top)}; OCSP responses for it may not verify`,
    field,
  }];
}

/** Signed by its own key under its own name (checkIssued would also ask for keyCertSign, which test leaves lack). */
function selfSigned(cert: X509Certificate): boolean {
  return cert.subject === cert.issuer && cert.verify(cert.publicKey);
}

/**
 * A server chain of one certificate that is not self-signed, whose issuer is not the trusted certificate
 * either: the intermediates are most likely missing, and devices that hold only the root then fail with
 * "unable to verify the first certificate". A warning, not an error: a leaf issued straight by a root the
 * devices hold needs nothing more.
 */
export function serverChainWarnings(chain: ParsedCertificates, field: string, trusted: ParsedCertificates | null): Warning[] {
  const leaf = chain.certificates[0] as X509Certificate;
  if (chain.certificates.length > 1 || selfSigned(leaf)) return [];
  if (trusted?.certificates.some((t) => issuedBy(leaf, t)) === true) return [];
  const issuer = /(?:^|\n)CN=([^\n]*)/.exec(leaf.issuer)?.[1] ?? leaf.issuer.replace(/\n/g, ', ');
  return [{
    code: 'GW_WARN_SERVER_CHAIN_INCOMPLETE',
    message: `${field} holds only the server certificate ${describe(leaf)}, issued by "${issuer}", and not its issuer: devices that trust `
      + 'only the root fail to verify the server ("unable to verify the first certificate"). Add the intermediate certificates after '
      + 'the server certificate, unless that issuer is itself a root every device trusts',
    field,
  }];
}

/** Days until each certificate of a PEM field expires (negative once expired); `[]` for PEM that does not parse. */
export function daysLeft(pem: string, now: Date): number[] {
  try {
    return parseCertificates(pem, 'pem').certificates.map((c) => Math.floor((new Date(c.validTo).getTime() - now.getTime()) / DAY_MS));
  } catch {
    return [];
  }
}

/** CN, serial, issuer and fingerprint of a device certificate, as devices show it. */
export function describeDeviceCertificate(cert: X509Certificate): { cn: string | null; serial: string; issuer: string; fingerprint256: string } {
  return {
    cn: /(?:^|\n)CN=([^\n]*)/.exec(cert.subject)?.[1] ?? null,
    serial: cert.serialNumber,
    issuer: cert.issuer.replace(/\n/g, ', '),
    fingerprint256: cert.fingerprint256,
  };
}
