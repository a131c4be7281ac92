/**
 * Issue 5, the HTTPS provider end to end: a gateway verifying devices with the customer's HTTPS
 * service (a real HTTPS server on 127.0.0.1 with the test CA), MQTT.js clients over TLS, v5 user
 * properties reaching the service through templates, the signed request, devices created on first
 * connection, and the cache and circuit breaker observed through /api/v1/metrics.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import type mqtt from 'mqtt';
import { getPki, type SharedPki } from '../harness/pki.ts';
import { freePort, removeDataDir, startTestGatehouse, type TestGatehouse } from '../harness/gatehouse.ts';
import { startHttpsVerifier, type HttpsVerifier } from '../harness/https-verifier.ts';
import { connectOutcome, metricValue, metricValues, scrapeMetrics, waitFor } from '../harness/third-party.ts';
import { testWorkers } from '../harness/gatehouse-workers.ts';

interface GatewayJson { id: string; name: string; port: number; productKey: string; thirdParty: Record<string, unknown> }

const SECRET = 'shared-secret-of-the-customer-0123';
const BAD_CREDENTIALS = 0x86;
const SERVER_UNAVAILABLE = 0x88;

let pki: SharedPki;
let gh: TestGatehouse;
let verifier: HttpsVerifier;
let gateway: GatewayJson;
const clients: mqtt.MqttClient[] = [];

async function createGateway(name: string, thirdParty: Record<string, unknown>, x509 = false): Promise<GatewayJson> {
  const created = await gh.api<GatewayJson>('POST', '/gateways', {
    name,
    port: await freePort(),
    authType: 'THIRD_PARTY',
    thirdParty: { provider: 'HTTPS', url: verifier.url, caCertificate: pki.root.certPem, ...thirdParty },
    x509: { enabled: x509 },
    certificates: {
      serverCertificateChain: pki.server.chainPem, serverPrivateKey: pki.server.keyPem,
      ...(x509 ? { deviceRootCertificates: pki.caBundlePem } : {}),
    },
  });
  assert.equal(created.status, 201, JSON.stringify(created.json));
  return created.json;
}

async function connect(gw: GatewayJson, username: string, options: mqtt.IClientOptions = {}): Promise<number> {
  const outcome = await connectOutcome(pki, gw.port, { username, password: 'pw-1', clientId: `c-${Math.random().toString(36).slice(2)}`, ...options });
  if (outcome.client) clients.push(outcome.client);
  return outcome.code;
}

/** MQTT.js passes socket options through to tls.connect: the source address of the connection. */
function fromAddress(localAddress: string): mqtt.IClientOptions {
  return { localAddress } as unknown as mqtt.IClientOptions;
}

before(async () => {
  pki = await getPki();
  gh = await startTestGatehouse();
  verifier = await startHttpsVerifier(pki);
  verifier.slowMs = 1500;
  gateway = await createGateway('https_fleet', {
    params: [
      { key: 'sn', value: '${clientId}' },
      { key: 'region', value: '${userProperties.region}' },
      { key: 'tag', value: 'fw-${userProperties.fw}/${username}' },
    ],
    timeoutMs: 400,
    signingSecret: SECRET,
  });
}, { timeout: 60_000 });

after(async () => {
  for (const c of clients) c.end(true);
  await gh.stop();
  await verifier.close();
  await removeDataDir(gh.dataDir);
}, { timeout: 30_000 });

test('an accepted device connects, is created in the gateway product, and the service got the templated, signed call', { timeout: 45_000 }, async () => {
  const code = await connect(gateway, 'ok:sensor-001', {
    clientId: 'sn-A100', properties: { userProperties: { region: 'eu-west', fw: '2.1' } },
  });
  assert.equal(code, 0);
  const [call] = verifier.requestsFor('ok:sensor-001');
  assert.ok(call);
  assert.equal(call.path, '/verify');
  assert.equal(call.headers['content-type'], 'application/json');
  assert.deepEqual(call.body, { username: 'ok:sensor-001', password: 'pw-1', sn: 'sn-A100', region: 'eu-west', tag: 'fw-2.1/ok:sensor-001' });
  const timestamp = String(call.headers['x-gatehouse-timestamp']);
  assert.ok(Math.abs(Number(timestamp) - Date.now() / 1000) < 60);
  assert.equal(call.headers['x-gatehouse-signature'], `sha256=${createHmac('sha256', SECRET).update(`${timestamp}.${call.raw}`).digest('hex')}`);

  // The device row is written right after CONNACK.
  const device = await waitFor(async () => {
    const r = await gh.api<{ origin: string; status: string }>('GET', `/products/${gateway.productKey}/devices/sensor-001`);
    return r.status === 200 && r.json.status === 'ONLINE' ? r.json : undefined;
  });
  assert.equal(device.origin, 'AUTO_CREATED');
});

