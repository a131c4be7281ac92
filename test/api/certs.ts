/**
 * Certificates for the API tests, from the shared test PKI (test/harness/pki.ts), plus the few cases
 * only these tests need: a chain given in reverse, one with a foreign issuer, a certificate that
 * expires within 30 days, an encrypted key.
 */
import path from 'node:path';
import { readFile } from 'node:fs/promises';
import { createPki, issueDevice, type Pki } from '../harness/pki.ts';
import { openssl } from '../harness/pki-openssl.ts';

export interface ApiCerts {
  pki: Pki;
  /** Leaf + intermediate, and its key: what a valid gateway presents. */
  chain: string;
  key: string;
  /** Another key and certificate for the same names (rotation). */
  rotatedChain: string;
  rotatedKey: string;
  reversedChain: string;
  /** The leaf followed by a CA that did not issue it. */
  brokenChain: string;
  wrongKey: string;
  encryptedKey: string;
  expiredChain: string;
  expiredKey: string;
  notYetValidChain: string;
  notYetValidKey: string;
  /** Valid for 10 more days. */
  expiringSoonChain: string;
  expiringSoonKey: string;
  /** Intermediate + root: device roots. */
  caBundle: string;
  root: string;
  /** A leaf certificate, which is no CA. */
  leafOnly: string;
  dispose(): Promise<void>;
}

let shared: Promise<ApiCerts> | undefined;

/** Generated once per test process (about a second). The OCSP URL is never contacted by these tests. */
export function getApiCerts(): Promise<ApiCerts> {
  shared ??= generate();
  return shared;
}

async function generate(): Promise<ApiCerts> {
  const pki = await createPki({ ocspUrl: 'http://127.0.0.1:9/ocsp' });
  const expiringSoon = await issueDevice(pki, 'localhost', { days: 10, ocspUrl: null });
  const encryptedKeyPath = path.join(pki.dir, 'server-encrypted.key');
  await openssl(['pkey', '-in', pki.server.keyPath, '-aes256', '-passout', 'pass:secret', '-out', encryptedKeyPath]);
  const encryptedKey = await readFile(encryptedKeyPath, 'utf8');
  return {
    pki,
    chain: pki.server.chainPem,
    key: pki.server.keyPem,
    rotatedChain: pki.serverRotated.chainPem,
    rotatedKey: pki.serverRotated.keyPem,
    reversedChain: pki.intermediate.certPem + pki.server.certPem,
    brokenChain: pki.server.certPem + pki.rogue.certPem,
    wrongKey: pki.wrongServerKey.keyPem,
    encryptedKey,
    expiredChain: pki.serverExpired.chainPem,
    expiredKey: pki.serverExpired.keyPem,
    notYetValidChain: pki.serverNotYetValid.chainPem,
    notYetValidKey: pki.serverNotYetValid.keyPem,
    expiringSoonChain: expiringSoon.chainPem,
    expiringSoonKey: expiringSoon.keyPem,
    caBundle: pki.caBundlePem,
    root: pki.root.certPem,
    leafOnly: pki.server.certPem,
    dispose: () => pki.dispose(),
  };
}
