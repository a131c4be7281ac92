import assert from 'node:assert/strict';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import tls from 'node:tls';
import * as pkijs from 'pkijs';
import { GatehouseError } from './errors.ts';
import { createSelfSignedCertificate, type SelfSignedCertificate, type SelfSignedOptions } from './self-signed.ts';

const HOSTS = ['localhost', '127.0.0.1', '::1'];
const DAY_MS = 24 * 60 * 60 * 1000;

let generated: SelfSignedCertificate;
let startedAt: number;
let endedAt: number;
let server: tls.Server;
let port: number;

before(async () => {
  startedAt = Date.now();
  generated = await createSelfSignedCertificate({ hosts: HOSTS, days: 30 });
  endedAt = Date.now();
  server = tls.createServer({ cert: generated.certificatePem, key: generated.privateKeyPem }, (socket) => {
    socket.on('error', () => undefined); // clients hang up without reading; the handshake is what is tested
    socket.end('hello');
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  port = (server.address() as AddressInfo).port;
}, { timeout: 60_000 });

after(async () => {
  server.close();
  await once(server, 'close');
}, { timeout: 30_000 });

/** Connects to the test server trusting only the generated certificate; resolves once the handshake is done. */
async function handshake(options: tls.ConnectionOptions): Promise<tls.TLSSocket> {
  const socket = tls.connect({ host: '127.0.0.1', port, ca: generated.certificatePem, ...options });
  try {
    await once(socket, 'secureConnect');
    return socket;
  } catch (error) {
    socket.destroy();
    throw error;
  }
}

test('subjectAltName holds the DNS name, the IPv4 and the IPv6 address', { timeout: 5_000 }, () => {
  const x509 = new X509Certificate(generated.certificatePem);
  const altNames = (x509.subjectAltName ?? '').split(', ');
  assert.ok(altNames.includes('DNS:localhost'), x509.subjectAltName);
  assert.ok(altNames.includes('IP Address:127.0.0.1'), x509.subjectAltName);
  assert.ok(altNames.includes('IP Address:0:0:0:0:0:0:0:1'), x509.subjectAltName);
  assert.equal(altNames.length, 3);
  assert.equal(x509.checkHost('localhost'), 'localhost');
  assert.equal(x509.checkIP('127.0.0.1'), '127.0.0.1');
  assert.equal(x509.checkIP('::1'), '::1');
});

test('subject and issuer are the same two RDNs: O says not for production, CN is the first host', { timeout: 5_000 }, () => {
  const x509 = new X509Certificate(generated.certificatePem);
  assert.equal(x509.subject, 'O=Gatehouse test certificate (not for production)\nCN=localhost');
  assert.equal(x509.issuer, x509.subject);
});

test('the private key matches the certificate and the certificate verifies with its own public key', { timeout: 5_000 }, () => {
  const x509 = new X509Certificate(generated.certificatePem);
  assert.match(generated.privateKeyPem, /^-----BEGIN PRIVATE KEY-----\n[A-Za-z0-9+/=\n]+\n-----END PRIVATE KEY-----\n$/);
  const privateKey = createPrivateKey(generated.privateKeyPem);
  assert.equal(privateKey.asymmetricKeyType, 'ec');
  assert.equal(privateKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
  assert.equal(x509.checkPrivateKey(privateKey), true);
  assert.equal(x509.verify(x509.publicKey), true);
  assert.equal(generated.fingerprint256, x509.fingerprint256);
});

test('validity runs from five minutes ago to now plus the given days', { timeout: 5_000 }, () => {
  const x509 = new X509Certificate(generated.certificatePem);
  const notBefore = Date.parse(x509.validFrom);
  const notAfter = Date.parse(x509.validTo);
  // "Now" is some moment while the certificate was made (between startedAt and endedAt: a busy machine
  // can take a second or more), and the certificate holds whole seconds: one second of rounding each way.
  const within = (t: number, offset: number): boolean => t >= startedAt + offset - 1000 && t <= endedAt + offset + 1000;
  assert.ok(within(notBefore, -5 * 60 * 1000), `${x509.validFrom}: not five minutes before ${new Date(startedAt).toISOString()}…${new Date(endedAt).toISOString()}`);
  assert.ok(within(notAfter, 30 * DAY_MS), `${x509.validTo}: not 30 days after ${new Date(startedAt).toISOString()}…${new Date(endedAt).toISOString()}`);
  assert.equal(generated.notAfter, new Date(notAfter).toISOString());
});

test('v3, ecdsa-with-SHA256, positive 16-byte serial and the four extensions with their criticality', { timeout: 5_000 }, async () => {
  const x509 = new X509Certificate(generated.certificatePem);
  const certificate = pkijs.Certificate.fromBER(new Uint8Array(x509.raw));
  assert.equal(certificate.version, 2);
  assert.equal(certificate.signatureAlgorithm.algorithmId, '1.2.840.10045.4.3.2');
  assert.match(x509.serialNumber, /^[0-7][0-9A-F]{31}$/);
  const extensions = new Map((certificate.extensions ?? []).map((e) => [e.extnID, e]));
  assert.deepEqual([...extensions.keys()].sort(), ['2.5.29.15', '2.5.29.17', '2.5.29.19', '2.5.29.37']);

  const basicConstraints = extensions.get('2.5.29.19');
  assert.equal(basicConstraints?.critical, true);
  assert.equal((basicConstraints?.parsedValue as pkijs.BasicConstraints).cA, false);
  assert.equal(x509.ca, false);

  const keyUsage = extensions.get('2.5.29.15');
  assert.ok(keyUsage);
  assert.equal(keyUsage.critical, true);
  assert.deepEqual([...keyUsage.extnValue.valueBlock.valueHexView], [0x03, 0x02, 0x07, 0x80]); // BIT STRING: digitalSignature only

  assert.equal(extensions.get('2.5.29.37')?.critical, false);
  assert.deepEqual(x509.keyUsage, ['1.3.6.1.5.5.7.3.1']); // node lists the extended key usage here: serverAuth
  assert.equal(extensions.get('2.5.29.17')?.critical, false);

  assert.equal(await certificate.verify(), true);
});

test('two certificates get different serials and keys', { timeout: 5_000 }, async () => {
  const other = await createSelfSignedCertificate({ hosts: ['localhost'] });
  assert.notEqual(new X509Certificate(other.certificatePem).serialNumber, new X509Certificate(generated.certificatePem).serialNumber);
  assert.notEqual(other.privateKeyPem, generated.privateKeyPem);
});

test('a TLS client that trusts the certificate completes a handshake for servername localhost', { timeout: 5_000 }, async () => {
  const socket = await handshake({ servername: 'localhost' });
  try {
    assert.equal(socket.authorized, true, String(socket.authorizationError));
    assert.equal(tls.checkServerIdentity('localhost', socket.getPeerCertificate()), undefined);
    socket.resume();
    await once(socket, 'end');
  } finally {
    socket.destroy();
  }
});

test('a TLS client connecting by IP address is checked against the IP SAN', { timeout: 5_000 }, async () => {
  const socket = await handshake({});
  try {
    assert.equal(socket.authorized, true, String(socket.authorizationError));
    assert.equal(tls.checkServerIdentity('127.0.0.1', socket.getPeerCertificate()), undefined);
    assert.equal(tls.checkServerIdentity('::1', socket.getPeerCertificate()), undefined);
  } finally {
    socket.destroy();
  }
});

test('a TLS client asking for a name the certificate does not hold is refused', { timeout: 5_000 }, async () => {
  await assert.rejects(handshake({ servername: 'example.com' }), { code: 'ERR_TLS_CERT_ALTNAME_INVALID' });
});

test('commonName, wildcard DNS names and other IPv6 forms', { timeout: 5_000 }, async () => {
  const hosts = ['*.example.com', 'gw-1.internal', '2001:db8::abcd:1', '::ffff:192.0.2.1', 'fe80::'];
  const result = await createSelfSignedCertificate({ hosts, commonName: 'Gatehouse dev', days: 1 });
  const x509 = new X509Certificate(result.certificatePem);
  assert.equal(x509.subject, 'O=Gatehouse test certificate (not for production)\nCN=Gatehouse dev');
  assert.equal(x509.checkHost('broker.example.com'), '*.example.com');
  assert.equal(x509.checkHost('gw-1.internal'), 'gw-1.internal');
  assert.equal(x509.checkIP('2001:db8:0:0:0:0:abcd:1'), '2001:db8:0:0:0:0:abcd:1');
  assert.equal(x509.checkIP('::ffff:192.0.2.1'), '::ffff:192.0.2.1');
  assert.equal(x509.checkIP('fe80::'), 'fe80::');
  assert.equal(x509.checkIP('::1'), undefined);
});

test('hosts that are neither a DNS name nor an IP address are refused with GW_ERR_VALIDATION', { timeout: 5_000 }, async () => {
  const bad: unknown[] = [
    'bad host', 'under_score.example', '-leading.example', 'trailing-.example', 'a..b', '.example', 'example.',
    'foo.*.example', '*', '*.', `${'a'.repeat(64)}.example`, `${'a.'.repeat(125)}abcd`, 'example.com:8883',
    'https://example.com', '999.0.0.1', '1.2.3', 'fe80::1%eth0', '[::1]', '', 42,
  ];
  for (const host of bad) {
    await assert.rejects(createSelfSignedCertificate({ hosts: ['localhost', host] } as SelfSignedOptions), (error: unknown) => {
      assert.ok(error instanceof GatehouseError, String(error));
      assert.equal(error.code, 'GW_ERR_VALIDATION');
      assert.equal(error.field, 'hosts');
      assert.ok(error.message.includes(JSON.stringify(host)), error.message);
      return true;
    }, JSON.stringify(host));
  }
  for (const hosts of [[], undefined, 'localhost']) {
    await assert.rejects(createSelfSignedCertificate({ hosts } as unknown as SelfSignedOptions),
      { code: 'GW_ERR_VALIDATION', field: 'hosts' }, JSON.stringify(hosts));
  }
});

test('a 253-character DNS name is accepted, days and commonName out of range are refused', { timeout: 5_000 }, async () => {
  const longest = `${'a.'.repeat(125)}abc`;
  assert.equal(longest.length, 253);
  await createSelfSignedCertificate({ hosts: ['localhost', longest], days: 825 });
  for (const days of [0, 826, 1.5, Number.NaN]) {
    await assert.rejects(createSelfSignedCertificate({ hosts: ['localhost'], days }), { code: 'GW_ERR_VALIDATION', field: 'days' }, String(days));
  }
  await assert.rejects(createSelfSignedCertificate({ hosts: ['localhost'], commonName: 'x'.repeat(65) }),
    { code: 'GW_ERR_VALIDATION', field: 'commonName' });
  await assert.rejects(createSelfSignedCertificate({ hosts: [`${'a'.repeat(60)}.example`] }),
    { code: 'GW_ERR_VALIDATION', field: 'commonName' });
});
