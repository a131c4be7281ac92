/**
 * Issue 4, X.509 device verification end to end: gateways created over HTTP with the device root
 * bundle (intermediate + root, and intermediates only), real TLS clients (MQTT.js) presenting the
 * generated device certificates, the refusal reasons in the API view, and the certificate facts on
 * the device.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import mqtt from 'mqtt';
import { getPki, issueDevice, type IssuedCert, type SharedPki } from '../harness/pki.ts';
import { freePort, removeDataDir, startTestGatehouse, type TestGatehouse } from '../harness/gatehouse.ts';
import { connackOf } from '../harness/mqtt-connack.ts';

interface GatewayJson {
  id: string; port: number; productKey: string; status: string;
  ocspStatus: { mode: string; x509Refusals: Record<string, number> } | null;
}
interface DeviceJson {
  deviceName: string; status: string;
  certificate: { cn: string | null; serial: string; issuer: string; fingerprint256: string } | null;
}

let pki: SharedPki;
let gh: TestGatehouse;
let full: GatewayJson;
let partial: GatewayJson;
const clients: mqtt.MqttClient[] = [];

/** Connects with a client certificate; rejects on CONNACK refusal, socket error or close before CONNACK. */
function connect(port: number, cert: IssuedCert | null, options: mqtt.IClientOptions & { leafOnly?: boolean } = {}): Promise<mqtt.MqttClient> {
  const client = mqtt.connect({
    host: '127.0.0.1', port, protocol: 'mqtts', ca: pki.root.certPem, servername: 'localhost', reconnectPeriod: 0, connectTimeout: 5000,
    protocolVersion: 5, username: 'meter-0001', password: 'pw-one',
    ...(cert === null ? {} : { cert: options.leafOnly === true ? cert.certPem : cert.chainPem, key: cert.keyPem }),
    ...options,
  });
  clients.push(client);
  return connackOf(client).then(() => client);
}

async function refused(port: number, cert: IssuedCert | null, options: mqtt.IClientOptions & { leafOnly?: boolean } = {}): Promise<{ code?: number; message: string }> {
  try {
    const c = await connect(port, cert, options);
    c.end(true);
  } catch (err) {
    return err as { code?: number; message: string };
  }
  throw new Error('connection was accepted');
}

async function createGateway(name: string, deviceRootCertificates: string): Promise<GatewayJson> {
  const created = await gh.api<GatewayJson>('POST', '/gateways', {
    name,
    port: await freePort(),
    authType: 'ONE_PARTY',
    x509: { enabled: true },
    certificates: { serverCertificateChain: pki.server.chainPem, serverPrivateKey: pki.server.keyPem, deviceRootCertificates },
  });
  assert.equal(created.status, 201, JSON.stringify(created.json));
  assert.equal(created.json.status, 'RUNNING');
  const device = await gh.api('POST', `/products/${created.json.productKey}/devices`, { username: 'meter-0001', password: 'pw-one' });
  assert.equal(device.status, 201, JSON.stringify(device.json));
  return created.json;
}

async function refusals(gateway: GatewayJson): Promise<Record<string, number>> {
  const got = await gh.api<GatewayJson>('GET', `/gateways/${gateway.id}`);
  return got.json.ocspStatus?.x509Refusals ?? {};
}

before(async () => {
  pki = await getPki();
  gh = await startTestGatehouse();
  full = await createGateway('x509_full_bundle', pki.caBundlePem);
  partial = await createGateway('x509_intermediate_only', pki.intermediate.certPem);
}, { timeout: 60_000 });

after(async () => {
  for (const c of clients) c.end(true);
  await gh.stop();
  await removeDataDir(gh.dataDir);
}, { timeout: 30_000 });

test('a good device certificate and the right password connect; the device shows its certificate facts', { timeout: 60_000 }, async () => {
  const c = await connect(full.port, pki.devices.good);
  await c.endAsync();
  let device = await gh.api<DeviceJson>('GET', `/products/${full.productKey}/devices/meter-0001`);
  for (let i = 0; i < 50 && device.json.certificate === null; i++) {
    await new Promise((r) => setTimeout(r, 50)); // recorded right after CONNACK
    device = await gh.api<DeviceJson>('GET', `/products/${full.productKey}/devices/meter-0001`);
  }
  const cert = new X509Certificate(pki.devices.good.certPem);
  assert.deepEqual(device.json.certificate, {
    cn: 'device-001',
    serial: pki.devices.good.serial,
    issuer: new X509Certificate(pki.intermediate.certPem).subject.replace(/\n/g, ', '),
    fingerprint256: cert.fingerprint256,
  });
});

