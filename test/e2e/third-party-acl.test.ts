/**
 * Issue 13: a verification function's result and an HTTPS service's 2xx answer may carry the device's
 * topic rules (`acl`), applied to that session before the gateway's own rules. Rules that do not check
 * out make the answer a backend failure (0x88), never an accept.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type mqtt from 'mqtt';
import { getPki, type SharedPki } from '../harness/pki.ts';
import { freePort, removeDataDir, startTestGatehouse, type TestGatehouse } from '../harness/gatehouse.ts';
import { startHttpsVerifier, type HttpsVerifier } from '../harness/https-verifier.ts';
import { connectOutcome } from '../harness/third-party.ts';
import { testWorkers } from '../harness/gatehouse-workers.ts';

interface GatewayJson { id: string; port: number; productKey: string }

let pki: SharedPki;
let gh: TestGatehouse;
let verifier: HttpsVerifier;
const clients: mqtt.MqttClient[] = [];

/** The gateway's own rules refuse both prefixes; only rules from the answer open a device's part. */
const GATEWAY_RULES = {
  defaultAction: 'ALLOW',
  rules: [{ action: 'DENY', access: 'ALL', topic: 'svc/#' }, { action: 'DENY', access: 'ALL', topic: 'fleet/#' }],
};

const FUNCTION_SOURCE = `function handler(e) {
  if (e.userName.startsWith('acl-')) return { result: true, deviceName: e.userName, acl: [{ action: 'ALLOW', access: 'ALL', topic: 'fleet/\${deviceName}/#' }] };
  if (e.userName.startsWith('badacl-')) return { result: true, deviceName: e.userName, acl: [{ action: 'MAYBE', access: 'ALL', topic: 'fleet/#' }] };
  return { result: true, deviceName: e.userName };
}`;

async function gatewayWith(name: string, thirdParty: Record<string, unknown>): Promise<GatewayJson> {
  const created = await gh.api<GatewayJson>('POST', '/gateways', {
    name, port: await freePort(), authType: 'THIRD_PARTY', thirdParty, accessControl: GATEWAY_RULES,
    certificates: { serverCertificateChain: pki.server.chainPem, serverPrivateKey: pki.server.keyPem },
  });
  assert.equal(created.status, 201, JSON.stringify(created.json));
  return created.json;
}

async function device(gw: GatewayJson, username: string): Promise<mqtt.MqttClient> {
  const outcome = await connectOutcome(pki, gw.port, { username, password: 'pw', clientId: `c-${username}` });
  assert.equal(outcome.code, 0, `${username} connects`);
  clients.push(outcome.client!);
  return outcome.client!;
}

async function pubackCode(client: mqtt.MqttClient, topic: string): Promise<number> {
  return client.publishAsync(topic, 'x', { qos: 1 }).then(() => 0, (err: { code?: number }) => err.code ?? -1);
}

async function subackCodes(client: mqtt.MqttClient, filters: string[]): Promise<number[]> {
  return client.subscribeAsync(filters, { qos: 1 }).then(
    (granted) => granted.map((g) => g.qos),
    (err: { packet?: { granted?: number[] } }) => err.packet?.granted ?? [-1],
  );
}

before(async () => {
  pki = await getPki();
  gh = await startTestGatehouse();
  verifier = await startHttpsVerifier(pki);
  const fn = await gh.api('POST', '/functions', { name: 'rules_from_function', source: FUNCTION_SOURCE });
  assert.equal(fn.status, 201, JSON.stringify(fn.json));
}, { timeout: 60_000 });

after(async () => {
  for (const c of clients) c.end(true);
  await gh.stop();
  await verifier.close();
  await removeDataDir(gh.dataDir);
}, { timeout: 30_000 });

test('a function\'s acl applies to that device before the gateway\'s rules', { timeout: 90_000 }, async () => {
  const gw = await gatewayWith('acl_from_function', { provider: 'FUNCTION', functionName: 'rules_from_function' });
  const withRules = await device(gw, 'acl-dev1');
  assert.equal(await pubackCode(withRules, 'fleet/acl-dev1/up'), 0);
  assert.equal(await pubackCode(withRules, 'fleet/acl-dev2/up'), 0x87);
  assert.equal(await pubackCode(withRules, 'open/news'), 0);
  assert.deepEqual(await subackCodes(withRules, ['fleet/acl-dev1/#', 'fleet/#']), [1, 0x87]);
  // The same gateway, an answer without rules: the gateway's DENY applies.
  const plain = await device(gw, 'plain-dev');
  assert.equal(await pubackCode(plain, 'fleet/plain-dev/up'), 0x87);
  // Rules that do not check out: server unavailable, never an accept.
  assert.equal((await connectOutcome(pki, gw.port, { username: 'badacl-dev', password: 'pw', clientId: 'c-bad' })).code, 0x88);
});

test('an HTTPS service\'s acl applies to that device before the gateway\'s rules', { timeout: 20_000 }, async () => {
  const gw = await gatewayWith('acl_from_https', { provider: 'HTTPS', url: verifier.url, caCertificate: pki.root.certPem });
  const withRules = await device(gw, 'acl:svc-dev1');
  assert.equal(await pubackCode(withRules, 'svc/svc-dev1/up'), 0);
  assert.equal(await pubackCode(withRules, 'svc/svc-dev2/up'), 0x87);
  assert.deepEqual(await subackCodes(withRules, ['svc/svc-dev1/+', 'svc/+/up']), [1, 0x87]);
  const plain = await device(gw, 'ok:svc-dev3');
  assert.equal(await pubackCode(plain, 'svc/svc-dev3/up'), 0x87);
  assert.equal((await connectOutcome(pki, gw.port, { username: 'badacl:svc-dev4', password: 'pw', clientId: 'c-bad' })).code, 0x88);
  // A cached accept keeps its rules: the same credentials again, answered from the cache. Each process keeps its own
  // (GATEHOUSE_TEST_WORKERS: the primary hands each new connection to the next worker): once per process fills them all.
  withRules.end(true);
  for (let i = 0; i < (testWorkers() ?? 1); i++) (await device(gw, 'acl:svc-dev1')).end(true);
  const before = verifier.requestsFor('acl:svc-dev1').length;
  const again = await device(gw, 'acl:svc-dev1');
  assert.equal(verifier.requestsFor('acl:svc-dev1').length, before);
  assert.equal(await pubackCode(again, 'svc/svc-dev1/up'), 0);
  assert.equal(await pubackCode(again, 'svc/svc-dev2/up'), 0x87);
});
