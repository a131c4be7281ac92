/**
 * Issue 17: bounded device state. A real device (MQTT.js over TLS) posts Alink property posts; a post
 * that would leave the device with more properties than GATEHOUSE_DEVICE_MAX_PROPERTIES, or more
 * bytes than GATEHOUSE_DEVICE_MAX_PROPERTIES_BYTES, is refused whole and counted in /metrics; updates of
 * properties it already has still apply.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type mqtt from 'mqtt';
import { getPki } from '../harness/pki.ts';
import { removeDataDir, startTestGatehouse, TEST_ADMIN_TOKEN, type TestGatehouse } from '../harness/gatehouse.ts';
import { addDevices, Clients, createGateway, waitFor, type GatewayJson } from './platform-support.ts';

let gh: TestGatehouse;
let gw: GatewayJson;
let clients: Clients;
let device: mqtt.MqttClient;

before(async () => {
  const pki = await getPki();
  gh = await startTestGatehouse({ platform: { deviceProperties: { maxCount: 50, maxBytes: 4096 } } });
  clients = new Clients(pki);
  gw = await createGateway(gh, pki, 'prop_fleet');
  await addDevices(gh, gw.productKey, ['sensor-01']);
  device = await clients.connect(gw.port, 'sensor-01');
}, { timeout: 60_000 });
after(async () => {
  clients.closeAll();
  await gh.stop();
  await removeDataDir(gh.dataDir);
}, { timeout: 30_000 });

async function post(params: Record<string, unknown>): Promise<void> {
  await device.publishAsync(`/sys/${gw.productKey}/sensor-01/thing/event/property/post`, JSON.stringify({ method: 'thing.event.property.post', params }), { qos: 1 });
}
const keys = (from: number, n: number, value: unknown = 1): Record<string, unknown> => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${from + i}`, value]));
async function properties(): Promise<Record<string, { value: unknown }>> {
  return (await gh.api<{ properties: Record<string, { value: unknown }> }>('GET', `/products/${gw.productKey}/devices/sensor-01`)).json.properties;
}
async function refused(reason: string): Promise<number> {
  const text = await (await fetch(`${gh.gatehouse.url}/api/v1/metrics`, { headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}` } })).text();
  return Number(new RegExp(`gatehouse_device_property_posts_refused\\{reason="${reason}"\\} (\\d+)`).exec(text)?.[1] ?? 'NaN');
}

test('posts beyond the property count are refused whole and counted; known properties still update', { timeout: 90_000 }, async () => {
  await post(keys(0, 20));
  await post(keys(20, 20));
  await waitFor('40 properties', async () => (Object.keys(await properties()).length === 40 ? true : undefined));
  await post(keys(40, 20)); // 60 > 50
  await waitFor('a too_many refusal', async () => ((await refused('too_many')) >= 1 ? true : undefined));
  await post({ k0: 'updated', k39: 'updated' });
  await waitFor('the update applied', async () => ((await properties()).k0?.value === 'updated' ? true : undefined));
  const now = await properties();
  assert.equal(Object.keys(now).length, 40);
  assert.equal(now.k40, undefined, 'no part of the refused post was kept');
  assert.equal(now.k39?.value, 'updated');
});

test('a post that would exceed the byte limit is refused and counted as too_large', { timeout: 30_000 }, async () => {
  await post({ big: 'x'.repeat(5000) });
  await waitFor('a too_large refusal', async () => ((await refused('too_large')) >= 1 ? true : undefined));
  await post({ k1: 'after' }); // posts are applied in order: once this shows, the big one is settled
  await waitFor('a later post applied', async () => ((await properties()).k1?.value === 'after' ? true : undefined));
  assert.equal((await properties()).big, undefined);
});
