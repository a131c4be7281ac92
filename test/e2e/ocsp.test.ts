/**
 * Issue 4, OCSP for device certificates end to end: a gateway created over HTTP with X.509 and OCSP
 * mode CLIENT, real MQTT.js clients over TLS presenting generated device certificates, and the real
 * OCSP responder of the test PKI (`openssl ocsp` over the `openssl ca` database) switched between its
 * modes. Cache bounds are shortened (the product's are 5 min … 1 h) so that expiry and re-checks fit
 * in a test run.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import mqtt from 'mqtt';
import { getPki, issueDevice, revoke, type IssuedCert, type SharedPki } from '../harness/pki.ts';
import { freePort, removeDataDir, startTestGatehouse, type TestGatehouse } from '../harness/gatehouse.ts';
import { testWorkers } from '../harness/gatehouse-workers.ts';
import { connackOf } from '../harness/mqtt-connack.ts';

interface ClientState {
  onResponderFailure: string;
  checks: Record<'good' | 'revoked' | 'unknown' | 'responder_error', number>;
  cacheHits: number;
  responderErrors: Record<string, number>;
  lastError: { at: string; reason: string } | null;
  revokedWhileConnected: number;
}
interface GatewayJson { id: string; port: number; productKey: string; status: string; ocspStatus: { mode: string; client: ClientState | null } | null }

const TIMINGS = { minCacheMs: 500, maxCacheMs: 3000, fetchTimeoutMs: 1000, retryMs: 200, recheckIntervalMs: 200 };

let pki: SharedPki;
let gh: TestGatehouse;
let gateway: GatewayJson;
const clients: mqtt.MqttClient[] = [];

function connect(cert: IssuedCert, options: mqtt.IClientOptions = {}): Promise<mqtt.MqttClient> {
  const client = mqtt.connect({
    host: '127.0.0.1', port: gateway.port, protocol: 'mqtts', ca: pki.root.certPem, servername: 'localhost', reconnectPeriod: 0,
    connectTimeout: 8000, protocolVersion: 5, username: 'meter-0001', password: 'pw-one', cert: cert.chainPem, key: cert.keyPem, ...options,
  });
  clients.push(client);
  return connackOf(client).then(() => client);
}

async function connackCode(cert: IssuedCert, options: mqtt.IClientOptions = {}): Promise<number | undefined> {
  try {
    (await connect(cert, options)).end(true);
    return 0;
  } catch (err) {
    return (err as { code?: number }).code;
  }
}

async function clientState(): Promise<ClientState> {
  const got = await gh.api<GatewayJson>('GET', `/gateways/${gateway.id}`);
  assert.ok(got.json.ocspStatus?.client, JSON.stringify(got.json.ocspStatus));
  return got.json.ocspStatus.client;
}

async function setPolicy(onResponderFailure: 'REJECT' | 'ACCEPT'): Promise<void> {
  const r = await gh.api('PATCH', `/gateways/${gateway.id}`, { ocsp: { onResponderFailure } });
  assert.equal(r.status, 200, JSON.stringify(r.json));
}

/** A device certificate the CA issued but whose database line is gone: the responder answers `unknown`. */
async function unknownToResponder(cn: string): Promise<IssuedCert> {
  const cert = await issueDevice(pki, cn);
  const index = await readFile(pki.intermediate.indexPath, 'utf8');
  await writeFile(pki.intermediate.indexPath, index.split('\n').filter((line) => !line.endsWith(`/CN=${cn}`)).join('\n'));
  return cert;
}

before(async () => {
  pki = await getPki();
  gh = await startTestGatehouse({ ocspTimings: TIMINGS });
  const created = await gh.api<GatewayJson>('POST', '/gateways', {
    name: 'ocsp_client_fleet',
    port: await freePort(),
    authType: 'ONE_PARTY',
    x509: { enabled: true },
    ocsp: { mode: 'CLIENT' },
    certificates: { serverCertificateChain: pki.server.chainPem, serverPrivateKey: pki.server.keyPem, deviceRootCertificates: pki.caBundlePem },
  });
  assert.equal(created.status, 201, JSON.stringify(created.json));
  gateway = created.json;
  assert.equal((await gh.api('POST', `/products/${gateway.productKey}/devices`, { username: 'meter-0001', password: 'pw-one' })).status, 201);
}, { timeout: 60_000 });

after(async () => {
  for (const c of clients) c.end(true);
  pki.responder.reset();
  await gh.stop();
  await removeDataDir(gh.dataDir);
}, { timeout: 30_000 });