test('a device sending only its leaf verifies against the intermediate + root bundle', { timeout: 5_000 }, async () => {
  const c = await connect(full.port, pki.devices.good, { leafOnly: true, protocolVersion: 4 });
  await c.endAsync();
});

test('X.509 adds to one-party verification: a good certificate with a wrong password gets 0x86', { timeout: 5_000 }, async () => {
  assert.equal((await refused(full.port, pki.devices.good, { password: 'wrong' })).code, 0x86);
});

test('missing, expired, wrong-CA and self-signed client certificates are refused at the handshake, with the reason', { timeout: 5_000 }, async () => {
  const before = await refusals(full);
  for (const cert of [null, pki.devices.expired, pki.devices.wrongCa, pki.devices.selfSigned]) {
    const err = await refused(full.port, cert);
    assert.equal(err.code, undefined, `${cert?.cn ?? 'no certificate'}: refused by TLS, not by CONNACK (${err.message})`);
  }
  const after = await refusals(full);
  const grew = (reason: string): boolean => (after[reason] ?? 0) > (before[reason] ?? 0);
  assert.ok(grew('no_client_certificate'), JSON.stringify(after));
  assert.ok(grew('cert_has_expired'), JSON.stringify(after));
  assert.ok(grew('depth_zero_self_signed_cert'), JSON.stringify(after));
  const total = (r: Record<string, number>): number => Object.values(r).reduce((a, b) => a + b, 0);
  assert.equal(total(after) - total(before), 4, JSON.stringify(after));
});

test('a bundle of intermediates only: good devices connect (leaf alone or with chain), bad ones are refused', { timeout: 5_000 }, async () => {
  await (await connect(partial.port, pki.devices.good, { leafOnly: true })).endAsync();
  await (await connect(partial.port, pki.devices.good)).endAsync();
  for (const cert of [null, pki.devices.expired, pki.devices.wrongCa, pki.devices.selfSigned]) {
    const err = await refused(partial.port, cert, { leafOnly: true });
    assert.equal(err.code, undefined, `${cert?.cn ?? 'no certificate'}: ${err.message}`);
  }
  const reasons = await refusals(partial);
  assert.ok((reasons.cert_has_expired ?? 0) >= 1, JSON.stringify(reasons));
  assert.ok((reasons.unable_to_get_issuer_cert ?? 0) >= 1, JSON.stringify(reasons));
  assert.ok((reasons.depth_zero_self_signed_cert ?? 0) >= 1, JSON.stringify(reasons));
});

test('turning X.509 off lets devices in without a certificate; the listener stays up', { timeout: 5_000 }, async () => {
  const patched = await gh.api('PATCH', `/gateways/${full.id}`, { x509: { enabled: false }, certificates: { deviceRootCertificates: null } });
  assert.equal(patched.status, 200, JSON.stringify(patched.json));
  await (await connect(full.port, null)).endAsync();
});

test('a third-party check gets the certificate CN (certificateCommonName); the device created carries the certificate', { timeout: 15_000 }, async () => {
  const fn = await gh.api('POST', '/functions', {
    name: 'verify_by_cn',
    source: 'function handler(e) { return { result: e.certificateCommonName === "device-001", deviceName: "cn-" + e.certificateCommonName }; }',
  });
  assert.equal(fn.status, 201, JSON.stringify(fn.json));
  const created = await gh.api<GatewayJson>('POST', '/gateways', {
    name: 'x509_third_party',
    port: await freePort(),
    authType: 'THIRD_PARTY',
    thirdParty: { provider: 'FUNCTION', functionName: 'verify_by_cn' },
    x509: { enabled: true },
    certificates: { serverCertificateChain: pki.server.chainPem, serverPrivateKey: pki.server.keyPem, deviceRootCertificates: pki.caBundlePem },
  });
  assert.equal(created.status, 201, JSON.stringify(created.json));
  const gw = created.json;
  await (await connect(gw.port, pki.devices.good, { username: 'anyone', password: 'anything' })).endAsync();
  // The device is recorded right after CONNACK, not before: wait for it.
  let device = await gh.api<DeviceJson>('GET', `/products/${gw.productKey}/devices/cn-device-001`);
  for (let i = 0; i < 50 && device.status !== 200; i++) {
    await new Promise((r) => setTimeout(r, 50));
    device = await gh.api<DeviceJson>('GET', `/products/${gw.productKey}/devices/cn-device-001`);
  }
  assert.equal(device.status, 200, JSON.stringify(device.json));
  assert.equal(device.json.certificate?.cn, 'device-001');
  assert.equal(device.json.certificate?.serial, pki.devices.good.serial);
  const other = await issueDevice(pki, 'device-999');
  assert.equal((await refused(gw.port, other, { username: 'anyone', password: 'anything' })).code, 0x86);
});
