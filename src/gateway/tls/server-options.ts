/** The TLS settings of a gateway listener, derived from its configuration. */
import type { SecureContextOptions } from 'node:tls';
import type { GatewayRuntimeConfig } from '../../registry/types.ts';

export interface GatewayTlsOptions extends SecureContextOptions {
  requestCert: boolean;
  rejectUnauthorized: boolean;
}

export function tlsOptionsFor(config: GatewayRuntimeConfig): GatewayTlsOptions {
  const x509 = config.x509.enabled;
  return {
    cert: config.certificates.serverCertificateChain,
    key: config.certificates.serverPrivateKey,
    minVersion: 'TLSv1.2',
    // With X.509 device verification the handshake asks for a client certificate and OpenSSL verifies
    // it against `ca`; the listener reads the verdict right after the handshake and closes refused
    // sockets itself (x509-identity.ts): Node's own rejection would close them without a reason to
    // log, and cannot accept a bundle of intermediates only (no partial-chain flag).
    requestCert: x509,
    rejectUnauthorized: false,
    ...(x509 && config.certificates.deviceRootCertificates !== null ? { ca: config.certificates.deviceRootCertificates } : {}),
  };
}

/** Did anything that the TLS context is built from change? */
export function tlsInputsDiffer(a: GatewayRuntimeConfig, b: GatewayRuntimeConfig): boolean {
  return a.certificates.serverCertificateChain !== b.certificates.serverCertificateChain
    || a.certificates.serverPrivateKey !== b.certificates.serverPrivateKey
    || a.certificates.deviceRootCertificates !== b.certificates.deviceRootCertificates
    || a.x509.enabled !== b.x509.enabled;
}

/** Did anything the OCSP stapling or client checks are built from change? (The failure policy is read per check.) */
export function ocspInputsDiffer(a: GatewayRuntimeConfig, b: GatewayRuntimeConfig): boolean {
  return tlsInputsDiffer(a, b)
    || a.certificates.trustedCertificate !== b.certificates.trustedCertificate
    || a.ocsp.mode !== b.ocsp.mode;
}
