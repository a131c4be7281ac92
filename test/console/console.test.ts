/**
 * The web console in a real browser (Debian's chromium driven by playwright-core) against a whole
 * Gatehouse in-process: sign in, add a gateway in the two steps with a generated test certificate,
 * see it RUNNING, import devices from a CSV file, connect a device with MQTT.js over TLS and watch it
 * come online and its messages arrive live. Screenshots of the main pages go to docs/screenshots with
 * GATEHOUSE_UPDATE_SCREENSHOTS=1.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import mqtt from 'mqtt';
import { chromium, type Browser, type Page } from 'playwright-core';
import { CONSOLE_DIST } from '../../src/api/console.ts';
import { freePort, removeDataDir, startTestGatehouse, TEST_ADMIN_TOKEN, type TestGatehouse } from '../harness/gatehouse.ts';

const CHROMIUM = '/usr/bin/chromium';
// The kept screenshots change only on purpose (GATEHOUSE_UPDATE_SCREENSHOTS=1); an ordinary run writes them to a temporary folder.
const SCREENSHOTS = process.env.GATEHOUSE_UPDATE_SCREENSHOTS === '1'
  ? path.resolve(import.meta.dirname, '../../docs/screenshots')
  : path.join(os.tmpdir(), 'gatehouse-console-screenshots');
// research/libraries.md §7: no sandbox as root, no GPU, nothing that reaches out to the network.
const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

const skip = existsSync(CHROMIUM) ? false : `${CHROMIUM} is absent: apt-get install -y --no-install-recommends chromium`;

let gh: TestGatehouse;
let browser: Browser;
let page: Page;
const clients: mqtt.MqttClient[] = [];

async function shot(name: string): Promise<void> {
  await page.screenshot({ path: path.join(SCREENSHOTS, `${name}.png`), fullPage: true });
}

before(async () => {
  if (skip !== false) return;
  assert.ok(existsSync(path.join(CONSOLE_DIST, 'index.html')), `the console is not built in ${CONSOLE_DIST}: run npm install (its postinstall builds it)`);
  await mkdir(SCREENSHOTS, { recursive: true });
  gh = await startTestGatehouse();
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
}, { timeout: 60_000 });

after(async () => {
  for (const c of clients) c.end(true);
  await browser?.close();
  if (gh) {
    await gh.stop();
    await removeDataDir(gh.dataDir);
  }
}, { timeout: 30_000 });

test('the console: two-step gateway, CSV import, a device online and its messages live', { skip, timeout: 120_000 }, async () => {
  try {
    await scenario();
  } catch (err) {
    // What the browser showed when a step failed, for whoever reads the log (not kept in docs/).
    const file = path.join(os.tmpdir(), 'gatehouse-console-failure.png');
    await page.screenshot({ path: file, fullPage: true }).then(() => console.error(`screenshot of the failure: ${file}`), () => undefined);
    throw err;
  }
});

async function scenario(): Promise<void> {
  const base = gh.gatehouse.url;
  page.setDefaultTimeout(10_000);

  // A deep link before signing in still lands on the console (SPA fallback), at the sign-in form.
  await page.goto(`${base}/gateways`);
  await page.getByLabel('Admin token').waitFor();
  await shot('signin');
  await page.getByLabel('Admin token').fill('wrong-token');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByText('This is not the admin token.').waitFor();
  await page.getByLabel('Admin token').fill(TEST_ADMIN_TOKEN);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByText('No gateways yet').waitFor();
  await shot('gateways-empty');

  // Step 1: Basic Information, with inline validation in the API's words.
  await page.getByRole('button', { name: '+ Add Gateway' }).click();
  await page.getByRole('heading', { name: 'Add Gateway' }).waitFor();
  assert.equal(await page.locator('#port').inputValue(), '1883');
  await page.locator('#name').fill('gw');
  await page.getByText('Gateway name must be 4-30 characters of letters, digits and underscores').waitFor();
  await page.locator('#name').fill('console_gateway');
  const port = await freePort();
  await page.locator('#port').fill('80');
  await page.getByText('Port must be an integer from 1024 to 65535').waitFor();
  await page.locator('#port').fill(String(port));
  await page.getByText('Enable data parsing').click();
  assert.match(await page.locator('#dataParsing\\.script').inputValue(), /function transformPayload/);
  // OCSP options follow the X.509 choice.
  assert.deepEqual(await page.locator('#ocsp\\.mode option').allTextContents(), ['Disabled', 'OCSP verification for the server certificate']);
  await page.getByText('Enable X.509 certificate-based device verification').click();
  assert.equal(await page.locator('#ocsp\\.mode option').count(), 4);
  await page.getByText('Enable X.509 certificate-based device verification').click();
  // Third-party HTTPS: the parameter value offers the ${…} variables; a wrong variable is named inline.
  await page.getByText('Third-party verification', { exact: true }).click();
  await page.locator('#provider').selectOption('HTTPS');
  await page.locator('#thirdParty\\.url').fill('http://auth.example.com');
  await page.getByText('The verification URL must start with https://').waitFor();
  await page.getByRole('button', { name: '+ Add parameter' }).click();
  await page.locator('#param-key-0').fill('sn');
  await page.getByLabel('Insert a variable').selectOption('${clientId}');
  assert.equal(await page.locator('#param-value-0').inputValue(), '${clientId}');
  await page.locator('#param-value-0').fill('${clientid}');
  await page.getByText('unknown variable ${clientid}').waitFor();
  await page.locator('#thirdParty\\.url').fill('https://auth.example.com/verify');
  await page.locator('#param-value-0').fill('${clientId}');
  await shot('add-gateway-step1');
  // This gateway verifies imported rows itself.
  await page.getByText('One-party verification', { exact: true }).click();
  await page.getByRole('button', { name: 'Next' }).click();

  // Step 2: Certificate Configuration with a generated test certificate.
  await page.getByText('the server certificate first').waitFor();
  await page.getByRole('button', { name: 'Generate a self-signed test certificate' }).click();
  await page.getByText('Self-signed test certificate: devices must trust it explicitly').waitFor();
  const certificatePem = await page.locator('#certificates\\.serverCertificateChain').inputValue();
  assert.match(certificatePem, /^-----BEGIN CERTIFICATE-----/);
  assert.match(await page.locator('#certificates\\.serverPrivateKey').inputValue(), /BEGIN PRIVATE KEY/);
  await shot('add-gateway-step2');
  await page.getByRole('button', { name: 'OK' }).click();

  // The list: RUNNING, with its URL and product.
  const row = page.locator('tr[data-gateway="console_gateway"]');
  await row.locator('[data-status="RUNNING"]').waitFor();
  await page.getByText('Gateway "console_gateway" created').waitFor();
  assert.match(await row.textContent() ?? '', new RegExp(`mqtts://localhost:${port}`));
  await shot('gateways');

  // The product page: import devices from a CSV file, with a per-row result.
  await row.getByRole('link', { name: /^Gateway/ }).click();
  await page.getByText('No devices yet').waitFor();
  await page.getByRole('button', { name: 'Import CSV' }).click();
  const csv = 'sn,username,password\nSN0001,sensor-0001,s3cret-1\nSN0002,sensor-0002,s3cret-2\nSN0003,bad user,x\n';
  await page.getByTestId('csv-input').setInputFiles({ name: 'devices.csv', mimeType: 'text/csv', buffer: Buffer.from(csv) });
  await page.getByText('2 of 3 rows imported, 1 failed.').waitFor();
  await page.getByTestId('import-result').getByText('Username must be 4-32 characters').waitFor();
  const device = page.locator('tr[data-device="sensor-0001"]');
  await device.locator('[data-status="INACTIVE"]').waitFor();

  // A device connects over TLS, trusting the generated certificate; the page shows it online.
  const client = await mqtt.connectAsync({
    host: '127.0.0.1', port, protocol: 'mqtts', ca: certificatePem, servername: 'localhost',
    username: 'sensor-0001', password: 's3cret-1', clientId: 'sensor-0001', reconnectPeriod: 0, connectTimeout: 5000,
  });
  clients.push(client);
  await device.locator('[data-status="ONLINE"]').waitFor();
  assert.match(await device.textContent() ?? '', /127\.0\.0\.1/);
  const second = page.locator('tr[data-device="sensor-0002"]');
  await second.getByRole('button', { name: 'Disable' }).click();
  await second.locator('[data-status="DISABLED"]').waitFor();
  await shot('product');
  // One device by hand, checked as it is typed.
  await page.getByRole('button', { name: '+ Add device' }).click();
  await page.locator('#dev-username').fill('ab');
  await page.getByText('Username must be 4-32 characters of letters, digits and - _ @ . :').waitFor();
  await page.locator('#dev-username').fill('sensor-0003');
  await page.locator('#dev-password').fill('s3cret-3');
  await page.getByRole('button', { name: 'Add device', exact: true }).click();
  await page.locator('tr[data-device="sensor-0003"] [data-status="INACTIVE"]').waitFor();

  // Messages: live from the stream, raw and parsed by the gateway's script.
  await page.getByRole('link', { name: 'Live messages →' }).click();
  await page.getByTestId('stream-state').getByText('Live').waitFor();
  await client.publishAsync('devices/sensor-0001/data', Buffer.from([0x00, 0xeb]), { qos: 1 });
  const message = page.locator('[data-message-topic="devices/sensor-0001/data"]');
  await message.waitFor();
  await message.getByText('"temperature": 23.5').waitFor();
  await client.publishAsync('devices/sensor-0001/status', 'battery ok', { qos: 0 });
  await page.locator('[data-message-topic="devices/sensor-0001/status"]').getByText('battery ok', { exact: true }).waitFor();
  await shot('messages');

  // Functions: write, dry-run and save.
  await page.getByRole('link', { name: 'Functions' }).click();
  await page.getByRole('button', { name: 'Write a function' }).click();
  await page.locator('#fn-name').fill('verify_fleet');
  await page.getByRole('button', { name: 'Save and run' }).click();
  await page.getByTestId('invoke-result').getByText('ACCEPT').waitFor();
  await shot('functions');

  // Edit: the stored gateway comes back into the same form; the parsing script has a test run.
  await page.getByRole('link', { name: 'Gateways' }).click();
  await row.getByRole('button', { name: 'Edit' }).click();
  assert.equal(await page.locator('#name').inputValue(), 'console_gateway');
  await page.getByRole('button', { name: 'Run script' }).click();
  await page.getByTestId('parsing-result').getByText('"temperature": 23.5').waitFor();
  await page.locator('#name').fill('console_gateway_2');
  await page.getByRole('button', { name: 'Next' }).click();
  // The API is the final judge: a key that does not match the certificate is named next to its field.
  const otherKey = await gh.api<{ privateKeyPem: string }>('POST', '/certificates/self-signed', { hosts: ['localhost'] });
  await page.locator('#certificates\\.serverPrivateKey').fill(otherKey.json.privateKeyPem);
  await page.getByRole('button', { name: 'Save' }).click();
  await page.locator('[data-field-error="certificates.serverPrivateKey"]').getByText('does not match').waitFor();
  await page.locator('#certificates\\.serverPrivateKey').fill('');
  await page.getByRole('button', { name: 'Save' }).click();
  await page.locator('tr[data-gateway="console_gateway_2"] [data-status="RUNNING"]').waitFor();

  // Phone width: the list becomes cards, the navigation a menu.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.getByRole('button', { name: 'Menu' }).click();
  await page.getByRole('link', { name: 'Messages' }).waitFor();
  await page.getByRole('button', { name: 'Menu' }).click();
  await shot('gateways-phone');
  await page.getByRole('button', { name: '+ Add Gateway' }).click();
  await page.locator('#name').fill('x');
  await page.getByText('Third-party verification', { exact: true }).click();
  await page.getByRole('button', { name: 'Next' }).click();
  await page.getByText('thirdParty.functionName is required').waitFor();
  await shot('add-gateway-phone');
}
