/**
 * Path validation in our code (src/gateway/tls/chain-verify.ts), used when a gateway's device root
 * bundle holds only intermediates (Node has no partial-chain flag), against the generated test PKI.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { verifyChain } from '../../src/gateway/tls/chain-verify.ts';
import { getPki, type SharedPki } from '../harness/pki.ts';

let pki: SharedPki;
let root: X509Certificate;
let intermediate: X509Certificate;
const x509 = (pem: string): X509Certificate => new X509Certificate(pem);

before(async () => {
  pki = await getPki();
  root = x509(pki.root.certPem);
  intermediate = x509(pki.intermediate.certPem);
}, { timeout: 60_000 });

test('an intermediate alone is a trust anchor; the issuer returned is the intermediate', { timeout: 5_000 }, () => {
  const verdict = verifyChain(x509(pki.devices.good.certPem), [], [intermediate]);
  assert.ok(verdict.ok);
  assert.equal(verdict.issuer.fingerprint256, intermediate.fingerprint256);
});

test('with the root as anchor the path goes through the intermediate the device presented', { timeout: 5_000 }, () => {
  const verdict = verifyChain(x509(pki.devices.good.certPem), [intermediate], [root]);
  assert.ok(verdict.ok);
  assert.equal(verdict.issuer.fingerprint256, intermediate.fingerprint256, 'the direct issuer, for OCSP');
  assert.deepEqual(verifyChain(x509(pki.devices.good.certPem), [], [root]), { ok: false, reason: 'unable_to_get_issuer_cert' });
});

test('expired, wrong-CA, self-signed and wrong-purpose certificates fail with their reason', { timeout: 5_000 }, () => {
  assert.deepEqual(verifyChain(x509(pki.devices.expired.certPem), [], [intermediate]), { ok: false, reason: 'cert_has_expired' });
  assert.deepEqual(verifyChain(x509(pki.devices.wrongCa.certPem), [], [intermediate]), { ok: false, reason: 'unable_to_get_issuer_cert' });
  assert.deepEqual(verifyChain(x509(pki.devices.selfSigned.certPem), [], [intermediate]), { ok: false, reason: 'depth_zero_self_signed_cert' });
  assert.deepEqual(verifyChain(x509(pki.server.certPem), [], [intermediate]), { ok: false, reason: 'invalid_purpose' }, 'EKU serverAuth only');
  assert.deepEqual(verifyChain(x509(pki.devices.good.certPem), [], [intermediate], Date.now() + 400 * 86_400_000), { ok: false, reason: 'cert_has_expired' });
});

test('a non-CA certificate presented as an intermediate does not make a path', { timeout: 5_000 }, () => {
  const verdict = verifyChain(x509(pki.devices.good.certPem), [x509(pki.devices.revoked.certPem)], [root]);
  assert.equal(verdict.ok, false);
});
