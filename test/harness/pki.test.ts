/**
 * Proves the certificate fixtures (`pki.ts`), the OCSP responder (`ocsp-responder.ts`) and the OCSP
 * client (`ocsp-client.ts`) that the TLS, X.509 and OCSP tests stand on.
 */
import assert from 'node:assert/strict';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { after, afterEach, before, describe, test } from 'node:test';
import { request } from 'undici';
import { OcspQueryError, ocspUrlOf, queryOcsp, readOcspResponse, type OcspQueryErrorCode } from './ocsp-client.ts';
import { startOcspResponder } from './ocsp-responder.ts';
import { createPki, getPki, issueDevice, revoke, type IssuedCert, type SharedPki } from './pki.ts';
import { openssl, OpensslError } from './pki-openssl.ts';

/** `openssl verify` against the root, with the intermediate as untrusted helper: `OK` or the error line. */
async function opensslVerify(pki: SharedPki, cert: IssuedCert): Promise<string> {
  try {
    const out = await openssl(['verify', '-CAfile', pki.root.certPath, '-untrusted', pki.intermediate.certPath, cert.certPath]);
    return out.trim().endsWith(': OK') ? 'OK' : out;
  } catch (error) {
    if (!(error instanceof OpensslError)) throw error;
    return /error \d+ at \d+ depth lookup: (.+)/.exec(error.message)?.[1] ?? error.message;
  }
}

async function rejectsWith(promise: Promise<unknown>, code: OcspQueryErrorCode): Promise<OcspQueryError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof OcspQueryError, `expected OcspQueryError, got ${(error as Error).stack ?? ''}`);
    assert.equal(error.code, code, error.message);
    return error;
  }
  assert.fail(`expected an OcspQueryError ${code}`);
}

/** Node reports `authorizationError` as a code string at run time, although typed as an Error. */
function reasonOf(error: unknown): string | undefined {
  if (error === undefined || error === null) return undefined;
  if (error instanceof Error) return (error as NodeJS.ErrnoException).code ?? error.message;
  return typeof error === 'string' ? error : JSON.stringify(error);
}

interface Handshake {
  authorized: boolean;
  authorizationError: string | undefined;
  peerSerial: string;
  stapled: Buffer | undefined;
}

/**
 * One TLS handshake on 127.0.0.1: a server with `pki.server`'s chain, asking for a client certificate
 * (verified against the CA bundle, not enforced), and a client trusting the root.
 */