test('a good device connects after its OCSP check; a reconnect is answered from the cache', { timeout: 60_000 }, async () => {
  const before = await clientState();
  assert.equal(before.onResponderFailure, 'REJECT', 'reject is the default policy');
  // Each process keeps its own cache (GATEHOUSE_TEST_WORKERS: a worker each; the primary hands each new connection
  // to the next): one connection per process fills every cache, and the reconnect after is answered from one.
  const processes = testWorkers() ?? 1;
  for (let i = 0; i < processes; i++) await (await connect(pki.devices.good)).endAsync();
  const requests = pki.responder.requestCount;
  await (await connect(pki.devices.good, { protocolVersion: 4 })).endAsync();
  assert.equal(pki.responder.requestCount, requests, 'the reconnect\'s check did not ask the responder');
  const state = await clientState();
  assert.equal(state.checks.good - before.checks.good, processes + 1);
  assert.ok(state.cacheHits > before.cacheHits);
});

test('a revoked device certificate is refused before CONNACK: 0x87 (v5) / 5 (v3.1.1)', { timeout: 10_000 }, async () => {
  assert.equal(await connackCode(pki.devices.revoked), 0x87);
  assert.equal(await connackCode(pki.devices.revoked, { protocolVersion: 4 }), 5);
  assert.ok((await clientState()).checks.revoked >= 2);
});

test('revoking the certificate of a connected device disconnects it when its cached status expires', { timeout: 45_000 }, async () => {
  const cert = await issueDevice(pki, 'device-live-revoke');
  const device = await connect(cert);
  const kicked = new Promise<number | undefined>((resolve) => device.once('disconnect', (p) => resolve(p.reasonCode)));
  await revoke(pki, cert);
  assert.equal(await kicked, 0x98);
  assert.equal(await connackCode(cert), 0x87);
  assert.ok((await clientState()).revokedWhileConnected >= 1);
});

test('status unknown follows the policy: refused with REJECT, accepted with ACCEPT', { timeout: 45_000 }, async () => {
  const cert = await unknownToResponder('device-unknown-status');
  assert.equal(await connackCode(cert), 0x87);
  await setPolicy('ACCEPT');
  try {
    await new Promise((r) => setTimeout(r, TIMINGS.maxCacheMs + 100)); // let the cached `unknown` expire: the policy applies per check
    assert.equal(await connackCode(cert), 0);
  } finally {
    await setPolicy('REJECT');
  }
  assert.ok((await clientState()).checks.unknown >= 2);
});

for (const mode of ['down', 'slow', 'wrong-signer', 'stale', 'http-error', 'try-later', 'garbage'] as const) {
  const kind = { down: 'network', slow: 'timeout', 'wrong-signer': 'unverified', stale: 'stale', 'http-error': 'http_status', 'try-later': 'response_status', garbage: 'malformed' }[mode];
  test(`responder ${mode}: never a good answer — refused (0x88) with REJECT, accepted with ACCEPT; counted as ${kind}`, { timeout: 20_000 }, async () => {
    const cert = await issueDevice(pki, `device-responder-${mode}`);
    const before = await clientState();
    pki.responder.setMode(mode, { delayMs: 2500 });
    try {
      assert.equal(await connackCode(cert), 0x88);
      await setPolicy('ACCEPT');
      assert.equal(await connackCode(cert), 0);
    } finally {
      pki.responder.reset();
      await setPolicy('REJECT');
    }
    const state = await clientState();
    assert.ok((state.responderErrors[kind] ?? 0) >= (before.responderErrors[kind] ?? 0) + 2, JSON.stringify(state.responderErrors));
    assert.ok(state.checks.responder_error >= before.checks.responder_error + 2);
    assert.match(state.lastError?.reason ?? '', new RegExp(`^${kind}`));
    // Back to normal: the same certificate is checked again (failures are not cached) and connects.
    assert.equal(await connackCode(cert), 0);
  });
}

test('client checks, cache hits and responder errors are in the metrics', { timeout: 5_000 }, async () => {
  const res = await fetch(`${gh.gatehouse.url}/api/v1/metrics`, { headers: { authorization: `Bearer ${gh.gatehouse.adminToken}` } });
  const text = await res.text();
  assert.match(text, /gatehouse_gateway_ocsp_client_checks_total\{gateway="ocsp_client_fleet",result="good"\} [1-9]/);
  assert.match(text, /gatehouse_gateway_ocsp_client_checks_total\{gateway="ocsp_client_fleet",result="revoked"\} [1-9]/);
  assert.match(text, /gatehouse_gateway_ocsp_client_cache_hits_total\{gateway="ocsp_client_fleet"\} [1-9]/);
  assert.match(text, /gatehouse_gateway_ocsp_responder_errors_total\{gateway="ocsp_client_fleet",side="client",kind="timeout"\} [1-9]/);
});