test('a user property the client did not send renders as empty text', { timeout: 5_000 }, async () => {
  assert.equal(await connect(gateway, 'ok:sensor-002', { clientId: 'sn-B200' }), 0);
  const [call] = verifier.requestsFor('ok:sensor-002');
  assert.equal(call?.body?.region, '');
  assert.equal(call?.body?.tag, 'fw-/ok:sensor-002');
});

test('with X.509 on, the certificate reaches the service: certificateCommonName and ${cert.*} templates', { timeout: 5_000 }, async () => {
  const gw = await createGateway('https_x509', {
    params: [{ key: 'cn', value: '${cert.cn}' }, { key: 'serial', value: '${cert.serial}' }, { key: 'issuer', value: '${cert.issuer}' }],
  }, true);
  const device = pki.devices.good;
  assert.equal(await connect(gw, 'ok:cert-device', { cert: device.chainPem, key: device.keyPem }), 0);
  const [call] = verifier.requestsFor('ok:cert-device');
  assert.equal(call?.body?.certificateCommonName, device.cn);
  assert.equal(call?.body?.cn, device.cn);
  assert.equal(call?.body?.serial, device.serial);
  assert.match(String(call?.body?.issuer), /CN=Gatehouse Test Intermediate/);
});

test('401 and 403 are bad credentials; 2xx without a deviceName or with an invalid one is a rejection', { timeout: 5_000 }, async () => {
  assert.equal(await connect(gateway, 'deny'), BAD_CREDENTIALS);
  assert.equal(await connect(gateway, 'forbid'), BAD_CREDENTIALS);
  assert.equal(await connect(gateway, 'nodevice'), BAD_CREDENTIALS);
  assert.equal(await connect(gateway, 'badname'), BAD_CREDENTIALS);
  const devices = await gh.api<{ items: { deviceName: string }[] }>('GET', `/products/${gateway.productKey}/devices`);
  assert.deepEqual(devices.json.items.map((d) => d.deviceName).sort(), ['sensor-001', 'sensor-002']);
});

test('500, a slow answer and bad JSON are backend failures: server unavailable, never an accept (v5 0x88, v3.1.1 3)', { timeout: 5_000 }, async () => {
  assert.equal(await connect(gateway, 'boom'), SERVER_UNAVAILABLE);
  const slowBefore = verifier.slowAnswered;
  assert.equal(await connect(gateway, 'slow'), SERVER_UNAVAILABLE);
  // An event, not a duration: the device had its answer while the service had not yet sent its own.
  assert.equal(verifier.slowAnswered, slowBefore, 'the per-gateway timeout (400 ms) answered before the service did');
  assert.equal(await connect(gateway, 'badjson'), SERVER_UNAVAILABLE);
  assert.equal(await connect(gateway, 'boom', { protocolVersion: 4 }), 3);
  const metrics = await scrapeMetrics(gh);
  const failures = (kind: string): number | undefined =>
    metricValue(metrics, 'gatehouse_gateway_third_party_failures_total', { gateway: 'https_fleet', provider: 'HTTPS', kind });
  assert.equal(failures('http_5xx'), 2);
  assert.equal(failures('timeout'), 1);
  assert.equal(failures('bad_response'), 1);
});

test('accepts and rejects are cached: the same credentials do not reach the service again', { timeout: 5_000 }, async () => {
  const before = verifier.requests.length;
  // Each process keeps its own cache (GATEHOUSE_TEST_WORKERS: a worker each; the primary hands each new connection to
  // the next): the same credentials once per process ask the service, once more is answered from a cache.
  const processes = testWorkers() ?? 1;
  for (let i = 0; i <= processes; i++) assert.equal(await connect(gateway, 'ok:cached-01', { clientId: 'cache-1' }), 0);
  for (let i = 0; i <= processes; i++) assert.equal(await connect(gateway, 'deny', { clientId: 'cache-2', password: 'other' }), BAD_CREDENTIALS);
  assert.equal(verifier.requests.length - before, 2 * processes);
  // Another password is another question.
  assert.equal(await connect(gateway, 'ok:cached-01', { clientId: 'cache-1', password: 'changed' }), 0);
  assert.equal(verifier.requests.length - before, 2 * processes + 1);

  const metrics = await scrapeMetrics(gh);
  assert.equal(metricValue(metrics, 'gatehouse_gateway_third_party_cache_hits_total', { gateway: 'https_fleet', result: 'accept' }), 1);
  assert.equal(metricValue(metrics, 'gatehouse_gateway_third_party_cache_hits_total', { gateway: 'https_fleet', result: 'reject' }), 1);
  assert.ok((metricValue(metrics, 'gatehouse_gateway_third_party_calls_total', { gateway: 'https_fleet', provider: 'HTTPS', result: 'accept' }) ?? 0) >= 5);
});

