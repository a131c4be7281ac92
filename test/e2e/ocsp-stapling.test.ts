/**
 * Issue 4, OCSP stapling end to end: a gateway created over HTTP with OCSP mode SERVER staples the
 * response of the test PKI's real responder; `openssl s_client -status` and a Node client with
 * `requestOCSP` see it; the responder's failure modes never get a bad response stapled; certificate
 * rotation gets the new certificate its own response. Cache bounds are shortened (the product's are
 * 5 min … 1 h) so that expiry fits in a test run.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import tls from 'node:tls';
import { promisify } from 'node:util';
import mqtt from 'mqtt';
import { getPki, type IssuedCert, type SharedPki } from '../harness/pki.ts';
import { readOcspResponse } from '../harness/ocsp-client.ts';
import type { OcspResponderMode } from '../harness/ocsp-responder.ts';
import { freePort, removeDataDir, startTestGatehouse, type TestGatehouse } from '../harness/gatehouse.ts';
import { testWorkers } from '../harness/gatehouse-workers.ts';

const run = promisify(execFile);

interface ServerState {
  stapling: boolean; certStatus: string | null; ageSeconds: number | null; nextRefreshAt: string | null; expiresAt: string | null;
  staplesServed: number; responderErrors: Record<string, number>; lastError: { reason: string } | null;
}
interface GatewayJson { id: string; name: string; port: number; productKey: string; status: string; ocspStatus: { mode: string; server: ServerState | null; client: unknown } | null }

const TIMINGS = { minCacheMs: 500, maxCacheMs: 1500, fetchTimeoutMs: 1000, retryMs: 200, recheckIntervalMs: 200 };

let pki: SharedPki;
let gh: TestGatehouse;
let gateway: GatewayJson;

/** One TLS handshake asking for certificate status: the stapled response (or null) and the server's serial. */
function handshake(port: number, client?: IssuedCert): Promise<{ staple: Buffer | null; serial: string }> {
  return new Promise((resolve, reject) => {
    let staple: Buffer | null = null;
    // `requestOCSP` is a TLSSocket option that tls.connect passes on; @types/node leaves it out of ConnectionOptions.
    const options: tls.ConnectionOptions & { requestOCSP: boolean } = {
      host: '127.0.0.1', port, ca: pki.root.certPem, servername: 'localhost', requestOCSP: true,
      ...(client === undefined ? {} : { cert: client.chainPem, key: client.keyPem }),
    };
    const socket = tls.connect(options);
    socket.on('OCSPResponse', (response: Buffer) => {
      staple = response;
    });
    socket.once('secureConnect', () => {
      const serial = new X509Certificate(socket.getPeerCertificate().raw).serialNumber;
      socket.destroy();
      resolve({ staple, serial });
    });
    socket.once('error', reject);
  });
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, ms = 8000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function serverState(id: string): Promise<ServerState> {
  const got = await gh.api<GatewayJson>('GET', `/gateways/${id}`);
  assert.ok(got.json.ocspStatus?.server, JSON.stringify(got.json.ocspStatus));
  return got.json.ocspStatus.server;
}

/**
 * The server side's state once there is one: undefined while the gateway has none yet (it is starting; with
 * GATEHOUSE_TEST_WORKERS a restart reaches the other worker a moment later), for a waitFor to try again.
 */
async function serverStateOnceThere(id: string): Promise<ServerState | undefined> {
  const got = await gh.api<GatewayJson>('GET', `/gateways/${id}`);
  return got.json.ocspStatus?.server ?? undefined;
}

/** The staple verifies (delegated responder → intermediate → root), is fresh, and says `good` for `cert`. */
async function assertGoodStaple(staple: Buffer | null, cert: IssuedCert): Promise<void> {
  assert.ok(staple, 'a response was stapled');
  const read = await readOcspResponse(staple, cert.certPem, pki.intermediate.certPem, { trustedPems: [pki.root.certPem, pki.intermediate.certPem] });
  assert.equal(read.status, 'good');
  assert.equal(read.verified, true, read.verifyError);
  assert.equal(read.stale, false);
}

async function createGateway(name: string): Promise<GatewayJson> {
  const created = await gh.api<GatewayJson>('POST', '/gateways', {
    name,
    port: await freePort(),
    ocsp: { mode: 'SERVER' },
    certificates: { serverCertificateChain: pki.server.chainPem, serverPrivateKey: pki.server.keyPem, trustedCertificate: pki.root.certPem },
  });
  assert.equal(created.status, 201, JSON.stringify(created.json));
  return created.json;
}

before(async () => {
  pki = await getPki();
  gh = await startTestGatehouse({ ocspTimings: TIMINGS });
  gateway = await createGateway('stapling_fleet');
  await waitFor('first staple', async () => ((await serverStateOnceThere(gateway.id))?.stapling === true ? true : undefined));
}, { timeout: 60_000 });

after(async () => {
  pki.responder.reset();
  await gh.stop();
  await removeDataDir(gh.dataDir);
}, { timeout: 30_000 });

test('a Node client with requestOCSP receives a stapled, verified, good response for the server certificate', { timeout: 90_000 }, async () => {
  const { staple, serial } = await handshake(gateway.port);
  assert.equal(serial, pki.server.serial);
  await assertGoodStaple(staple, pki.server);
});

test('openssl s_client -status sees the stapled response', { timeout: 15_000 }, async () => {
  const { stdout } = await run('sh', ['-c',
    `openssl s_client -connect 127.0.0.1:${gateway.port} -servername localhost -status -CAfile '${pki.root.certPath}' </dev/null 2>&1`], { timeout: 10_000 });
  assert.match(stdout, /OCSP Response Status: successful/);
  assert.match(stdout, /Cert Status: good/);
  assert.match(stdout, /Verify return code: 0 \(ok\)/);
});

test('the API view and the metrics show the stapled response\'s age and next refresh', { timeout: 5_000 }, async () => {
  const state = await serverState(gateway.id);
  assert.equal(state.certStatus, 'good');
  assert.ok(state.ageSeconds !== null && state.ageSeconds >= 0 && state.ageSeconds < 120, String(state.ageSeconds));
  assert.ok(state.nextRefreshAt !== null && Date.parse(state.nextRefreshAt) > Date.now() - 1000, String(state.nextRefreshAt));
  assert.ok(state.expiresAt !== null && Date.parse(state.expiresAt) - Date.now() <= TIMINGS.maxCacheMs, 'kept no longer than the upper clamp');
  assert.ok(state.staplesServed >= 1);
  const res = await fetch(`${gh.gatehouse.url}/api/v1/metrics`, { headers: { authorization: `Bearer ${gh.gatehouse.adminToken}` } });
  const text = await res.text();
  // One series per process that staples (GATEHOUSE_TEST_WORKERS: each worker's own staple, labelled node_id): all of them.
  const series = (name: string): string[] => [...text.matchAll(new RegExp(`^${name}\\{gateway="stapling_fleet"(?:,node_id="[^"]+")?\\} (\\S+)$`, 'gm'))].map((m) => m[1]!);
  assert.deepEqual(series('gatehouse_gateway_ocsp_stapling'), Array<string>(testWorkers() ?? 1).fill('1'));
  assert.ok(series('gatehouse_gateway_ocsp_staple_age_seconds').every((v) => /^\d/.test(v)));
  assert.equal(series('gatehouse_gateway_ocsp_staple_age_seconds').length, testWorkers() ?? 1);
  assert.ok(series('gatehouse_gateway_ocsp_staple_next_refresh_seconds').every((v) => /^\d/.test(v)));
  assert.equal(series('gatehouse_gateway_ocsp_staple_next_refresh_seconds').length, testWorkers() ?? 1);
});

test('responder down: stapling pauses once the kept response expires, and resumes when a fresh one arrives', { timeout: 20_000 }, async () => {
  pki.responder.setMode('down');
  try {
    await waitFor('stapling paused', async () => ((await handshake(gateway.port)).staple === null ? true : undefined));
    const state = await serverState(gateway.id);
    assert.equal(state.stapling, false);
    assert.ok((state.responderErrors.network ?? 0) >= 1, JSON.stringify(state.responderErrors));
    assert.match(state.lastError?.reason ?? '', /^network/);
  } finally {
    pki.responder.reset();
  }
  const { staple } = await waitFor('stapling resumed', async () => {
    const h = await handshake(gateway.port);
    return h.staple === null ? undefined : h;
  });
  await assertGoodStaple(staple, pki.server);
});

for (const [mode, kind] of [['wrong-signer', 'unverified'], ['stale', 'stale'], ['slow', 'timeout'], ['try-later', 'response_status']] as [OcspResponderMode, string][]) {
  test(`responder ${mode}: the response is never stapled (counted as ${kind})`, { timeout: 20_000 }, async () => {
    const other = await createGateway(`stapling_${kind}`);
    // The gateway's first fetch may have raced the mode switch: restart it so that every fetch sees the mode.
    pki.responder.setMode(mode, { delayMs: 2500 });
    try {
      await gh.api('POST', `/gateways/${other.id}/stop`);
      await gh.api('POST', `/gateways/${other.id}/start`);
      await waitFor(`a ${kind} error`, async () => (((await serverStateOnceThere(other.id))?.responderErrors[kind] ?? 0) >= 1 ? true : undefined));
      assert.equal((await handshake(other.port)).staple, null);
      assert.equal((await serverState(other.id)).stapling, false);
    } finally {
      pki.responder.reset();
    }
    await waitFor('a good staple once the responder is fixed', async () => ((await handshake(other.port)).staple === null ? undefined : true));
    assert.equal((await gh.api('DELETE', `/gateways/${other.id}`)).status, 204);
  });
}

test('rotating the server certificate keeps stapling working for the new certificate', { timeout: 20_000 }, async () => {
  const patched = await gh.api('PATCH', `/gateways/${gateway.id}`, {
    certificates: { serverCertificateChain: pki.serverRotated.chainPem, serverPrivateKey: pki.serverRotated.keyPem },
  });
  assert.equal(patched.status, 200, JSON.stringify(patched.json));
  const { staple } = await waitFor('rotated certificate with its staple', async () => {
    const h = await handshake(gateway.port);
    return h.serial === pki.serverRotated.serial && h.staple !== null ? h : undefined;
  });
  await assertGoodStaple(staple, pki.serverRotated);
});

test('SERVER_AND_CLIENT: the server certificate is stapled and device certificates are checked on one gateway', { timeout: 15_000 }, async () => {
  const created = await gh.api<GatewayJson>('POST', '/gateways', {
    name: 'stapling_and_client',
    port: await freePort(),
    x509: { enabled: true },
    ocsp: { mode: 'SERVER_AND_CLIENT' },
    certificates: {
      serverCertificateChain: pki.server.chainPem, serverPrivateKey: pki.server.keyPem,
      trustedCertificate: pki.root.certPem, deviceRootCertificates: pki.caBundlePem,
    },
  });
  assert.equal(created.status, 201, JSON.stringify(created.json));
  const both = created.json;
  await gh.api('POST', `/products/${both.productKey}/devices`, { username: 'meter-0001', password: 'pw-one' });
  const { staple } = await waitFor('staple', async () => {
    const h = await handshake(both.port, pki.devices.good);
    return h.staple === null ? undefined : h;
  });
  await assertGoodStaple(staple, pki.server);
  const device = await mqtt.connectAsync({
    host: '127.0.0.1', port: both.port, protocol: 'mqtts', ca: pki.root.certPem, servername: 'localhost', reconnectPeriod: 0,
    protocolVersion: 5, username: 'meter-0001', password: 'pw-one', cert: pki.devices.good.chainPem, key: pki.devices.good.keyPem,
  });
  await device.endAsync();
  const got = await gh.api<{ ocspStatus: { client: { checks: { good: number } } } }>('GET', `/gateways/${both.id}`);
  assert.ok(got.json.ocspStatus.client.checks.good >= 1);
  assert.equal((await gh.api('DELETE', `/gateways/${both.id}`)).status, 204);
});
