/**
 * Certificate path validation in our code, for what OpenSSL through Node cannot do: a device root
 * bundle that holds only intermediates. OpenSSL would need X509_V_FLAG_PARTIAL_CHAIN, which Node does
 * not expose (research/libraries.md §5), so every certificate of the bundle is treated as a trust
 * anchor here (RFC 5280 §6.1: the anchor need not be self-signed).
 *
 * Checks per certificate on the path: issued-by (name and key identifiers) and signature, validity
 * period, CA flag on issuers; on the leaf, an extended key usage that allows client authentication.
 */
import type { X509Certificate } from 'node:crypto';

export type ChainVerdict =
  | { ok: true; issuer: X509Certificate }
  | { ok: false; reason: ChainFailure };

/** Lower-case forms of the OpenSSL verify error names, so logs read the same on both paths. */
export type ChainFailure =
  | 'cert_has_expired'
  | 'cert_not_yet_valid'
  | 'depth_zero_self_signed_cert'
  | 'unable_to_get_issuer_cert'
  | 'invalid_ca'
  | 'invalid_purpose'
  | 'chain_too_long';

const MAX_DEPTH = 8;
const CLIENT_AUTH_OID = '1.3.6.1.5.5.7.3.2';
const ANY_EKU_OID = '2.5.29.37.0';

/** Is `now` within the certificate's validity period? */
export function validityOf(cert: X509Certificate, now: number): 'ok' | 'cert_has_expired' | 'cert_not_yet_valid' {
  if (now < Date.parse(cert.validFrom)) return 'cert_not_yet_valid';
  if (now > Date.parse(cert.validTo)) return 'cert_has_expired';
  return 'ok';
}

/** Did `issuer` sign `cert` (names, key identifiers and the signature itself)? */
export function issuedBy(cert: X509Certificate, issuer: X509Certificate): boolean {
  try {
    return cert.checkIssued(issuer) && cert.verify(issuer.publicKey);
  } catch {
    return false;
  }
}

function verifiesWith(cert: X509Certificate, signer: X509Certificate): boolean {
  try {
    return cert.verify(signer.publicKey);
  } catch {
    return false;
  }
}

/**
 * Validates `leaf` up to one of `anchors`, through the `presented` certificates the peer sent.
 * Returns the leaf's direct issuer (for OCSP) when the path holds.
 */
export function verifyChain(leaf: X509Certificate, presented: readonly X509Certificate[], anchors: readonly X509Certificate[], now = Date.now()): ChainVerdict {
  const eku = leaf.keyUsage; // node:crypto names the extended key usage list `keyUsage`
  if (eku !== undefined && eku.length > 0 && !eku.includes(CLIENT_AUTH_OID) && !eku.includes(ANY_EKU_OID)) {
    return { ok: false, reason: 'invalid_purpose' };
  }
  let current = leaf;
  let issuer: X509Certificate | undefined;
  for (let depth = 0; depth < MAX_DEPTH; depth++) {
    const validity = validityOf(current, now);
    if (validity !== 'ok') return { ok: false, reason: validity };
    const anchor = anchors.find((a) => issuedBy(current, a));
    if (anchor !== undefined) {
      if (!anchor.ca) return { ok: false, reason: 'invalid_ca' };
      const anchorValidity = validityOf(anchor, now);
      if (anchorValidity !== 'ok') return { ok: false, reason: anchorValidity };
      return { ok: true, issuer: issuer ?? anchor };
    }
    const next = presented.find((p) => p !== current && !p.raw.equals(current.raw) && issuedBy(current, p));
    if (next === undefined) {
      // Not issuedBy(current, current): OpenSSL's check-issued wants keyCertSign, which a device's own key lacks.
      const selfSigned = current.subject === current.issuer && verifiesWith(current, current);
      return { ok: false, reason: depth === 0 && selfSigned ? 'depth_zero_self_signed_cert' : 'unable_to_get_issuer_cert' };
    }
    if (!next.ca) return { ok: false, reason: 'invalid_ca' };
    issuer ??= next;
    current = next;
  }
  return { ok: false, reason: 'chain_too_long' };
}
