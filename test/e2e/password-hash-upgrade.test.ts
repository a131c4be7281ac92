/**
 * Issue 17 item 6: password hashes move to the current scrypt cost at the next successful login. An
 * operator raises GATEHOUSE_PASSWORD_SCRYPT_N; hashes stored at the old cost still verify (real devices,
 * MQTT.js over TLS), the first successful login rewrites the hash at the new cost, a failed one does not,
 * and the new hash verifies after another restart (cold cache).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type mqtt from 'mqtt';
import { getPki, type SharedPki } from '../harness/pki.ts';
import { removeDataDir, startTestGatehouse, type TestGatehouse } from '../harness/gatehouse.ts';
import { verifyPassword } from '../../src/registry/passwords.ts';
import { addDevices, Clients, createGateway, waitFor, type GatewayJson } from './platform-support.ts';

const OLD_N = '1024';
const NEW_N = '2048';
let pki: SharedPki;
let gh: TestGatehouse;
let gw: GatewayJson;
let dataDir: string;

before(async () => {
  pki = await getPki();
  const first = await startTestGatehouse({ env: { GATEHOUSE_PASSWORD_SCRYPT_N: OLD_N } });
  dataDir = first.dataDir;
  gw = await createGateway(first, pki, 'hash_fleet');
  await addDevices(first, gw.productKey, ['meter-01', 'meter-02']);
  await first.stop();
  gh = await startTestGatehouse({ dataDir, env: { GATEHOUSE_PASSWORD_SCRYPT_N: NEW_N } });
}, { timeout: 60_000 });
after(async () => {
  await gh.stop();
  await removeDataDir(dataDir);
}, { timeout: 30_000 });

/** The hash as stored (read from the database: the test's process or a worker may have written it). */
const storedHash = async (username: string): Promise<string> =>
  (await gh.query<{ password_hash: string | null }>('select password_hash from devices where product_key = $1 and username = $2', [gw.productKey, username]))[0]?.password_hash ?? 'none';

/** The CONNACK reason code MQTT.js reports for a refused CONNECT. */
async function refusal(clients: Clients, device: string, password: string): Promise<number | undefined> {
  try {
    await clients.connect(gw.port, device, { password });
  } catch (error) {
    return (error as { code?: number }).code;
  }
  return undefined;
}

test('a hash stored at an old cost verifies, is rewritten at the current cost after a login, and a failed login leaves it', { timeout: 60_000 }, async () => {
  const clients = new Clients(pki);
  try {
    const old1 = await storedHash('meter-01');
    const old2 = await storedHash('meter-02');
    assert.match(old1, new RegExp(`^scrypt\\$${OLD_N}\\$8\\$1\\$`));

    assert.equal(await refusal(clients, 'meter-02', 'not-the-password'), 0x86);
    assert.equal(await storedHash('meter-02'), old2, 'a failed login upgrades nothing');

    const device = await clients.connect(gw.port, 'meter-01'); // the old hash still verifies
    const upgraded = await waitFor('the upgraded hash', async () => {
      const h = await storedHash('meter-01');
      return h.startsWith(`scrypt$${NEW_N}$8$1$`) ? h : undefined;
    }, 20_000);
    assert.equal(await verifyPassword(upgraded, 'pw-meter-01'), true);
    assert.equal(await verifyPassword(upgraded, 'pw-meter-02'), false);
    await device.endAsync();

    // Reconnecting (warm cache) and after a restart (cold cache, the new hash read from storage) both work.
    await (await clients.connect(gw.port, 'meter-01')).endAsync();
    await gh.stop();
    gh = await startTestGatehouse({ dataDir, env: { GATEHOUSE_PASSWORD_SCRYPT_N: NEW_N } });
    await waitFor('the gateway listening', async () => {
      const r = await gh.api<{ status: string }>('GET', `/gateways/${gw.id}`);
      return r.json.status === 'RUNNING' ? true : undefined;
    });
    const again: mqtt.MqttClient = await clients.connect(gw.port, 'meter-01');
    await again.endAsync();
    assert.equal(await storedHash('meter-01'), upgraded, 'a current hash is not rewritten');
    assert.equal(await storedHash('meter-02'), old2);
  } finally {
    clients.closeAll();
  }
});
