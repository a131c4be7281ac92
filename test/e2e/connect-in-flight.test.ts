/**
 * Issue 13: what the operator changes while a CONNECT is being verified applies to that CONNECT. Between
 * the start of verification (a password hash, a function, a call to the customer's service, a database
 * read) and the CONNACK, the operator disables or deletes the device, or lowers a gateway limit: the
 * connection must not get in past it. The window is held open deterministically: a data-plane call of the
 * registry (the hash, the device read, the function's source) or the HTTPS service's answer waits until
 * the test has made its change; the held call is made at once, so its answer is as of before the change
 * (a slow database returns what it read). Real TLS gateway, MQTT.js v5 and v3.1.1.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import mqtt from 'mqtt';
import { getPki, type SharedPki } from '../harness/pki.ts';
import { freePort, removeDataDir, startTestGatehouse, type TestGatehouse } from '../harness/gatehouse.ts';
import { startHttpsVerifier, type HttpsVerifier } from '../harness/https-verifier.ts';
import { waitFor } from '../harness/third-party.ts';
import { inProcessOnly } from '../harness/gatehouse-workers.ts';
import { connackOf } from '../harness/mqtt-connack.ts';

interface GatewayJson { id: string; port: number; productKey: string }

let pki: SharedPki;
let gh: TestGatehouse;
let verifier: HttpsVerifier;
const clients: mqtt.MqttClient[] = [];

/**
 * Holds the next `count` calls of the registry's `name` that `when` picks: each is made at once (its
 * answer is as of now) and answered when the test releases them. `reached` resolves once all were made.
 */
function holdCalls(name: 'verifyPassword' | 'findDevice' | 'getFunction', when: (...args: unknown[]) => boolean = () => true, count = 1): { reached: Promise<void>; release: () => void } {
  const registry = gh.gatehouse.registry as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>;
  const original = registry[name]!;
  let release!: () => void;
  const released = new Promise<void>((resolve) => { release = resolve; });
  let reached!: () => void;
  const allReached = new Promise<void>((resolve) => { reached = resolve; });
  let held = 0;
  registry[name] = function (this: unknown, ...args: unknown[]) {
    if (!when(...args)) return original.apply(this, args);
    if (++held === count) {
      delete registry[name]; // the class's own method again
      reached();
    }
    const answer = original.apply(this, args);
    return released.then(() => answer);
  };
  return { reached: allReached, release };
}

async function gatewayWith(name: string, settings: Record<string, unknown>): Promise<GatewayJson> {
  const created = await gh.api<GatewayJson>('POST', '/gateways', {
    name, port: await freePort(), ...settings,
    certificates: { serverCertificateChain: pki.server.chainPem, serverPrivateKey: pki.server.keyPem },
  });
  assert.equal(created.status, 201, JSON.stringify(created.json));
  return created.json;
}

/** Connects; resolves with the CONNACK code (0 = accepted, the client kept) and the CONNACK itself. */
function connect(gw: GatewayJson, options: mqtt.IClientOptions): Promise<{ code: number; client?: mqtt.MqttClient; connack?: mqtt.IConnackPacket }> {
  const client = mqtt.connect({
    host: '127.0.0.1', port: gw.port, protocol: 'mqtts', ca: pki.root.certPem, servername: 'localhost',
    reconnectPeriod: 0, connectTimeout: 15_000, protocolVersion: 5, ...options,
  });
  clients.push(client);
  return connackOf(client).then((connack) => ({ code: 0, client, connack }), (err: Error & { code?: number | string }) => {
    client.end(true);
    if (typeof err.code === 'number') return { code: err.code };
    throw err;
  });
}

/** The connection stays open for a PING round trip after CONNACK: it was not kicked on the spot. */
function disconnected(client: mqtt.MqttClient): Promise<number | undefined> {
  return new Promise((resolve) => {
    client.once('disconnect', (packet) => resolve(packet.reasonCode));
    client.once('close', () => resolve(undefined));
  });
}

async function createDevice(gw: GatewayJson, username: string, password: string): Promise<void> {
  const r = await gh.api('POST', `/products/${gw.productKey}/devices`, { username, password });
  assert.equal(r.status, 201, JSON.stringify(r.json));
}

