/**
 * Warnings of a stored gateway, returned with it on every read (not only by the save that first found
 * them): a stored certificate ages into "expires in 12 days" without anyone saving anything. Computed
 * from the stored PEM with the save's own checks, never strict (nothing here blocks a gateway), and kept
 * per PEM so a list of gateways does not parse every certificate on every read.
 */
import {
  checkCertificates, parseCertificates, serverChainDateWarnings, serverChainWarnings, trustedCertificateWarnings, type ParsedCertificates,
} from './certificates.ts';
import type { GatewayOcspState } from './ports.ts';
import type { PublicCertificates, Warning } from './types.ts';

const PARSED_CACHE_LIMIT = 256;
const parsedCache = new Map<string, ParsedCertificates | null>();

function parsed(pem: string, field: string): ParsedCertificates | null {
  let hit = parsedCache.get(pem);
  if (hit === undefined) {
    try {
      hit = parseCertificates(pem, field);
    } catch {
      hit = null; // stored PEM was checked when saved; one that no longer parses warns nothing rather than failing a read
    }
    if (parsedCache.size >= PARSED_CACHE_LIMIT) parsedCache.clear();
    parsedCache.set(pem, hit);
  }
  return hit;
}

function dateWarnings(pem: string | null, field: string, now: Date): Warning[] {
  if (pem === null || parsed(pem, field) === null) return [];
  return checkCertificates(pem, field, { now, strict: false }).warnings;
}

export function storedCertificateWarnings(certificates: PublicCertificates, now: Date): Warning[] {
  const chainField = 'certificates.serverCertificateChain';
  const trustedField = 'certificates.trustedCertificate';
  const chain = parsed(certificates.serverCertificateChain, chainField);
  const trusted = certificates.trustedCertificate === null ? null : parsed(certificates.trustedCertificate, trustedField);
  const warnings = [
    ...(chain === null ? [] : serverChainDateWarnings(chain, chainField, { now, strict: false })),
    ...dateWarnings(certificates.deviceRootCertificates, 'certificates.deviceRootCertificates', now),
    ...dateWarnings(certificates.trustedCertificate, trustedField, now),
  ];
  if (chain !== null) {
    if (trusted !== null) warnings.push(...trustedCertificateWarnings(trusted, chain, trustedField));
    warnings.push(...serverChainWarnings(chain, chainField, trusted));
  }
  return warnings;
}

/** The same finding reported twice (by the save and by the stored state) is listed once. */
export function uniqueWarnings(warnings: readonly Warning[]): Warning[] {
  const seen = new Set<string>();
  return warnings.filter((w) => {
    const key = `${w.code}\u0000${w.field}\u0000${w.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/**
 * What only traffic reveals, from a running gateway's certificate checks (its runtime state, or under
 * GATEHOUSE_WORKERS the machine's merged state): device certificates that named no OCSP responder.
 */
export function ocspStateWarnings(ocsp: GatewayOcspState): Warning[] {
  const missing = ocsp.client?.responderErrors.no_responder_url ?? 0;
  if (ocsp.client === null || missing === 0) return [];
  const outcome = ocsp.client.onResponderFailure === 'REJECT' ? 'were refused (CONNACK server unavailable)' : 'were let in unchecked';
  return [{
    code: 'GW_WARN_OCSP_NO_RESPONDER',
    message: `client OCSP is on (ocsp.mode ${ocsp.mode}) but ${missing} device certificate check(s) found no OCSP responder in the certificate `
      + `(Authority Information Access); those devices ${outcome}. Issue device certificates that name a responder, or turn client OCSP off`,
    field: 'ocsp.mode',
  }];
}
