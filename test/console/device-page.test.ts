/**
 * Issue 14, a page per device, in Debian's chromium through playwright-core against a whole Gatehouse: a real
 * MQTT 5 device (MQTT.js over TLS) with a kept session. The page shows its state and address, its session
 * (subscriptions, then queued messages once it is offline), a refusal and its accept in the event timeline,
 * its recent messages; and its actions work end to end: a message sent down in hex arrives at the device,
 * "disconnect now" ends its connection (KICKED), disable and delete.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import mqtt from 'mqtt';
import { chromium, type Browser, type Page } from 'playwright-core';
import { freePort, removeDataDir, startTestGatehouse, TEST_ADMIN_TOKEN, type TestGatehouse } from '../harness/gatehouse.ts';

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const skip = existsSync(CHROMIUM) ? false : `${CHROMIUM} is absent: apt-get install -y --no-install-recommends chromium`;

let gh: TestGatehouse;
let browser: Browser;
let page: Page;
let productKey: string;
let port: number;
let ca: string;
const clients: mqtt.MqttClient[] = [];

before(async () => {
  if (skip !== false) return;
  gh = await startTestGatehouse();
  const cert = await gh.api<{ certificatePem: string; privateKeyPem: string }>('POST', '/certificates/self-signed', { hosts: ['localhost'] });
  ca = cert.json.certificatePem;
  port = await freePort();
  const gw = await gh.api<{ productKey: string }>('POST', '/gateways', {
    name: 'page_fleet', port, certificates: { serverCertificateChain: ca, serverPrivateKey: cert.json.privateKeyPem },
  });
  assert.equal(gw.status, 201, JSON.stringify(gw.json));
  productKey = gw.json.productKey;
  for (const [username, sn] of [['meter-0001', 'SN-1'], ['meter-0002', 'SN-2']]) {
    assert.equal((await gh.api('POST', `/products/${productKey}/devices`, { username, password: `pw-${username}`, sn })).status, 201);
  }
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
}, { timeout: 60_000 });

after(async () => {
  for (const c of clients) c.end(true);
  await browser?.close();
  if (gh) {
    await gh.stop();
    await removeDataDir(gh.dataDir);
  }
}, { timeout: 30_000 });

function connect(username: string, password: string, extra: mqtt.IClientOptions = {}): Promise<mqtt.MqttClient> {
  return mqtt.connectAsync({
    host: '127.0.0.1', port, protocol: 'mqtts', ca, servername: 'localhost', username, password, clientId: `c-${username}`,
    protocolVersion: 5, reconnectPeriod: 0, connectTimeout: 10_000, ...extra,
  });
}

test('a device page: state, session, events, messages; send down, disconnect, disable, delete', { skip, timeout: 120_000 }, async () => {
  try {
    page.setDefaultTimeout(15_000);
    // A refusal first (wrong password), then the device with a session kept for an hour.
    await assert.rejects(connect('meter-0001', 'wrong'));
    const device = await connect('meter-0001', 'pw-meter-0001', { clean: false, properties: { sessionExpiryInterval: 3600 } });
    clients.push(device);
    await device.subscribeAsync('cmd/meter-0001', { qos: 1 });
    await device.subscribeAsync('cfg/#', { qos: 0 });
    await device.publishAsync('telemetry/meter-0001', 'temp=21.5', { qos: 1 });

    await page.goto(`${gh.gatehouse.url}/products/${productKey}`);
    await page.getByLabel('Admin token').fill(TEST_ADMIN_TOKEN);
    await page.getByRole('button', { name: 'Sign in' }).click();
    // From the product's list to the device's page.
    await page.getByRole('link', { name: 'meter-0001' }).click();
    await page.getByRole('heading', { name: /meter-0001/ }).waitFor();
    await page.locator('h1 [data-status="ONLINE"]').waitFor();
    await page.getByText('SN-1').waitFor();
    const session = page.locator('[data-session="c-meter-0001"]');
    await session.getByText('connected from').waitFor();
    await session.locator('[data-subscription="cmd/meter-0001"]').filter({ hasText: 'QoS 1' }).waitFor();
    await session.locator('[data-subscription="cfg/#"]').waitFor();
    await page.locator('[data-testid="device-events"] tr[data-event-reason="BAD_CREDENTIALS"]').waitFor();
    await page.locator('[data-testid="device-events"] tr[data-event-reason="ACCEPTED"]').first().waitFor();
    await page.locator('[data-testid="device-messages"] [data-message-topic="telemetry/meter-0001"]').getByText('temp=21.5').waitFor();

    // A message down, written in hex, arrives as those bytes; QoS 1 is acknowledged.
    const arrived = new Promise<Buffer>((resolve) => device.once('message', (_t, payload) => resolve(payload)));
    const form = page.getByTestId('send-message');
    await form.getByLabel('Topic').fill('cmd/meter-0001');
    await form.getByLabel('Payload is').selectOption('hex');
    await form.getByLabel('Payload', { exact: true }).fill('zz');
    await form.getByRole('button', { name: 'Send' }).click();
    await form.getByText('payload is not valid hex').waitFor();
    await form.getByLabel('Payload', { exact: true }).fill('6f 70 65 6e');
    await form.getByRole('button', { name: 'Send' }).click();
    await form.getByText('Delivered: the device acknowledged it (PUBACK).').waitFor();
    assert.equal((await arrived).toString(), 'open');

    // Disconnect now: the connection ends (KICKED); the kept session stays, and holds what is published for it meanwhile.
    const closed = new Promise<void>((resolve) => device.once('close', () => resolve()));
    await page.getByRole('button', { name: 'Disconnect now' }).click();
    await page.getByText('1 connection ended.').waitFor();
    await closed;
    await page.locator('[data-testid="device-events"] tr[data-event-reason="KICKED"]').waitFor();
    await session.getByText('offline since').waitFor();
    const other = await connect('meter-0002', 'pw-meter-0002');
    clients.push(other);
    await other.publishAsync('cmd/meter-0001', 'reboot', { qos: 1 });
    await other.publishAsync('cmd/meter-0001', 'reboot-again', { qos: 1 });
    const sessions = await gh.api<{ items: { clientId: string; connected: boolean; queued: number; pending: { topic: string; state: string; bytes: number }[] }[] }>(
      'GET', `/products/${productKey}/devices/meter-0001/sessions`);
    assert.deepEqual(sessions.json.items.map((s) => [s.clientId, s.connected, s.queued]), [['c-meter-0001', false, 2]]);
    assert.deepEqual(sessions.json.items[0]?.pending, [
      { topic: 'cmd/meter-0001', qos: 1, bytes: 6, state: 'QUEUED', packetId: null },
      { topic: 'cmd/meter-0001', qos: 1, bytes: 12, state: 'QUEUED', packetId: null },
    ]);
    await page.reload();
    await session.getByTestId('session-counts').filter({ hasText: '0 in flight · 2 queued (46 bytes)' }).waitFor();
    assert.equal(await session.locator('tr[data-pending="QUEUED"]').count(), 2);

    // Disable, then delete: back on the product page, the device is gone.
    await page.getByRole('button', { name: 'Disable' }).click();
    await page.locator('h1 [data-status="DISABLED"]').waitFor();
    await assert.rejects(connect('meter-0001', 'pw-meter-0001'));
    page.once('dialog', (dialog) => void dialog.accept());
    await page.getByRole('button', { name: 'Delete' }).click();
    await page.locator('tr[data-device="meter-0002"]').waitFor();
    assert.equal(await page.locator('tr[data-device="meter-0001"]').count(), 0);
    assert.equal((await gh.api('GET', `/products/${productKey}/devices/meter-0001`)).status, 404);
  } catch (err) {
    const file = path.join(os.tmpdir(), 'gatehouse-console-device-failure.png');
    await page.screenshot({ path: file, fullPage: true }).then(() => console.error(`screenshot of the failure: ${file}`), () => undefined);
    throw err;
  }
});

test('the sessions and disconnect API: unknown devices are 404, a device without a session has none', { skip, timeout: 30_000 }, async () => {
  const none = await gh.api<{ error: { code: string } }>('GET', `/products/${productKey}/devices/nobody-here/sessions`);
  assert.equal(none.status, 404);
  assert.equal(none.json.error.code, 'GW_ERR_DEVICE_NOT_FOUND');
  assert.equal((await gh.api('POST', `/products/${productKey}/devices/nobody-here/disconnect`)).status, 404);
  assert.deepEqual((await gh.api('GET', `/products/${productKey}/devices/meter-0002/sessions`)).json, {
    items: [{
      gatewayId: (await gh.api<{ gatewayId: string }>('GET', `/products/${productKey}`)).json.gatewayId, clientId: 'c-meter-0002', connected: true,
      address: '127.0.0.1', protocolVersion: 5, expiryIntervalSeconds: 0, disconnectedAt: null, subscriptions: [], inflight: 0, queued: 0, queuedBytes: 0, pending: [],
    }],
  });
  assert.deepEqual((await gh.api('POST', `/products/${productKey}/devices/meter-0002/disconnect`)).json, { disconnected: 1 });
});
