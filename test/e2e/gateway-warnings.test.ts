/**
 * Issue 14, item 4: warnings before trouble, returned with the gateway on every read (not only by the
 * save) — a server chain without its intermediates, certificates expiring within 30 days (and the
 * `gatehouse_gateway_certificate_expiry_days` gauge), client OCSP on while device certificates name no
 * responder (seen with a real MQTT.js client and a real device certificate) — and a parsing script
 * without `transformPayload` refused at save. Real PKI from openssl, real TLS listeners.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import mqtt from 'mqtt';
import { getPki, issueDevice, type SharedPki } from '../harness/pki.ts';
import { freePort, removeDataDir, startTestGatehouse, TEST_ADMIN_TOKEN, type TestGatehouse } from '../harness/gatehouse.ts';
import { connackOf } from '../harness/mqtt-connack.ts';

interface Warning { code: string; message: string; field: string }
interface GatewayJson { id: string; name: string; productKey: string; port: number; status: string; warnings: Warning[] }
interface ErrorJson { error: { code: string; message: string; field: string } }

let pki: SharedPki;
let gh: TestGatehouse;
const created: string[] = [];

before(async () => {
  pki = await getPki();
  gh = await startTestGatehouse();
}, { timeout: 60_000 });
after(async () => {
  await gh.stop();
  await removeDataDir(gh.dataDir);
}, { timeout: 30_000 });

async function createGateway(name: string, body: Record<string, unknown>): Promise<GatewayJson> {
  const reply = await gh.api<GatewayJson>('POST', '/gateways', { name, port: await freePort(), ...body });
  assert.equal(reply.status, 201, JSON.stringify(reply.json));
  created.push(reply.json.id);
  return reply.json;
}

const codes = (warnings: Warning[]): string[] => warnings.map((w) => w.code).sort();

async function metrics(): Promise<string> {
  const res = await fetch(`${gh.gatehouse.url}/api/v1/metrics`, { headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}` } });
  return res.text();
}

test('a server chain of the leaf alone, issued by an intermediate: GW_WARN_SERVER_CHAIN_INCOMPLETE on save, on GET and in the list', { timeout: 45_000 }, async () => {
  const leafOnly = await createGateway('leaf_only', { certificates: { serverCertificateChain: pki.server.certPem, serverPrivateKey: pki.server.keyPem } });
  assert.deepEqual(codes(leafOnly.warnings), ['GW_WARN_SERVER_CHAIN_INCOMPLETE']);
  const [warning] = leafOnly.warnings;
  assert.equal(warning?.field, 'certificates.serverCertificateChain');
  assert.match(warning?.message ?? '', /Gatehouse Test Intermediate|intermediate/i);
  assert.match(warning?.message ?? '', /unable to verify the first certificate/);
  assert.deepEqual(codes((await gh.api<GatewayJson>('GET', `/gateways/${leafOnly.id}`)).json.warnings), ['GW_WARN_SERVER_CHAIN_INCOMPLETE']);
  const listed = (await gh.api<{ items: GatewayJson[] }>('GET', '/gateways')).json.items.find((g) => g.id === leafOnly.id);
  assert.deepEqual(codes(listed?.warnings ?? []), ['GW_WARN_SERVER_CHAIN_INCOMPLETE']);

  // Fixed by an edit that adds the intermediate: the warning goes.
  const fixed = await gh.api<GatewayJson>('PATCH', `/gateways/${leafOnly.id}`, { certificates: { serverCertificateChain: pki.server.chainPem, serverPrivateKey: pki.server.keyPem } });
  assert.deepEqual(fixed.json.warnings, []);
  assert.deepEqual((await gh.api<GatewayJson>('GET', `/gateways/${leafOnly.id}`)).json.warnings, []);
});

test('no chain warning for a complete chain, a self-signed leaf, or a leaf issued by the trusted certificate', { timeout: 20_000 }, async () => {
  const complete = await createGateway('chain_complete', { certificates: { serverCertificateChain: pki.server.chainPem, serverPrivateKey: pki.server.keyPem } });
  assert.deepEqual(complete.warnings, []);
  const selfSigned = await gh.api<{ certificatePem: string; privateKeyPem: string }>('POST', '/certificates/self-signed', { hosts: ['localhost'] });
  assert.equal(selfSigned.status, 201, JSON.stringify(selfSigned.json));
  const own = await createGateway('self_signed_leaf', { certificates: { serverCertificateChain: selfSigned.json.certificatePem, serverPrivateKey: selfSigned.json.privateKeyPem } });
  assert.deepEqual(own.warnings, []);
  const byTrusted = await createGateway('leaf_by_trusted', {
    certificates: { serverCertificateChain: pki.server.certPem, serverPrivateKey: pki.server.keyPem, trustedCertificate: pki.intermediate.certPem },
  });
  assert.deepEqual(byTrusted.warnings, []);
});

test('a server certificate expiring in 10 days: GW_WARN_CERT_EXPIRES_SOON with the date, and the expiry gauge shows the days left', { timeout: 20_000 }, async () => {
  const shortLived = await issueDevice(pki, 'localhost', { days: 10 }); // any leaf the key matches serves TLS
  const gateway = await createGateway('expiring_soon', { certificates: { serverCertificateChain: shortLived.chainPem, serverPrivateKey: shortLived.keyPem } });
  assert.deepEqual(codes(gateway.warnings), ['GW_WARN_CERT_EXPIRES_SOON']);
  assert.match(gateway.warnings[0]?.message ?? '', /server certificate "localhost" .* expires on \d{4}-\d\d-\d\dT.* \(in (9|10) days\)/);
  assert.equal(gateway.status, 'RUNNING');
  const text = await metrics();
  const days = new RegExp(`gatehouse_gateway_certificate_expiry_days\\{gateway="expiring_soon",certificate="serverCertificateChain"\\} (-?\\d+)`).exec(text)?.[1];
  assert.ok(days === '9' || days === '10', `gauge: ${days}`);
  // A long-lived chain is far from the threshold and warns nothing.
  const far = new RegExp(`gatehouse_gateway_certificate_expiry_days\\{gateway="chain_complete",certificate="serverCertificateChain"\\} (\\d+)`).exec(text)?.[1];
  assert.ok(far !== undefined && Number(far) > 300, `gauge: ${far}`);
});

test('a trusted certificate expiring in 5 days warns on its own field', { timeout: 20_000 }, async () => {
  const soon = await issueDevice(pki, 'short-trusted', { days: 5 });
  const gateway = await createGateway('trusted_expiring', {
    certificates: { serverCertificateChain: pki.server.chainPem, serverPrivateKey: pki.server.keyPem, trustedCertificate: soon.certPem },
  });
  const expiring = gateway.warnings.filter((w) => w.code === 'GW_WARN_CERT_EXPIRES_SOON');
  assert.deepEqual(expiring.map((w) => w.field), ['certificates.trustedCertificate']);
  assert.deepEqual(codes((await gh.api<GatewayJson>('GET', `/gateways/${gateway.id}`)).json.warnings), codes(gateway.warnings));
});

test('client OCSP on, a device certificate that names no responder: the device is refused (0x88) and the gateway warns GW_WARN_OCSP_NO_RESPONDER', { timeout: 30_000 }, async () => {
  const gateway = await createGateway('ocsp_no_responder', {
    authType: 'ONE_PARTY', x509: { enabled: true }, ocsp: { mode: 'CLIENT' },
    certificates: { serverCertificateChain: pki.server.chainPem, serverPrivateKey: pki.server.keyPem, deviceRootCertificates: pki.caBundlePem },
  });
  assert.deepEqual(gateway.warnings, [], 'nothing to say before a device shows up');
  assert.equal((await gh.api('POST', `/products/${gateway.productKey}/devices`, { username: 'meter-0001', password: 'pw-one' })).status, 201);
  const noAia = await issueDevice(pki, 'device-no-aia', { ocspUrl: null });
  const client = mqtt.connect({
    host: '127.0.0.1', port: gateway.port, protocol: 'mqtts', ca: pki.root.certPem, servername: 'localhost', reconnectPeriod: 0,
    connectTimeout: 8000, protocolVersion: 5, username: 'meter-0001', password: 'pw-one', cert: noAia.chainPem, key: noAia.keyPem,
  });
  const code = await connackOf(client).then(() => 0, (err: { code?: number }) => err.code);
  client.end(true);
  assert.equal(code, 0x88, 'server unavailable, the symptom the operator saw');
  const got = (await gh.api<GatewayJson>('GET', `/gateways/${gateway.id}`)).json;
  const warning = got.warnings.find((w) => w.code === 'GW_WARN_OCSP_NO_RESPONDER');
  assert.ok(warning !== undefined, JSON.stringify(got.warnings));
  assert.equal(warning.field, 'ocsp.mode');
  assert.match(warning.message, /1 device certificate check\(s\) found no OCSP responder.*refused/);
});

test('a parsing script without transformPayload is refused at save: GW_ERR_SCRIPT_NO_TRANSFORM naming dataParsing.script', { timeout: 20_000 }, async () => {
  const certificates = { serverCertificateChain: pki.server.chainPem, serverPrivateKey: pki.server.keyPem };
  const noEntry = await gh.api<ErrorJson>('POST', '/gateways', {
    name: 'no_transform', port: await freePort(), certificates, dataParsing: { enabled: true, script: 'function transform(topic, bytes) { return {}; }' },
  });
  assert.equal(noEntry.status, 400, JSON.stringify(noEntry.json));
  assert.equal(noEntry.json.error.code, 'GW_ERR_SCRIPT_NO_TRANSFORM');
  assert.equal(noEntry.json.error.field, 'dataParsing.script');
  assert.equal((await gh.api<{ items: GatewayJson[] }>('GET', '/gateways')).json.items.some((g) => g.name === 'no_transform'), false, 'nothing saved');

  // Top-level code that throws cannot run either.
  const throws = await gh.api<ErrorJson>('POST', '/gateways', {
    name: 'throws_at_load', port: await freePort(), certificates,
    dataParsing: { enabled: true, script: 'throw new Error("boom"); function transformPayload() { return {}; }' },
  });
  assert.equal(throws.status, 400);
  assert.equal(throws.json.error.code, 'GW_ERR_SCRIPT_SYNTAX');

  // An edit too; a good script saves.
  const good = await createGateway('with_transform', { certificates, dataParsing: { enabled: true, script: 'function transformPayload(topic, bytes) { return { n: bytes.length }; }' } });
  const edit = await gh.api<ErrorJson>('PATCH', `/gateways/${good.id}`, { dataParsing: { script: 'var transformPayload = 3;' } });
  assert.equal(edit.status, 400);
  assert.equal(edit.json.error.code, 'GW_ERR_SCRIPT_NO_TRANSFORM');
  const exported = await gh.api<GatewayJson>('PATCH', `/gateways/${good.id}`, { dataParsing: { script: 'module.exports.transformPayload = function (t, b) { return { t }; };' } });
  assert.equal(exported.status, 200, JSON.stringify(exported.json));
});
