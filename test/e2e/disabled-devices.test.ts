/**
 * Issue 13: disabled means disabled, whoever verifies the device. For a one-party gateway, a
 * verification function and the customer's HTTPS service: a DISABLED device is refused at CONNECT
 * (v5 0x87, v3.1.1 5), a connected one is disconnected (0x98) when the operator disables it, and
 * deleting a device disconnects it too.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import mqtt from 'mqtt';
import { getPki, type SharedPki } from '../harness/pki.ts';
import { freePort, removeDataDir, startTestGatehouse, type TestGatehouse } from '../harness/gatehouse.ts';
import { startHttpsVerifier, type HttpsVerifier } from '../harness/https-verifier.ts';
import { connectOutcome, waitFor } from '../harness/third-party.ts';

interface GatewayJson { id: string; port: number; productKey: string }

let pki: SharedPki;
let gh: TestGatehouse;
let verifier: HttpsVerifier;
const clients: mqtt.MqttClient[] = [];

async function gatewayWith(name: string, settings: Record<string, unknown>): Promise<GatewayJson> {
  const created = await gh.api<GatewayJson>('POST', '/gateways', {
    name, port: await freePort(), ...settings,
    certificates: { serverCertificateChain: pki.server.chainPem, serverPrivateKey: pki.server.keyPem },
  });
  assert.equal(created.status, 201, JSON.stringify(created.json));
  return created.json;
}

before(async () => {
  pki = await getPki();
  gh = await startTestGatehouse();
  verifier = await startHttpsVerifier(pki);
  const fn = await gh.api('POST', '/functions', {
    name: 'accept_all', source: 'function handler(e) { return { result: e.password === "pw-fn", deviceName: e.userName }; }',
  });
  assert.equal(fn.status, 201, JSON.stringify(fn.json));
}, { timeout: 60_000 });

after(async () => {
  for (const c of clients) c.end(true);
  await gh.stop();
  await verifier.close();
  await removeDataDir(gh.dataDir);
}, { timeout: 30_000 });

async function connect(gw: GatewayJson, username: string, password: string, protocolVersion: 4 | 5 = 5): Promise<{ code: number; client?: mqtt.MqttClient }> {
  const outcome = await connectOutcome(pki, gw.port, { username, password, clientId: `c-${username}-${protocolVersion}`, protocolVersion });
  if (outcome.client) clients.push(outcome.client);
  return outcome;
}

function disconnectReason(client: mqtt.MqttClient): Promise<number | undefined> {
  return new Promise((resolve) => client.once('disconnect', (packet) => resolve(packet.reasonCode)));
}

const METHODS: { name: string; settings: () => Record<string, unknown>; username: string; deviceName: string; password: string; seed?: (gw: GatewayJson) => Promise<void> }[] = [
  {
    name: 'one-party', settings: () => ({ authType: 'ONE_PARTY' }), username: 'dev-onep', deviceName: 'dev-onep', password: 'pw-1',
    seed: async (gw) => {
      const r = await gh.api('POST', `/products/${gw.productKey}/devices`, { username: 'dev-onep', password: 'pw-1' });
      assert.equal(r.status, 201, JSON.stringify(r.json));
    },
  },
  { name: 'function', settings: () => ({ authType: 'THIRD_PARTY', thirdParty: { provider: 'FUNCTION', functionName: 'accept_all' } }), username: 'dev-func', deviceName: 'dev-func', password: 'pw-fn' },
  {
    name: 'https', settings: () => ({ authType: 'THIRD_PARTY', thirdParty: { provider: 'HTTPS', url: verifier.url, caCertificate: pki.root.certPem } }),
    username: 'ok:dev-https', deviceName: 'dev-https', password: 'pw-any',
  },
];

for (const method of METHODS) {
  test(`${method.name}: a disabled device is refused (0x87 / 5) and kicked (0x98); deleting it kicks it`, { timeout: 60_000 }, async () => {
    const gw = await gatewayWith(`disabled_${method.name.replace('-', '_')}`, method.settings());
    await method.seed?.(gw);
    const device = `/products/${gw.productKey}/devices/${method.deviceName}`;
    const first = await connect(gw, method.username, method.password);
    assert.equal(first.code, 0);
    // A third-party device's record is written after its CONNACK (recording a connection never delays
    // one), so it may not be there yet on any database but the old synchronous SQLite driver's.
    await waitFor(async () => ((await gh.api('GET', device)).status === 200 ? true : undefined));
    const kicked = disconnectReason(first.client!);
    assert.equal((await gh.api('PATCH', device, { disabled: true })).status, 200);
    assert.equal(await kicked, 0x98);

    assert.equal((await connect(gw, method.username, method.password, 5)).code, 0x87);
    assert.equal((await connect(gw, method.username, method.password, 4)).code, 5);

    assert.equal((await gh.api('PATCH', device, { disabled: false })).status, 200);
    const back = await connect(gw, method.username, method.password);
    assert.equal(back.code, 0);
    const deleted = disconnectReason(back.client!);
    assert.equal((await gh.api('DELETE', device)).status, 204);
    assert.equal(await deleted, 0x98);
  });
}