const forDevice = (deviceName: string) => (_productKey: unknown, name: unknown) => name === deviceName;

/** The window is held open in the registry object of the test's process: a worker's cannot be reached. */
const skip = inProcessOnly('holds a call of the registry object in flight while the test makes its change');

before(async () => {
  if (skip !== false) return;
  pki = await getPki();
  gh = await startTestGatehouse();
  verifier = await startHttpsVerifier(pki);
  const fn = await gh.api('POST', '/functions', {
    name: 'accept_in_flight', source: 'function handler(e) { return { result: e.password === "pw-fn", deviceName: e.userName }; }',
  });
  assert.equal(fn.status, 201, JSON.stringify(fn.json));
}, { timeout: 60_000 });

after(async () => {
  if (skip !== false) return;
  for (const c of clients) c.end(true);
  await gh.stop();
  await verifier.close();
  await removeDataDir(gh.dataDir);
}, { timeout: 30_000 });

test('one-party: a device disabled or deleted while its password is being hashed is refused (0x87 / 5; deleted 0x86)', { skip, timeout: 30_000 }, async () => {
  const gw = await gatewayWith('inflight_onep', { authType: 'ONE_PARTY' });
  const cases = [
    { device: 'dev-dis5', protocolVersion: 5 as const, change: 'disable', expected: 0x87 },
    { device: 'dev-dis4', protocolVersion: 4 as const, change: 'disable', expected: 5 },
    { device: 'dev-del5', protocolVersion: 5 as const, change: 'delete', expected: 0x86 },
  ];
  for (const c of cases) {
    await createDevice(gw, c.device, 'pw-inflight');
    const hash = holdCalls('verifyPassword');
    const outcome = connect(gw, { clientId: `c-${c.device}`, username: c.device, password: 'pw-inflight', protocolVersion: c.protocolVersion });
    await hash.reached;
    const path = `/products/${gw.productKey}/devices/${c.device}`;
    const changed = c.change === 'disable' ? await gh.api('PATCH', path, { disabled: true }) : await gh.api('DELETE', path);
    assert.ok(changed.status === 200 || changed.status === 204, JSON.stringify(changed));
    hash.release();
    assert.equal((await outcome).code, c.expected, `${c.device} (${c.change}, v${c.protocolVersion})`);
  }
});

/** A third-party device exists once its first connection recorded it. */
async function firstConnection(gw: GatewayJson, username: string, password: string, deviceName: string): Promise<void> {
  const first = await connect(gw, { clientId: `first-${deviceName}`, username, password });
  assert.equal(first.code, 0);
  await first.client!.endAsync();
  await waitFor(async () => ((await gh.api('GET', `/products/${gw.productKey}/devices/${deviceName}`)).status === 200 ? true : undefined));
}

for (const method of ['function', 'https'] as const) {
  test(`${method}: a device disabled while its verification is in flight, or while its state is being read, is refused (0x87)`, { skip, timeout: 30_000 }, async () => {
    const gw = method === 'function'
      ? await gatewayWith('inflight_fn', { authType: 'THIRD_PARTY', thirdParty: { provider: 'FUNCTION', functionName: 'accept_in_flight' } })
      : await gatewayWith('inflight_https', { authType: 'THIRD_PARTY', thirdParty: { provider: 'HTTPS', url: verifier.url, caCertificate: pki.root.certPem } });
    const login = (device: string) => method === 'function'
      ? { first: { username: device, password: 'pw-fn' }, held: { username: device, password: 'pw-fn' } }
      : { first: { username: `ok:${device}`, password: 'pw' }, held: { username: `hold:${device}`, password: 'pw' } };
    const disable = async (device: string) => assert.equal((await gh.api('PATCH', `/products/${gw.productKey}/devices/${device}`, { disabled: true })).status, 200);

    // 1. The verification itself in flight: the function's source being fetched (saving it again drops the
    //    compiled copy), or the customer's service not having answered yet.
    const early = `dev-early-${method}`;
    await firstConnection(gw, login(early).first.username, login(early).first.password, early);
    let releaseVerification: () => void;
    let verificationReached: Promise<void>;
    if (method === 'function') {
      const source = (await gh.api<{ source: string }>('GET', '/functions/accept_in_flight')).json.source;
      assert.equal((await gh.api('PUT', '/functions/accept_in_flight', { source })).status, 200);
      const fetch = holdCalls('getFunction');
      releaseVerification = fetch.release;
      verificationReached = fetch.reached;
    } else {
      verificationReached = verifier.whenHeld();
      releaseVerification = () => verifier.releaseHeld();
    }
    const during = connect(gw, { clientId: `c-${early}`, ...login(early).held });
    await verificationReached;
    await disable(early);
    releaseVerification();
    assert.equal((await during).code, 0x87);

    // 2. The verification said yes; the device's state is being read when the operator disables it.
    const late = `dev-late-${method}`;
    await firstConnection(gw, login(late).first.username, login(late).first.password, late);
    const read = holdCalls('findDevice', forDevice(late));
    const pending = connect(gw, { clientId: `c-${late}`, ...login(late).first });
    await read.reached;
    await disable(late);
    read.release();
    assert.equal((await pending).code, 0x87);
  });
}

