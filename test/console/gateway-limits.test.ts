/**
 * Issue 13 item 7 in the console, in Debian's chromium through playwright-core: the gateway form's
 * limits, each with its use on the running gateway beside it (a real MQTT.js device is connected over
 * TLS), checked as typed and by the API (its words at the field), saved and applied live.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import mqtt from 'mqtt';
import { chromium, type Browser, type Page } from 'playwright-core';
import { getPki, type SharedPki } from '../harness/pki.ts';
import { freePort, removeDataDir, startTestGatehouse, TEST_ADMIN_TOKEN, type TestGatehouse } from '../harness/gatehouse.ts';

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
// As in console.test.ts: kept screenshots change only with GATEHOUSE_UPDATE_SCREENSHOTS=1.
const SCREENSHOTS = process.env.GATEHOUSE_UPDATE_SCREENSHOTS === '1'
  ? path.resolve(import.meta.dirname, '../../docs/screenshots')
  : path.join(os.tmpdir(), 'gatehouse-console-screenshots');
const skip = existsSync(CHROMIUM) ? false : `${CHROMIUM} is absent: apt-get install -y --no-install-recommends chromium`;

interface GatewayJson { id: string; name: string; port: number; productKey: string; limits: Record<string, number | null> }

let pki: SharedPki;
let gh: TestGatehouse;
let browser: Browser;
let page: Page;
let gateway: GatewayJson;
let device: mqtt.MqttClient | undefined;

before(async () => {
  if (skip !== false) return;
  pki = await getPki();
  gh = await startTestGatehouse();
  const created = await gh.api<GatewayJson>('POST', '/gateways', {
    name: 'limits_console', port: await freePort(),
    certificates: { serverCertificateChain: pki.server.chainPem, serverPrivateKey: pki.server.keyPem },
  });
  assert.equal(created.status, 201, JSON.stringify(created.json));
  gateway = created.json;
  const added = await gh.api('POST', `/products/${gateway.productKey}/devices`, { username: 'meter-0007', password: 'pw-7' });
  assert.equal(added.status, 201, JSON.stringify(added.json));
  await mkdir(SCREENSHOTS, { recursive: true });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
}, { timeout: 60_000 });

after(async () => {
  device?.end(true);
  await browser?.close();
  if (gh) {
    await gh.stop();
    await removeDataDir(gh.dataDir);
  }
}, { timeout: 30_000 });

function connectDevice(clientId: string): Promise<mqtt.MqttClient> {
  const client = mqtt.connect({
    host: '127.0.0.1', port: gateway.port, protocol: 'mqtts', ca: pki.root.certPem, servername: 'localhost',
    reconnectPeriod: 0, connectTimeout: 5000, protocolVersion: 5, clientId, username: 'meter-0007', password: 'pw-7',
  });
  return new Promise((resolve, reject) => {
    client.once('connect', () => resolve(client));
    client.once('error', reject);
  });
}

test('limits in the form: current use beside each, checked as typed and by the API, saved and applied live', { skip, timeout: 90_000 }, async () => {
  try {
    await scenario();
  } catch (err) {
    const file = path.join(os.tmpdir(), 'gatehouse-console-limits-failure.png');
    await page.screenshot({ path: file, fullPage: true }).then(() => console.error(`screenshot of the failure: ${file}`), () => undefined);
    throw err;
  }
});

async function scenario(): Promise<void> {
  page.setDefaultTimeout(10_000);
  device = await connectDevice('meter-7');
  await device.subscribeAsync(['devices/meter-0007/a', 'devices/meter-0007/b'], { qos: 1 });

  await page.goto(`${gh.gatehouse.url}/gateways/${gateway.id}/edit`);
  await page.getByLabel('Admin token').fill(TEST_ADMIN_TOKEN);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Edit gateway' }).waitFor();
  const limits = page.getByTestId('limits');
  await limits.waitFor();
  // The defaults, and the running gateway's use beside them: one device connected, holding two subscriptions.
  assert.equal(await page.locator('#limit-maxConnections').inputValue(), '');
  assert.equal(await page.locator('#limit-maxSubscriptionsPerDevice').inputValue(), '1000');
  assert.equal(await page.locator('#limit-maxPacketSize').inputValue(), '1048576');
  assert.match(await limits.locator('[data-limit-use="maxConnections"]').textContent() ?? '', /in use: 1/);
  assert.match(await limits.locator('[data-limit-use="maxSubscriptionsPerDevice"]').textContent() ?? '', /in use: 2/);

  // Checked as typed: a whole number or empty.
  await page.locator('#limit-maxConnections').fill('lots');
  await page.getByText('limits.maxConnections must be a whole number, or empty for no limit').waitFor();
  // Checked by the API, its words at the field: 0 is out of range.
  await page.locator('#limit-maxConnections').fill('0');
  await page.getByRole('button', { name: 'Next' }).click();
  await page.getByRole('button', { name: 'Save' }).click();
  await page.locator('[data-field-error="limit-maxConnections"]').getByText('limits.maxConnections must be from 1').waitFor();

  await page.locator('#limit-maxConnections').fill('1');
  await page.locator('#limit-messagesPerSecondPerDevice').fill('100');
  await page.locator('#limit-maxPacketSize').fill('');
  await limits.screenshot({ path: path.join(SCREENSHOTS, 'gateway-limits.png') });
  await page.getByRole('button', { name: 'Next' }).click();
  await page.getByRole('button', { name: 'Save' }).click();
  await page.getByText('saved; the change applies live').waitFor();
  const saved = (await gh.api<GatewayJson>('GET', `/gateways/${gateway.id}`)).json.limits;
  assert.equal(saved.maxConnections, 1);
  assert.equal(saved.messagesPerSecondPerDevice, 100);
  assert.equal(saved.maxPacketSize, null);
  assert.equal(saved.maxSubscriptionsPerDevice, 1000);

  // Live: the connected device stays, and the form shows the limit reached and then the refusal it caused.
  // A second connection (another client id; its own would be a takeover) is one too many.
  const refused = await connectDevice('meter-7-second').then(() => 0, (err: { code?: number }) => err.code ?? -1);
  assert.equal(refused, 0x97);
  assert.ok(device.connected);
  await page.goto(`${gh.gatehouse.url}/gateways/${gateway.id}/edit`);
  await page.getByRole('heading', { name: 'Edit gateway' }).waitFor();
  assert.equal(await page.locator('#limit-maxConnections').inputValue(), '1');
  assert.match(await page.locator('[data-limit-use="maxConnections"]').textContent() ?? '', /in use: 1 · hit 1×/);
}