test('a backend that keeps failing for many devices trips the breaker: devices are answered at once without calling it', { timeout: 30_000 }, async () => {
  const gw = await createGateway('https_breaker', { params: [] });
  // An outage: five devices from two addresses all get 5xx (issue 13: one caller alone cannot open it). Each process
  // has its own breaker (GATEHOUSE_TEST_WORKERS: the primary hands each new connection to the next worker): the outage
  // is seen by every one, from both addresses.
  const processes = testWorkers() ?? 1;
  for (let i = 0; i < 5 * processes; i++) {
    assert.equal(await connect(gw, `boom:device-${i}`, fromAddress(`127.0.0.${1 + (Math.floor(i / processes) % 2)}`)), SERVER_UNAVAILABLE);
  }
  const before = verifier.requests.length;
  assert.equal(await connect(gw, 'ok:would-be-fine'), SERVER_UNAVAILABLE);
  assert.equal(verifier.requests.length, before, 'the open breaker did not call the service');

  const metrics = await scrapeMetrics(gh);
  assert.deepEqual(metricValues(metrics, 'gatehouse_gateway_third_party_breaker_state', { gateway: 'https_breaker', state: 'open' }), Array<number>(processes).fill(1));
  assert.equal(metricValue(metrics, 'gatehouse_gateway_third_party_breaker_opened_total', { gateway: 'https_breaker' }), processes);
  assert.equal(metricValue(metrics, 'gatehouse_gateway_third_party_failures_total', { gateway: 'https_breaker', provider: 'HTTPS', kind: 'breaker_open' }), 1);
  assert.equal(metricValue(metrics, 'gatehouse_gateway_third_party_breaker_state', { gateway: 'https_fleet', state: 'closed' }), 1);
});

test('issue 13: 4xx answers are refusals of that device, not failures: a stranger\'s malformed usernames do not lock the gateway', { timeout: 30_000 }, async () => {
  const gw = await createGateway('https_lockout_4xx', { params: [] });
  for (let i = 0; i < 8; i++) assert.equal(await connect(gw, `bad:stranger-${i}`), BAD_CREDENTIALS);
  // A device the gateway has never seen (nothing cached) still gets in.
  assert.equal(await connect(gw, 'ok:fresh-device-1'), 0);
  const metrics = await scrapeMetrics(gh);
  assert.equal(metricValue(metrics, 'gatehouse_gateway_third_party_breaker_opened_total', { gateway: 'https_lockout_4xx' }), 0);
  assert.equal(metricValue(metrics, 'gatehouse_gateway_third_party_calls_total', { gateway: 'https_lockout_4xx', provider: 'HTTPS', result: 'reject' }), 8);
});

test('issue 13: one source address, or one username from many addresses, whose CONNECTs make the service fail (5xx) cannot open the breaker for everyone', { timeout: 30_000 }, async () => {
  const gw = await createGateway('https_lockout_5xx', { params: [] });
  // As many failures for each process's breaker as one process gets (GATEHOUSE_TEST_WORKERS: one breaker per worker).
  const processes = testWorkers() ?? 1;
  for (let i = 0; i < 8 * processes; i++) assert.equal(await connect(gw, `boom:stranger-${i}`), SERVER_UNAVAILABLE);
  assert.equal(await connect(gw, 'ok:fresh-device-2'), 0);
  // On another gateway (the failures of both together would look like an outage): one username, four addresses.
  const byName = await createGateway('https_lockout_5xx_name', { params: [] });
  for (let i = 0; i < 8 * processes; i++) {
    assert.equal(await connect(byName, 'boom:one-name', fromAddress(`127.0.0.${2 + (Math.floor(i / processes) % 4)}`)), SERVER_UNAVAILABLE);
  }
  assert.equal(await connect(byName, 'ok:fresh-device-3'), 0);
  const metrics = await scrapeMetrics(gh);
  assert.equal(metricValue(metrics, 'gatehouse_gateway_third_party_breaker_state', { gateway: 'https_lockout_5xx', state: 'closed' }), 1);
  assert.equal(metricValue(metrics, 'gatehouse_gateway_third_party_breaker_state', { gateway: 'https_lockout_5xx_name', state: 'closed' }), 1);
});