test('limits lowered while CONNECTs are being verified: maxConnections (also among concurrent ones), maxSessionExpirySeconds; a raised maxPacketSize is what CONNACK announces', { skip, timeout: 40_000 }, async () => {
  const gw = await gatewayWith('inflight_limits', { authType: 'ONE_PARTY', limits: { maxPacketSize: 2048 } });
  for (const d of ['lim-0001', 'lim-0002', 'lim-0003', 'lim-0004', 'lim-0005', 'lim-0006', 'lim-0007']) await createDevice(gw, d, 'pw-lim');
  const as = (device: string, extra: mqtt.IClientOptions = {}) => ({ clientId: `c-${device}`, username: device, password: 'pw-lim', ...extra });
  const setLimits = async (limits: Record<string, number | null>) => assert.equal((await gh.api('PATCH', `/gateways/${gw.id}`, { limits })).status, 200);

  // maxConnections lowered to 1 while lim-0002 is verified, lim-0001 connected: v5 0x97.
  const present = await connect(gw, as('lim-0001'));
  assert.equal(present.code, 0);
  let hash = holdCalls('verifyPassword');
  let pending = connect(gw, as('lim-0002'));
  await hash.reached;
  await setLimits({ maxConnections: 1 });
  hash.release();
  assert.equal((await pending).code, 0x97);
  await present.client!.endAsync();

  // Two CONNECTs verified at once under maxConnections 1, nobody connected: both passed the check made
  // before verification; one gets in, the other is refused (v3.1.1: 3).
  hash = holdCalls('verifyPassword', () => true, 2);
  const both = [connect(gw, as('lim-0003', { protocolVersion: 4 })), connect(gw, as('lim-0004', { protocolVersion: 4 }))];
  await hash.reached;
  hash.release();
  const codes = (await Promise.all(both)).map((o) => o.code).sort();
  assert.deepEqual(codes, [0, 3]);
  for (const o of await Promise.all(both)) await o.client?.endAsync();
  await setLimits({ maxConnections: null });

  // maxSessionExpirySeconds lowered to 60 while verified: the session gets 60 s and CONNACK says so.
  hash = holdCalls('verifyPassword');
  pending = connect(gw, as('lim-0005', { clean: false, properties: { sessionExpiryInterval: 3600 } }));
  await hash.reached;
  await setLimits({ maxSessionExpirySeconds: 60 });
  hash.release();
  const lowered = await pending;
  assert.equal(lowered.code, 0);
  assert.equal(lowered.connack!.properties?.sessionExpiryInterval, 60);
  await lowered.client!.endAsync();

  // maxPacketSize raised from 2048 while verified: CONNACK announces the new size, and it holds.
  hash = holdCalls('verifyPassword');
  pending = connect(gw, as('lim-0006'));
  await hash.reached;
  await setLimits({ maxPacketSize: 65536 });
  hash.release();
  const raised = await pending;
  assert.equal(raised.code, 0);
  assert.equal(raised.connack!.properties?.maximumPacketSize, 65536);
  const gone = disconnected(raised.client!);
  await raised.client!.publishAsync('lim/big', Buffer.alloc(8192, 1), { qos: 1 });
  await raised.client!.endAsync();
  assert.equal(await gone, undefined); // closed by us, not DISCONNECT 0x95 from the gateway
});