async function handshake(
  pki: SharedPki,
  client: { cert?: IssuedCert; servername?: string; staple?: Buffer } = {},
): Promise<{ server: Handshake; client: Handshake }> {
  const server = tls.createServer({
    key: pki.server.keyPem,
    cert: pki.server.chainPem,
    ca: pki.caBundlePem,
    requestCert: true,
    rejectUnauthorized: false,
  });
  if (client.staple) {
    const staple = client.staple;
    server.on('OCSPRequest', (_cert, _issuer, done) => done(null, staple));
  }
  const serverSide = new Promise<Handshake>((resolve) => {
    server.once('secureConnection', (socket) => {
      resolve({
        authorized: socket.authorized,
        authorizationError: reasonOf(socket.authorizationError),
        peerSerial: socket.getPeerCertificate().serialNumber ?? '',
        stapled: undefined,
      });
      socket.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const { port } = server.address() as AddressInfo;
    const clientSide = await new Promise<Handshake>((resolve, reject) => {
      let stapled: Buffer | undefined;
      // `requestOCSP` is a TLSSocket option that tls.connect passes on; @types/node leaves it out.
      const options: tls.ConnectionOptions & { requestOCSP: boolean } = {
        host: '127.0.0.1',
        port,
        ca: pki.root.certPem,
        ...(client.servername ? { servername: client.servername } : {}),
        ...(client.cert ? { key: client.cert.keyPem, cert: client.cert.chainPem } : {}),
        requestOCSP: client.staple !== undefined,
      };
      const socket = tls.connect(options);
      socket.on('OCSPResponse', (response: Buffer) => { stapled = response; });
      socket.once('secureConnect', () => {
        resolve({
          authorized: socket.authorized,
          authorizationError: reasonOf(socket.authorizationError),
          peerSerial: socket.getPeerCertificate().serialNumber,
          stapled,
        });
        socket.end();
      });
      socket.once('error', reject);
    });
    return { server: await serverSide, client: clientSide };
  } finally {
    server.close();
  }
}

describe('test PKI fixtures', () => {
  let pki: SharedPki;
  before(async () => {
    pki = await getPki();
  }, { timeout: 60_000 });

  test('getPki() generates once per process and returns the same set', { timeout: 5_000 }, async () => {
    assert.equal(await getPki(), pki);
    assert.ok(existsSync(pki.intermediate.indexPath));
    assert.equal(pki.ocspUrl, pki.responder.url);
    assert.equal(new URL(pki.responder.url).hostname, '127.0.0.1');
  });

  test('every key is ECDSA P-256 and every leaf names the responder in its AIA extension', { timeout: 5_000 }, () => {
    const leaves = [pki.server, pki.serverRotated, pki.serverExpired, pki.serverNotYetValid, ...Object.values(pki.devices)];
    for (const cert of [pki.root, pki.intermediate, pki.rogue, pki.ocspSigner, ...leaves]) {
      assert.equal(new X509Certificate(cert.certPem).publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1', cert.certPath);
      assert.equal(createPrivateKey(cert.keyPem).asymmetricKeyDetails?.namedCurve, 'prime256v1', cert.keyPath);
    }
    for (const cert of leaves) assert.equal(ocspUrlOf(cert.certPem), pki.ocspUrl, cert.certPath);
  });

  test('the server, rotated server and good device chains verify with openssl verify', { timeout: 5_000 }, async () => {
    for (const cert of [pki.server, pki.serverRotated, pki.devices.good, pki.devices.revoked, pki.ocspSigner]) {
      assert.equal(await opensslVerify(pki, cert), 'OK', cert.certPath);
    }
  });

  test('expired, not-yet-valid, wrong-CA and self-signed certificates fail openssl verify', { timeout: 5_000 }, async () => {
    assert.equal(await opensslVerify(pki, pki.devices.expired), 'certificate has expired');
    assert.equal(await opensslVerify(pki, pki.serverExpired), 'certificate has expired');
    assert.equal(await opensslVerify(pki, pki.serverNotYetValid), 'certificate is not yet valid');
    assert.equal(await opensslVerify(pki, pki.devices.wrongCa), 'unable to get local issuer certificate');
    assert.equal(await opensslVerify(pki, pki.devices.selfSigned), 'self-signed certificate');
  });

  test('certificate details: names, pathlen, EKUs, serials, matching and mismatching keys', { timeout: 5_000 }, async () => {
    const server = new X509Certificate(pki.server.certPem);
    assert.equal(server.subjectAltName, 'DNS:localhost, IP Address:127.0.0.1');
    assert.ok(server.checkIssued(new X509Certificate(pki.intermediate.certPem)));
    assert.ok(server.checkPrivateKey(createPrivateKey(pki.server.keyPem)));
    assert.ok(!server.checkPrivateKey(createPrivateKey(pki.wrongServerKey.keyPem)));
    assert.notEqual(pki.serverRotated.serial, pki.server.serial);
    assert.ok(!server.checkPrivateKey(createPrivateKey(pki.serverRotated.keyPem)));
    assert.equal(pki.server.chainPem, pki.server.certPem + pki.intermediate.certPem);

    assert.match(await openssl(['x509', '-noout', '-ext', 'basicConstraints', '-in', pki.intermediate.certPath]), /CA:TRUE, pathlen:0/);
    assert.deepEqual(new X509Certificate(pki.ocspSigner.certPem).keyUsage, ['1.3.6.1.5.5.7.3.9']);
    assert.deepEqual(new X509Certificate(pki.devices.good.certPem).keyUsage, ['1.3.6.1.5.5.7.3.2']);
    assert.deepEqual(Object.fromEntries(Object.entries(pki.devices).map(([k, d]) => [k, d.cn])), {
      good: 'device-001', revoked: 'device-002', expired: 'device-003', wrongCa: 'device-001', selfSigned: 'device-001',
    });
    assert.ok(Date.parse(new X509Certificate(pki.devices.expired.certPem).validTo) < Date.now());
    assert.ok(Date.parse(new X509Certificate(pki.serverNotYetValid.certPem).validFrom) > Date.now());
    assert.equal(new X509Certificate(pki.devices.wrongCa.certPem).issuer, new X509Certificate(pki.rogue.certPem).subject);
  });
});

describe('OCSP through the responder', () => {
  let pki: SharedPki;
  before(async () => {
    pki = await getPki();
  }, { timeout: 60_000 });
  afterEach(() => pki.responder.reset(), { timeout: 30_000 });

  test('the good device is good and the revoked one revoked (keyCompromise), both verified', { timeout: 20_000 }, async () => {
    const good = await queryOcsp(pki.devices.good.certPem, pki.intermediate.certPem);
    assert.equal(good.status, 'good');
    assert.equal(good.verified, true, good.verifyError);
    assert.equal(good.nonce, 'matched');
    assert.equal(good.stale, false);
    assert.ok(good.nextUpdate && good.nextUpdate.getTime() > Date.now() + 4 * 60_000);
    assert.equal(new X509Certificate(good.responderCertsPem[0] ?? '').serialNumber, pki.ocspSigner.serial);

    const revoked = await queryOcsp(pki.devices.revoked.certPem, pki.intermediate.certPem);
    assert.equal(revoked.status, 'revoked');
    assert.equal(revoked.verified, true, revoked.verifyError);
    assert.equal(revoked.revocationReason, 1);
    assert.ok(revoked.revocationTime instanceof Date);
  });

  test('the server certificate is good, also by GET; another CA\'s certificate is unknown', { timeout: 15_000 }, async () => {
    assert.equal((await queryOcsp(pki.server.certPem, pki.intermediate.certPem, { method: 'GET' })).status, 'good');
    assert.equal((await queryOcsp(pki.devices.good.certPem, pki.intermediate.certPem, { hashAlgorithm: 'SHA-256' })).status, 'good');
    const wrongCa = await queryOcsp(pki.devices.wrongCa.certPem, pki.rogue.certPem);
    assert.equal(wrongCa.status, 'unknown');
  });

  test('revoke() shows on the very next request', { timeout: 5_000 }, async () => {
    const device = await issueDevice(pki, 'device-revoke-live');
    assert.equal(device.cn, 'device-revoke-live');
    assert.equal((await queryOcsp(device.certPem, pki.intermediate.certPem)).status, 'good');
    await revoke(pki, device, 'superseded');
    const after = await queryOcsp(device.certPem, pki.intermediate.certPem);
    assert.equal(after.status, 'revoked');
    assert.equal(after.revocationReason, 4);
    assert.equal(pki.responder.requestCount, 2);
    await assert.rejects(revoke(pki, device), /Already revoked/);
  });

  test('issueDevice() takes odd names, explicit dates and the rogue CA', { timeout: 5_000 }, async () => {
    const odd = await issueDevice(pki, 'dev/CN=admin+x', { days: 1 });
    assert.deepEqual({ ...new X509Certificate(odd.certPem).toLegacyObject().subject }, { CN: 'dev/CN=admin+x' });
    const expired = await issueDevice(pki, 'device-old', { startDate: new Date(Date.now() - 86_400_000 * 3), endDate: new Date(Date.now() - 86_400_000) });
    assert.ok(Date.parse(new X509Certificate(expired.certPem).validTo) < Date.now());
    const rogue = await issueDevice(pki, 'device-rogue', { issuer: 'rogue', ocspUrl: null });
    assert.equal(rogue.issuer, 'rogue');
    assert.equal(ocspUrlOf(rogue.certPem), undefined);
  });

  test('mode down: the connection drops without an answer', { timeout: 5_000 }, async () => {
    pki.responder.setMode('down');
    await rejectsWith(queryOcsp(pki.devices.good.certPem, pki.intermediate.certPem), 'network');
    assert.equal(pki.responder.requestCount, 1);
  });

  test('mode http-error: HTTP 503', { timeout: 5_000 }, async () => {
    pki.responder.setMode('http-error');
    const error = await rejectsWith(queryOcsp(pki.devices.good.certPem, pki.intermediate.certPem), 'http-status');
    assert.equal(error.httpStatus, 503);
  });

  test('mode try-later: OCSPResponse status tryLater (3)', { timeout: 5_000 }, async () => {
    pki.responder.setMode('try-later');
    const error = await rejectsWith(queryOcsp(pki.devices.good.certPem, pki.intermediate.certPem), 'response-status');
    assert.equal(error.responseStatus, 3);
  });

  test('mode slow: a short client timeout fires; a patient client gets the real answer', { timeout: 10_000 }, async () => {
    pki.responder.setMode('slow', { delayMs: 400 });
    await rejectsWith(queryOcsp(pki.devices.good.certPem, pki.intermediate.certPem, { timeoutMs: 100 }), 'timeout');
    const started = Date.now();
    const answer = await queryOcsp(pki.devices.revoked.certPem, pki.intermediate.certPem, { timeoutMs: 3000 });
    assert.ok(Date.now() - started >= 390);
    assert.equal(answer.status, 'revoked');
  });

  test('mode wrong-signer: a well-formed answer that does not verify', { timeout: 5_000 }, async () => {
    pki.responder.setMode('wrong-signer');
    const answer = await queryOcsp(pki.devices.good.certPem, pki.intermediate.certPem);
    assert.equal(answer.verified, false);
    assert.match(answer.verifyError ?? '', /chain/);
    assert.equal(new X509Certificate(answer.responderCertsPem[0] ?? '').serialNumber, pki.rogueOcspSigner.serial);
  });

  test('mode stale: a verified answer whose nextUpdate is an hour past', { timeout: 5_000 }, async () => {
    pki.responder.setMode('stale');
    const answer = await queryOcsp(pki.devices.revoked.certPem, pki.intermediate.certPem);
    assert.equal(answer.verified, true, answer.verifyError);
    assert.equal(answer.status, 'revoked');
    assert.equal(answer.stale, true);
    assert.equal(answer.nonce, 'matched');
    assert.ok(answer.nextUpdate && answer.nextUpdate.getTime() < Date.now() - 50 * 60_000);
  });

  test('mode garbage: HTTP 200 with bytes that are not DER', { timeout: 5_000 }, async () => {
    pki.responder.setMode('garbage');
    await rejectsWith(queryOcsp(pki.devices.good.certPem, pki.intermediate.certPem), 'malformed');
  });

  test('a request that is not OCSP gets malformedRequest (1); other methods 405', { timeout: 5_000 }, async () => {
    const junk = await request(pki.responder.url, { method: 'POST', body: 'junk' });
    assert.equal(junk.statusCode, 200);
    assert.deepEqual([...Buffer.from(await junk.body.arrayBuffer())], [0x30, 0x03, 0x0a, 0x01, 0x01]);
    const put = await request(pki.responder.url, { method: 'PUT', body: 'x' });
    assert.equal(put.statusCode, 405);
    await put.body.dump();
  });
});

describe('TLS with the fixtures', () => {
  let pki: SharedPki;
  before(async () => {
    pki = await getPki();
  }, { timeout: 60_000 });

  test('a client trusting the root handshakes with the server chain, by IP and by name', { timeout: 5_000 }, async () => {
    const byIp = await handshake(pki);
    assert.equal(byIp.client.authorized, true, byIp.client.authorizationError);
    assert.equal(byIp.client.peerSerial, pki.server.serial);
    const byName = await handshake(pki, { servername: 'localhost' });
    assert.equal(byName.client.authorized, true, byName.client.authorizationError);
  });

  test('device certificates: good is authorized; expired, wrong-CA and self-signed are not; revoked still is', { timeout: 5_000 }, async () => {
    const results = Object.fromEntries(await Promise.all(Object.entries(pki.devices).map(async ([name, cert]) => {
      const { server } = await handshake(pki, { cert });
      return [name, server.authorized ? 'authorized' : server.authorizationError] as const;
    })));
    assert.deepEqual(results, {
      good: 'authorized',
      // TLS never checks revocation: the gateway's OCSP step must catch this one.
      revoked: 'authorized',
      expired: 'CERT_HAS_EXPIRED',
      wrongCa: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
      selfSigned: 'DEPTH_ZERO_SELF_SIGNED_CERT',
    });
  });

  test('a stapled response from the responder reaches a client asking for OCSP and verifies', { timeout: 5_000 }, async () => {
    const fetched = await queryOcsp(pki.server.certPem, pki.intermediate.certPem, { nonce: false });
    const { client } = await handshake(pki, { staple: fetched.der });
    assert.ok(client.stapled, 'no OCSPResponse event');
    const stapled = await readOcspResponse(client.stapled, pki.server.certPem, pki.intermediate.certPem);
    assert.equal(stapled.status, 'good');
    assert.equal(stapled.verified, true, stapled.verifyError);
  });
});

describe('a private PKI with its own responder', () => {
  const cleanup: (() => Promise<void>)[] = [];
  after(async () => {
    for (const step of cleanup.reverse()) await step();
  }, { timeout: 30_000 });

  test('createPki() after startOcspResponder(): independent CAs, revocation, cleanup', { timeout: 10_000 }, async () => {
    const shared = await getPki();
    const responder = await startOcspResponder();
    cleanup.push(() => responder.close());
    const pki = await createPki({ ocspUrl: responder.url });
    cleanup.push(() => pki.dispose());
    responder.serve(pki.ocsp);

    assert.notEqual(pki.root.certPem, shared.root.certPem);
    assert.equal(ocspUrlOf(pki.devices.good.certPem), responder.url);
    await revoke(pki, 'good');
    assert.equal((await queryOcsp(pki.devices.good.certPem, pki.intermediate.certPem)).status, 'revoked');
    assert.equal((await queryOcsp(shared.devices.good.certPem, shared.intermediate.certPem)).status, 'good');

    await responder.close();
    await rejectsWith(queryOcsp(pki.devices.good.certPem, pki.intermediate.certPem, { timeoutMs: 1000 }), 'network');
    await pki.dispose();
    assert.equal(existsSync(pki.dir), false);
  });

  test('createPki({dir}) writes into the given directory and leaves it to the caller', { timeout: 5_000 }, async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'gatehouse-pki-test-'));
    cleanup.push(() => rm(dir, { recursive: true, force: true }));
    const pki = await createPki({ ocspUrl: 'http://127.0.0.1:9/', dir });
    assert.equal(pki.dir, dir);
    assert.ok(pki.server.certPath.startsWith(dir));
    await pki.dispose();
    assert.ok(existsSync(pki.server.certPath));
  });
});
