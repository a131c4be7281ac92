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
    // With X.509 device verification the handshake asks for and verifies a client certificate.
    requestCert: x509,
    rejectUnauthorized: x509,
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
