/**
 * Issue 14, item 1, end to end with real MQTT.js clients, the real openssl PKI and its OCSP responder:
 * each refusal reason appears in /api/v1/events with what the device presented and what it was sent,
 * accepted connections and disconnect causes too, a refused device without a record is found by its
 * username, a fast retrier is folded into one row with a count, /stream carries them live, pages follow
 * the cursor. Refused CONNECTs get CONNACK codes per [MQTT-3.2.2-6] / v5 §3.2.2.2.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import mqtt from 'mqtt';
import mqttPacket from 'mqtt-packet';
import { startHttpsVerifier, type HttpsVerifier } from '../harness/https-verifier.ts';
import { getPki, issueDevice, type IssuedCert, type SharedPki } from '../harness/pki.ts';
import { freePort, removeDataDir, startTestGatehouse, TEST_ADMIN_TOKEN, type TestGatehouse } from '../harness/gatehouse.ts';
import { connackOf } from '../harness/mqtt-connack.ts';

interface GatewayJson { id: string; port: number; productKey: string; status: string }
interface EventJson {
  id: string; gatewayId: string; type: string; reason: string; detail: string | null; mqttReasonCode: number | null; protocolVersion: number | null;
  clientId: string | null; username: string | null; deviceName: string | null; address: string | null;
  certificate: { cn: string | null; serial: string } | null; at: string; count: number; lastAt: string;
}
interface EventList { items: EventJson[]; nextCursor: string | null }

let pki: SharedPki;
let gh: TestGatehouse;
let plain: GatewayJson;
let x509: GatewayJson;
let fn: GatewayJson;
let https: GatewayJson;
let quota: GatewayJson;
let rate: GatewayJson;
let perAddress: GatewayJson;
let verifier: HttpsVerifier;
const clients: mqtt.MqttClient[] = [];

function open(gateway: GatewayJson, options: mqtt.IClientOptions): mqtt.MqttClient {
  const client = mqtt.connect({
    host: '127.0.0.1', port: gateway.port, protocol: 'mqtts', ca: pki.root.certPem, servername: 'localhost', reconnectPeriod: 0,
    connectTimeout: 8000, protocolVersion: 5, ...options,
  });
  clients.push(client);
  return client;
}

/** The CONNACK code (0 = accepted, then closed), or undefined when the socket closed without one. */
function attempt(gateway: GatewayJson, options: mqtt.IClientOptions): Promise<number | undefined> {
  const client = open(gateway, options);
  return new Promise((resolve) => {
    client.once('connect', () => {
      client.end(true);
      resolve(0);
    });
    client.once('error', (err) => resolve((err as { code?: number }).code));
    client.once('close', () => resolve(undefined));
  });
}

function connected(gateway: GatewayJson, options: mqtt.IClientOptions): Promise<mqtt.MqttClient> {
  const client = open(gateway, options);
  return connackOf(client).then(() => client);
}

async function events(query: string): Promise<EventList> {
  const reply = await gh.api<EventList>('GET', `/events?${query}`);
  assert.equal(reply.status, 200, JSON.stringify(reply.json));
  return reply.json;
}

