/**
 * The device certificate of a TLS connection: verified (by OpenSSL during the handshake, or by
 * `chain-verify.ts` when the device root bundle holds only intermediates), and described by the facts
 * that travel with the connection — CN, serial, issuer, SHA-256 fingerprint.
 *
 * The listener runs with `requestCert: true, rejectUnauthorized: false` and calls this right after
 * the handshake, before a byte of MQTT is read, so every refusal is logged with its reason (Node's own
 * rejection closes the socket silently).
 */
import { X509Certificate } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import { describeDeviceCertificate } from '../../registry/certificates.ts';
import type { DeviceCertificateInfo } from '../../registry/types.ts';
import { issuedBy, verifyChain } from './chain-verify.ts';

/** A verified device certificate and its direct issuer (for OCSP). */
export interface DeviceCertificate {
  readonly leaf: X509Certificate;
  readonly issuer: X509Certificate;
  readonly info: DeviceCertificateInfo;
}

export type ClientCertificateVerdict =
  | { ok: true; certificate: DeviceCertificate }
  | { ok: false; reason: string; subject?: string };

/**
 * OpenSSL verify results that only mean "the bundle does not reach a self-signed root": with an
 * intermediate-only bundle our own path validation decides instead.
 */
const PARTIAL_CHAIN_ERRORS = new Set(['UNABLE_TO_GET_ISSUER_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE']);
const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;

/** The certificates of a PEM bundle (validated at save time, so nothing here should fail to parse). */
export function parsePemBundle(pem: string | null): X509Certificate[] {
  if (pem === null) return [];
  return [...pem.matchAll(PEM_CERT)].map((m) => new X509Certificate(m[0]));
}

/** The certificates the peer sent after its leaf (from the chain Node exposes), leaf excluded. */
function presentedChain(socket: TLSSocket): X509Certificate[] {
  const out: X509Certificate[] = [];
  let cert = socket.getPeerCertificate(true) as { raw?: Buffer; issuerCertificate?: unknown } | undefined;
  const seen = new Set<string>();
  while (cert?.raw !== undefined && out.length < 10) {
    const key = cert.raw.toString('base64');
    if (seen.has(key)) break;
    seen.add(key);
    out.push(new X509Certificate(cert.raw));
    cert = cert.issuerCertificate as typeof cert;
  }
  return out.slice(1);
}

export function verifyClientCertificate(socket: TLSSocket, anchors: readonly X509Certificate[], now = Date.now()): ClientCertificateVerdict {
  const leaf = socket.getPeerX509Certificate();
  if (leaf === undefined) return { ok: false, reason: 'no_client_certificate' };
  const subject = leaf.subject.replace(/\n/g, ', ');
  const presented = presentedChain(socket);
  let issuer: X509Certificate | undefined;
  if (socket.authorized) {
    issuer = [...presented, ...anchors].find((c) => issuedBy(leaf, c));
  } else {
    const error = String(socket.authorizationError ?? 'UNKNOWN');
    if (!PARTIAL_CHAIN_ERRORS.has(error)) return { ok: false, reason: error.toLowerCase(), subject };
    const verdict = verifyChain(leaf, presented, anchors, now);
    if (!verdict.ok) return { ok: false, reason: verdict.reason, subject };
    issuer = verdict.issuer;
  }
  if (issuer === undefined) return { ok: false, reason: 'unable_to_get_issuer_cert', subject };
  return { ok: true, certificate: { leaf, issuer, info: describeDeviceCertificate(leaf) } };
}