test('the signing secret is write-only: shown as set, kept by an edit that does not mention it, removed with null', { timeout: 5_000 }, async () => {
  const read = await gh.api<GatewayJson>('GET', `/gateways/${gateway.id}`);
  assert.equal(read.json.thirdParty.signingSecretSet, true);
  assert.equal('signingSecret' in read.json.thirdParty, false);
  assert.equal(read.json.thirdParty.timeoutMs, 400);
  assert.equal(read.json.thirdParty.acceptCacheTtlSeconds, 60);
  assert.equal(read.json.thirdParty.rejectCacheTtlSeconds, 10);

  // At rest it is encrypted like the private key.
  const [row] = await gh.query<{ third_party: string }>('select third_party from gateways where id = $1', [gateway.id]);
  assert.ok(row !== undefined);
  assert.ok(!row.third_party.includes(SECRET));
  assert.match(String((JSON.parse(row.third_party) as { signingSecret: string }).signingSecret), /^v1:/);

  const edited = await gh.api<GatewayJson>('PATCH', `/gateways/${gateway.id}`, {
    thirdParty: { provider: 'HTTPS', url: verifier.url, caCertificate: pki.root.certPem, timeoutMs: 2000, params: [] },
  });
  assert.equal(edited.status, 200, JSON.stringify(edited.json));
  assert.equal(edited.json.thirdParty.signingSecretSet, true);
  assert.equal(edited.json.thirdParty.timeoutMs, 2000);

  const cleared = await gh.api<GatewayJson>('PATCH', `/gateways/${gateway.id}`, {
    thirdParty: { provider: 'HTTPS', url: verifier.url, caCertificate: pki.root.certPem, signingSecret: null },
  });
  assert.equal(cleared.json.thirdParty.signingSecretSet, false);
  assert.equal(await connect(gateway, 'ok:unsigned-01'), 0);
  assert.equal(verifier.requestsFor('ok:unsigned-01')[0]?.headers['x-gatehouse-signature'], undefined);
});

test('bad settings are refused when the gateway is saved', { timeout: 5_000 }, async () => {
  const bad = async (thirdParty: Record<string, unknown>): Promise<{ code: string; field: string }> => {
    const r = await gh.api<{ error: { code: string; field: string } }>('PATCH', `/gateways/${gateway.id}`, {
      thirdParty: { provider: 'HTTPS', url: verifier.url, ...thirdParty },
    });
    assert.equal(r.status, 400, JSON.stringify(r.json));
    return r.json.error;
  };
  const unknown = await bad({ params: [{ key: 'x', value: '${userProperty.region}' }] });
  assert.equal(unknown.code, 'GW_ERR_TEMPLATE_VARIABLE_UNKNOWN');
  assert.equal(unknown.field, 'thirdParty.params[0].value');
  assert.equal((await bad({ timeoutMs: 50 })).field, 'thirdParty.timeoutMs');
  assert.equal((await bad({ rejectCacheTtlSeconds: -1 })).field, 'thirdParty.rejectCacheTtlSeconds');
  assert.equal((await bad({ signingSecret: 'short' })).field, 'thirdParty.signingSecret');
});

test('a service whose certificate the gateway does not trust is a backend failure (TLS verification stays on)', { timeout: 5_000 }, async () => {
  const gw = await createGateway('https_untrusted', { caCertificate: pki.rogue.certPem });
  assert.equal(await connect(gw, 'ok:never-created'), SERVER_UNAVAILABLE);
  const metrics = await scrapeMetrics(gh);
  assert.equal(metricValue(metrics, 'gatehouse_gateway_third_party_failures_total', { gateway: 'https_untrusted', provider: 'HTTPS', kind: 'network' }), 1);
});

test('an answer of hundreds of megabytes is read only up to its 64 KB limit: a backend failure, the stream aborted', { timeout: 30_000 }, async () => {
  const gw = await createGateway('https_huge', { timeoutMs: 10_000 });
  assert.equal(await connect(gw, 'huge'), SERVER_UNAVAILABLE);
  // The old main read the whole body before its size check (300 MB in memory, every gateway stalled).
  assert.ok(verifier.hugeBytesWritten < 32 * 1024 * 1024, `the service wrote ${verifier.hugeBytesWritten} bytes before the gateway hung up`);
  const metrics = await scrapeMetrics(gh);
  assert.equal(metricValue(metrics, 'gatehouse_gateway_third_party_failures_total', { gateway: 'https_huge', provider: 'HTTPS', kind: 'bad_response' }), 1);
});