/** Waits for an event matching the query (the recorder writes in batches: poll, never sleep a fixed time). */
async function eventFor(query: string, what = query): Promise<EventJson> {
  const deadline = Date.now() + 8000;
  for (;;) {
    const [first] = (await events(query)).items;
    if (first !== undefined) return first;
    if (Date.now() > deadline) throw new Error(`no event for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const sockets: net.Socket[] = [];

/** A TLS socket to a gateway that trusts the test root; resolves once the handshake is done. */
function rawTls(gateway: GatewayJson): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port: gateway.port, ca: pki.root.certPem, servername: 'localhost' }, () => resolve(socket));
    sockets.push(socket);
    socket.once('error', reject);
  });
}

/** Waits for an event of the query that satisfies `match` (others of the same query may come first). */
async function eventWhere(query: string, match: (e: EventJson) => boolean): Promise<EventJson> {
  const deadline = Date.now() + 8000;
  for (;;) {
    const { items } = await events(`${query}&limit=100`);
    const found = items.find(match);
    if (found !== undefined) return found;
    if (Date.now() > deadline) throw new Error(`no matching event for ${query} in ${JSON.stringify(items)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const cert = (c: IssuedCert): mqtt.IClientOptions => ({ cert: c.chainPem, key: c.keyPem });

before(async () => {
  pki = await getPki();
  gh = await startTestGatehouse({ ocspTimings: { minCacheMs: 500, maxCacheMs: 3000, fetchTimeoutMs: 1000, retryMs: 200, recheckIntervalMs: 200 } });
  const certificates = { serverCertificateChain: pki.server.chainPem, serverPrivateKey: pki.server.keyPem };
  plain = (await gh.api<GatewayJson>('POST', '/gateways', { name: 'events_plain', port: await freePort(), certificates })).json;
  x509 = (await gh.api<GatewayJson>('POST', '/gateways', {
    name: 'events_x509', port: await freePort(), x509: { enabled: true }, ocsp: { mode: 'CLIENT' },
    certificates: { ...certificates, deviceRootCertificates: pki.caBundlePem },
  })).json;
  const created = await gh.api('POST', '/functions', {
    name: 'events_verify',
    source: 'function handler(e) { if (e.userName === "boom") throw new Error("backend exploded"); '
      + 'return e.userName === "fn-good" ? { result: "true", deviceName: "fn-device" } : { result: "false", message: "not on the list" }; }',
  });
  assert.equal(created.status, 201, JSON.stringify(created.json));
  fn = (await gh.api<GatewayJson>('POST', '/gateways', {
    name: 'events_function', port: await freePort(), authType: 'THIRD_PARTY', thirdParty: { provider: 'FUNCTION', functionName: 'events_verify' }, certificates,
  })).json;
  verifier = await startHttpsVerifier(pki);
  https = (await gh.api<GatewayJson>('POST', '/gateways', {
    name: 'events_https', port: await freePort(), authType: 'THIRD_PARTY', certificates,
    thirdParty: { provider: 'HTTPS', url: verifier.url, caCertificate: pki.root.certPem },
  })).json;
  const limited = async (name: string, limits: Record<string, number>): Promise<GatewayJson> =>
    (await gh.api<GatewayJson>('POST', '/gateways', { name, port: await freePort(), certificates, limits })).json;
  quota = await limited('events_quota', { maxConnections: 1 });
  rate = await limited('events_rate', { connectionRatePerAddress: 1 });
  perAddress = await limited('events_per_address', { maxConnectionsPerAddress: 1 });
  for (const g of [plain, x509, fn, https, quota, rate, perAddress]) assert.equal(g.status, 'RUNNING', JSON.stringify(g));
  assert.equal((await gh.api('POST', `/products/${quota.productKey}/devices`, { username: 'meter-0001', password: 'pw-one' })).status, 201);
  for (const [g, username, password] of [[plain, 'meter-0001', 'pw-one'], [plain, 'meter-off', 'pw-off'], [x509, 'meter-0001', 'pw-one']] as const) {
    assert.equal((await gh.api('POST', `/products/${g.productKey}/devices`, { username, password })).status, 201);
  }
  assert.equal((await gh.api('PATCH', `/products/${plain.productKey}/devices/meter-off`, { disabled: true })).status, 200);
}, { timeout: 60_000 });

after(async () => {
  for (const c of clients) c.end(true);
  for (const s of sockets) s.destroy();
  await verifier.close();
  await gh.stop();
  await removeDataDir(gh.dataDir);
}, { timeout: 30_000 });

test('one-party refusals: BAD_CREDENTIALS, UNKNOWN_DEVICE (found by username, no device), DEVICE_DISABLED, with the code sent', { timeout: 30_000 }, async () => {
  assert.equal(await attempt(plain, { clientId: 'c-wrong', username: 'meter-0001', password: 'nope' }), 0x86);
  const wrong = await eventFor(`gatewayId=${plain.id}&reason=BAD_CREDENTIALS`);
  assert.equal(wrong.type, 'CONNECT_REFUSED');
  assert.equal(wrong.mqttReasonCode, 0x86);
  assert.equal(wrong.clientId, 'c-wrong');
  assert.equal(wrong.username, 'meter-0001');
  assert.equal(wrong.address?.endsWith('127.0.0.1'), true);
  assert.ok(!JSON.stringify(wrong).includes('nope'), 'never the password');

  assert.equal(await attempt(plain, { clientId: 'c-stranger', username: 'nobody-here', password: 'x' }), 0x86);
  const unknown = await eventFor('username=nobody-here');
  assert.equal(unknown.reason, 'UNKNOWN_DEVICE');
  assert.equal(unknown.deviceName, null);
  assert.equal((await eventFor('clientId=c-stranger')).id, unknown.id);

  assert.equal(await attempt(plain, { clientId: 'c-off', username: 'meter-off', password: 'pw-off' }), 0x87);
  const disabled = await eventFor(`gatewayId=${plain.id}&reason=DEVICE_DISABLED`);
  assert.equal(disabled.mqttReasonCode, 0x87);
});

test('accepted, then each disconnect cause: CLIENT_DISCONNECT, TAKEN_OVER, KICKED', { timeout: 30_000 }, async () => {
  const first = await connected(plain, { clientId: 'c-meter', username: 'meter-0001', password: 'pw-one' });
  const accepted = await eventFor(`deviceName=meter-0001&type=CONNECT_ACCEPTED`);
  assert.equal(accepted.reason, 'ACCEPTED');
  assert.equal(accepted.mqttReasonCode, 0);
  assert.equal(accepted.gatewayId, plain.id);

  const second = await connected(plain, { clientId: 'c-meter', username: 'meter-0001', password: 'pw-one' });
  const takenOver = await eventFor('deviceName=meter-0001&reason=TAKEN_OVER');
  assert.equal(takenOver.type, 'DISCONNECTED');
  first.end(true);

  await new Promise<void>((resolve) => second.end(false, {}, () => resolve()));
  await eventFor('deviceName=meter-0001&reason=CLIENT_DISCONNECT');

  const third = await connected(plain, { clientId: 'c-meter', username: 'meter-0001', password: 'pw-one' });
  const kicked = new Promise<void>((resolve) => third.once('disconnect', () => resolve()));
  assert.equal((await gh.api('PATCH', `/products/${plain.productKey}/devices/meter-0001`, { disabled: true })).status, 200);
  await kicked;
  const event = await eventFor('deviceName=meter-0001&reason=KICKED');
  assert.equal(event.mqttReasonCode, 0x98);
  assert.equal((await gh.api('PATCH', `/products/${plain.productKey}/devices/meter-0001`, { disabled: false })).status, 200);
});

test('certificate refusals: CERT_MISSING, CERT_EXPIRED, CERT_UNTRUSTED at TLS; CERT_REVOKED and OCSP_UNAVAILABLE before CONNACK, with certificate facts', { timeout: 40_000 }, async () => {
  const creds = { username: 'meter-0001', password: 'pw-one' };
  await attempt(x509, { clientId: 'c-nocert', ...creds });
  assert.equal((await eventFor(`gatewayId=${x509.id}&reason=CERT_MISSING`)).mqttReasonCode, null, 'closed at TLS: no CONNACK');
  await attempt(x509, { clientId: 'c-expired', ...creds, ...cert(pki.devices.expired) });
  assert.match((await eventFor(`gatewayId=${x509.id}&reason=CERT_EXPIRED`)).detail ?? '', /cert_has_expired/);
  await attempt(x509, { clientId: 'c-rogue', ...creds, ...cert(pki.devices.wrongCa) });
  await eventFor(`gatewayId=${x509.id}&reason=CERT_UNTRUSTED`);

  assert.equal(await attempt(x509, { clientId: 'c-revoked', ...creds, ...cert(pki.devices.revoked) }), 0x87);
  const revoked = await eventFor(`gatewayId=${x509.id}&reason=CERT_REVOKED`);
  assert.equal(revoked.certificate?.serial, pki.devices.revoked.serial);
  assert.equal(revoked.clientId, 'c-revoked');

  const noAia = await issueDevice(pki, 'device-events-no-aia', { ocspUrl: null });
  assert.equal(await attempt(x509, { clientId: 'c-noaia', ...creds, ...cert(noAia) }), 0x88);
  const unavailable = await eventFor(`gatewayId=${x509.id}&reason=OCSP_UNAVAILABLE`);
  assert.equal(unavailable.mqttReasonCode, 0x88);
  assert.equal(unavailable.certificate?.cn, 'device-events-no-aia');
});

test('verification function: FUNCTION_REJECTED with its message, FUNCTION_FAILED when it throws', { timeout: 30_000 }, async () => {
  assert.equal(await attempt(fn, { clientId: 'c-fn-no', username: 'fn-bad', password: 'pw-secret' }), 0x86);
  assert.match((await eventFor(`gatewayId=${fn.id}&reason=FUNCTION_REJECTED`)).detail ?? '', /not on the list/);
  assert.equal(await attempt(fn, { clientId: 'c-fn-boom', username: 'boom', password: 'pw-secret' }), 0x88);
  assert.match((await eventFor(`gatewayId=${fn.id}&reason=FUNCTION_FAILED`)).detail ?? '', /backend exploded/);
  assert.equal(await attempt(fn, { clientId: 'c-fn-ok', username: 'fn-good', password: 'x' }), 0);
  assert.equal((await eventFor(`gatewayId=${fn.id}&type=CONNECT_ACCEPTED`)).deviceName, 'fn-device');
});

test('a device retrying fast is folded: fewer rows than attempts, counts adding up to every attempt', { timeout: 60_000 }, async () => {
  const attempts = 30;
  // All at once, as a firmware retry loop does: the throttle refuses most at once (0x9F), each one still an event.
  await Promise.all(Array.from({ length: attempts }, () => attempt(plain, { clientId: 'c-retry', username: 'retry-stranger', password: 'x', protocolVersion: 4 })));
  const deadline = Date.now() + 8000;
  let rows: EventJson[] = [];
  for (;;) {
    // Refusals only: a client that gave up while its attempt waited is also recorded (CONNECT_ABANDONED).
    rows = (await events('username=retry-stranger&type=CONNECT_REFUSED&limit=1000')).items;
    if (rows.reduce((n, r) => n + r.count, 0) === attempts || Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.equal(rows.reduce((n, r) => n + r.count, 0), attempts, JSON.stringify(rows.map((r) => [r.reason, r.count])));
  assert.ok(rows.length <= 3, `${rows.length} rows for ${attempts} attempts`); // one per reason (UNKNOWN_DEVICE, THROTTLED)
  assert.ok(rows.every((r) => r.lastAt >= r.at));
});

test('/stream carries connection events live; /events pages with the cursor; bad queries name the field', { timeout: 30_000 }, async () => {
  const controller = new AbortController();
  const res = await fetch(`${gh.gatehouse.url}/api/v1/stream?types=connection&gatewayId=${plain.id}`, {
    headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}` }, signal: controller.signal,
  });
  assert.equal(res.status, 200);
  const reader = res.body!.getReader();
  const seen = (async () => {
    let text = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) throw new Error('stream ended');
      text += Buffer.from(value).toString();
      const match = /event: connection\ndata: (.*)\n/.exec(text);
      if (match?.[1] !== undefined && match[1].includes('live-stranger')) return JSON.parse(match[1]) as EventJson;
    }
  })();
  await attempt(plain, { clientId: 'c-live', username: 'live-stranger', password: 'x' });
  const live = await seen;
  controller.abort();
  assert.equal(live.reason, 'UNKNOWN_DEVICE');
  assert.equal(live.type, 'CONNECT_REFUSED');

  const page1 = await events(`gatewayId=${plain.id}&limit=2`);
  assert.equal(page1.items.length, 2);
  assert.ok(page1.nextCursor !== null);
  const page2 = await events(`gatewayId=${plain.id}&limit=2&cursor=${page1.nextCursor}`);
  assert.ok(page2.items.every((e) => e.id < page1.items[1]!.id), 'older, no overlap');

  for (const [query, field] of [['limit=0', 'limit'], ['reason=NOPE', 'reason'], ['type=x', 'type'], ['since=yesterday', 'since'], ['cursor=abc', 'cursor']]) {
    const reply = await gh.api<{ error: { code: string; field: string } }>('GET', `/events?${query}`);
    assert.equal(reply.status, 400, query);
    assert.equal(reply.json.error.field, field);
  }
});

test('HTTPS verification: HTTPS_REJECTED for a 401/403 answer, HTTPS_UNAVAILABLE for a 500, the password never stored', { timeout: 30_000 }, async () => {
  assert.equal(await attempt(https, { clientId: 'c-https-deny', username: 'deny', password: 'pw-https-secret' }), 0x86);
  const rejected = await eventFor(`gatewayId=${https.id}&reason=HTTPS_REJECTED&clientId=c-https-deny`);
  assert.equal(rejected.mqttReasonCode, 0x86);
  assert.equal(rejected.username, 'deny');
  assert.match(rejected.detail ?? '', /401/);
  assert.equal(await attempt(https, { clientId: 'c-https-forbid', username: 'forbid', password: 'pw-https-secret' }), 0x86);
  assert.match((await eventFor(`gatewayId=${https.id}&reason=HTTPS_REJECTED&clientId=c-https-forbid`)).detail ?? '', /403/);

  assert.equal(await attempt(https, { clientId: 'c-https-boom', username: 'boom', password: 'pw-https-secret', protocolVersion: 4 }), 3);
  const unavailable = await eventFor(`gatewayId=${https.id}&reason=HTTPS_UNAVAILABLE`);
  assert.equal(unavailable.mqttReasonCode, 3, 'v3.1.1: the return code sent (server unavailable)');
  assert.equal(unavailable.protocolVersion, 4);
  assert.match(unavailable.detail ?? '', /500/);
  const all = await events(`gatewayId=${https.id}&limit=100`);
  assert.ok(!JSON.stringify(all).includes('pw-https-secret'), 'never the password');
});

test('per-gateway limits: QUOTA_EXCEEDED at maxConnections (0x97) and at maxConnectionsPerAddress, THROTTLED by connectionRatePerAddress as one row with a count', { timeout: 30_000 }, async () => {
  const holder = await connected(quota, { clientId: 'c-quota-1', username: 'meter-0001', password: 'pw-one' });
  assert.equal(await attempt(quota, { clientId: 'c-quota-2', username: 'meter-0001', password: 'pw-one' }), 0x97);
  const over = await eventFor(`gatewayId=${quota.id}&reason=QUOTA_EXCEEDED`);
  assert.equal(over.mqttReasonCode, 0x97);
  assert.equal(over.detail, 'maxConnections');
  assert.equal(over.clientId, 'c-quota-2');
  holder.end(true);

  // One socket held open: the next from the same address is refused before TLS.
  await rawTls(perAddress);
  const refused = new net.Socket();
  sockets.push(refused);
  await new Promise<void>((resolve) => refused.connect(perAddress.port, '127.0.0.1').once('close', () => resolve()).once('error', () => {}));
  const perAddr = await eventFor(`gatewayId=${perAddress.id}&reason=QUOTA_EXCEEDED`);
  assert.equal(perAddr.detail, 'maxConnectionsPerAddress');
  assert.equal(perAddr.mqttReasonCode, null, 'closed before TLS: nothing sent');

  // A burst of 2 sockets is allowed at 1 per second; 20 at once: the rest refused, recorded as a count.
  await Promise.all(Array.from({ length: 20 }, () => new Promise<void>((resolve) => {
    const s = net.connect(rate.port, '127.0.0.1');
    sockets.push(s);
    s.once('close', () => resolve()).once('error', () => {});
    setTimeout(() => s.destroy(), 500).unref();
  })));
  const throttled = await eventFor(`gatewayId=${rate.id}&reason=THROTTLED`);
  assert.equal(throttled.detail, 'connectionRatePerAddress');
  const rows = (await events(`gatewayId=${rate.id}&reason=THROTTLED&limit=100`)).items;
  assert.equal(rows.length, 1, 'one row');
  assert.ok(rows[0]!.count >= 10, `count ${rows[0]!.count}`);
});

test('PROTOCOL_ERROR with the violation: an invalid will topic (0x90 sent), bytes that are not a CONNECT (nothing sent)', { timeout: 30_000 }, async () => {
  const socket = await rawTls(plain);
  socket.write(mqttPacket.generate({
    cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clean: true, clientId: 'c-bad-will', keepalive: 30,
    username: 'meter-0001', password: Buffer.from('pw-one'), will: { topic: 'alarm/#', payload: Buffer.from('x'), qos: 0, retain: false },
  }, { protocolVersion: 5 }));
  const willEvent = await eventFor(`clientId=c-bad-will`);
  assert.equal(willEvent.reason, 'PROTOCOL_ERROR');
  assert.equal(willEvent.detail, 'will_topic_invalid');
  assert.equal(willEvent.mqttReasonCode, 0x90);
  assert.equal(willEvent.username, 'meter-0001');

  const http = await rawTls(plain);
  http.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
  const found = await eventWhere(`gatewayId=${plain.id}&reason=PROTOCOL_ERROR`, (e) => e.detail === 'first_packet_not_connect');
  assert.equal(found.type, 'CONNECT_REFUSED');
  assert.equal(found.mqttReasonCode, null);
  assert.equal(found.clientId, null);
});

test('KEEPALIVE_TIMEOUT, SOCKET_CLOSED while connected, CONNECT_ABANDONED before a CONNECT, TLS_HANDSHAKE_FAILED, CLIENT_ID_IN_USE', { timeout: 40_000 }, async () => {
  assert.equal((await gh.api('POST', `/products/${plain.productKey}/devices`, { username: 'meter-0002', password: 'pw-two' })).status, 201);
  // A CONNECT with keep alive 1 s, then silence: the server ends it after 1.5 s [MQTT-3.1.2-24], v5: DISCONNECT 0x8D.
  const silent = await rawTls(plain);
  silent.write(mqttPacket.generate({
    cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clean: true, clientId: 'c-silent', keepalive: 1,
    username: 'meter-0002', password: Buffer.from('pw-two'),
  }, { protocolVersion: 5 }));
  const timeout = await eventFor('clientId=c-silent&reason=KEEPALIVE_TIMEOUT');
  assert.equal(timeout.type, 'DISCONNECTED');
  assert.equal(timeout.mqttReasonCode, 0x8d);
  assert.equal(timeout.deviceName, 'meter-0002');

  const dropped = await connected(plain, { clientId: 'c-dropped', username: 'meter-0002', password: 'pw-two' });
  dropped.stream.destroy();
  const lost = await eventFor('clientId=c-dropped&reason=SOCKET_CLOSED');
  assert.equal(lost.type, 'DISCONNECTED');
  assert.equal(lost.mqttReasonCode, null);

  const mute = await rawTls(plain);
  mute.end();
  const abandoned = await eventWhere(`gatewayId=${plain.id}&type=CONNECT_ABANDONED`, (e) => e.detail === 'before sending a CONNECT');
  assert.equal(abandoned.reason, 'SOCKET_CLOSED');
  assert.equal(abandoned.clientId, null);

  // A device that does not trust the server's chain ends the handshake.
  await new Promise<void>((resolve) => {
    const s = tls.connect({ host: '127.0.0.1', port: plain.port, ca: pki.rogue.certPem, servername: 'localhost' });
    sockets.push(s);
    s.once('error', () => resolve());
    s.once('secureConnect', () => resolve());
  });
  const handshake = await eventFor(`gatewayId=${plain.id}&reason=TLS_HANDSHAKE_FAILED`);
  assert.equal(handshake.type, 'CONNECT_REFUSED');
  assert.ok(handshake.detail !== null && handshake.detail.length > 0);

  // Another device presenting a client id whose session belongs to meter-0001: 0x85.
  const owner = await connected(plain, { clientId: 'c-owned', username: 'meter-0001', password: 'pw-one' });
  assert.equal(await attempt(plain, { clientId: 'c-owned', username: 'meter-0002', password: 'pw-two' }), 0x85);
  const inUse = await eventFor('clientId=c-owned&reason=CLIENT_ID_IN_USE');
  assert.equal(inUse.mqttReasonCode, 0x85);
  assert.equal(inUse.username, 'meter-0002');
  owner.end(true);
});

test('OpenAPI documents GET /api/v1/events: its filters and the ConnectionEvent schema with every reason', { timeout: 15_000 }, async () => {
  const res = await fetch(`${gh.gatehouse.url}/api/docs/json`);
  const doc = await res.json() as {
    paths: Record<string, { get?: { parameters?: { name: string; in: string }[] } }>;
    components: { schemas: Record<string, { properties: Record<string, { enum?: string[] }> }> };
  };
  const parameters = (doc.paths['/api/v1/events']?.get?.parameters ?? []).filter((p) => p.in === 'query').map((p) => p.name).sort();
  assert.deepEqual(parameters, ['clientId', 'cursor', 'deviceName', 'gatewayId', 'limit', 'reason', 'since', 'type', 'username']);
  const schema = doc.components.schemas.ConnectionEvent;
  for (const reason of ['BAD_CREDENTIALS', 'UNKNOWN_DEVICE', 'CERT_REVOKED', 'OCSP_UNAVAILABLE', 'HTTPS_REJECTED', 'HTTPS_UNAVAILABLE', 'THROTTLED', 'QUOTA_EXCEEDED', 'PROTOCOL_ERROR', 'KEEPALIVE_TIMEOUT', 'SOCKET_CLOSED']) {
    assert.ok(schema?.properties.reason?.enum?.includes(reason), reason);
  }
});
