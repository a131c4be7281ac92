/**
 * Issue 13 in the console, in Debian's chromium through playwright-core: the gateway form's "Access and
 * limits" part (rules editor, the one-click per-device template, inline rule checks in the API's words,
 * rule order, removal) and a device's effective rules on the product page.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { getPki } from '../harness/pki.ts';
import { freePort, removeDataDir, startTestGatehouse, TEST_ADMIN_TOKEN, type TestGatehouse } from '../harness/gatehouse.ts';

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
// As in console.test.ts: kept screenshots change only with GATEHOUSE_UPDATE_SCREENSHOTS=1.
const SCREENSHOTS = process.env.GATEHOUSE_UPDATE_SCREENSHOTS === '1'
  ? path.resolve(import.meta.dirname, '../../docs/screenshots')
  : path.join(os.tmpdir(), 'gatehouse-console-screenshots');
const skip = existsSync(CHROMIUM) ? false : `${CHROMIUM} is absent: apt-get install -y --no-install-recommends chromium`;

interface GatewayJson { id: string; name: string; productKey: string; accessControl: unknown }

let gh: TestGatehouse;
let browser: Browser;
let page: Page;
let gateway: GatewayJson;

before(async () => {
  if (skip !== false) return;
  const pki = await getPki();
  gh = await startTestGatehouse();
  const created = await gh.api<GatewayJson>('POST', '/gateways', {
    name: 'rooms_console', port: await freePort(),
    certificates: { serverCertificateChain: pki.server.chainPem, serverPrivateKey: pki.server.keyPem },
  });
  assert.equal(created.status, 201, JSON.stringify(created.json));
  gateway = created.json;
  const added = await gh.api('POST', `/products/${gateway.productKey}/devices`, { username: 'meter-0042', password: 'pw-42' });
  assert.equal(added.status, 201, JSON.stringify(added.json));
  await mkdir(SCREENSHOTS, { recursive: true });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
}, { timeout: 60_000 });

after(async () => {
  await browser?.close();
  if (gh) {
    await gh.stop();
    await removeDataDir(gh.dataDir);
  }
}, { timeout: 30_000 });

test('the rules editor: template, inline checks, order, save; a device shows its effective rules', { skip, timeout: 90_000 }, async () => {
  try {
    await scenario();
  } catch (err) {
    const file = path.join(os.tmpdir(), 'gatehouse-console-acl-failure.png');
    await page.screenshot({ path: file, fullPage: true }).then(() => console.error(`screenshot of the failure: ${file}`), () => undefined);
    throw err;
  }
});

async function scenario(): Promise<void> {
  page.setDefaultTimeout(10_000);
  await page.goto(`${gh.gatehouse.url}/gateways/${gateway.id}/edit`);
  await page.getByLabel('Admin token').fill(TEST_ADMIN_TOKEN);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Edit gateway' }).waitFor();
  await page.getByText('Access and limits').waitFor();
  assert.equal(await page.locator('#acl-default').inputValue(), 'ALLOW');
  assert.equal(await page.locator('[data-rule]').count(), 0);

  // One click: each device only under its own topic.
  await page.getByRole('button', { name: 'Each device only under its own topic' }).click();
  assert.equal(await page.locator('#acl-topic-0').inputValue(), 'devices/${deviceName}/#');
  assert.equal(await page.locator('#acl-default').inputValue(), 'DENY');

  // A second rule, checked as it is typed, in the API's words.
  await page.getByRole('button', { name: '+ Add rule' }).click();
  await page.locator('#acl-topic-1').fill('public/${password}');
  await page.getByText('unknown placeholder ${password}').waitFor();
  await page.locator('#acl-topic-1').fill('public/x${deviceName}');
  await page.getByText('a placeholder must fill a whole level').waitFor();
  await page.locator('#acl-topic-1').fill('public/#');
  await page.locator('#acl-access-1').selectOption('SUBSCRIBE');
  // Order matters: move it first.
  await page.getByRole('button', { name: 'Move rule 2 up' }).click();
  assert.equal(await page.locator('#acl-topic-0').inputValue(), 'public/#');
  assert.equal(await page.locator('#acl-access-0').inputValue(), 'SUBSCRIBE');
  await page.locator('fieldset', { hasText: 'Access and limits' }).screenshot({ path: path.join(SCREENSHOTS, 'gateway-access.png') });

  await page.getByRole('button', { name: 'Next' }).click();
  await page.getByRole('button', { name: 'Save' }).click();
  await page.getByText('saved; the change applies live').waitFor();
  const saved = await gh.api<GatewayJson>('GET', `/gateways/${gateway.id}`);
  assert.deepEqual(saved.json.accessControl, {
    defaultAction: 'DENY',
    rules: [{ action: 'ALLOW', access: 'SUBSCRIBE', topic: 'public/#' }, { action: 'ALLOW', access: 'ALL', topic: 'devices/${deviceName}/#' }],
  });

  // The product page: the device's effective rules, placeholders filled.
  await page.goto(`${gh.gatehouse.url}/products/${gateway.productKey}`);
  const row = page.locator('tr[data-device="meter-0042"]');
  await row.getByRole('button', { name: 'Access' }).click();
  const rules = page.locator('[data-rules-of="meter-0042"]');
  await rules.getByText('devices/meter-0042/#').waitFor();
  assert.match(await rules.locator('[data-effective-rule="0"]').textContent() ?? '', /Allow subscribe public\/#/);
  assert.match(await rules.locator('[data-effective-rule="1"]').textContent() ?? '', /Allow publish and subscribe devices\/meter-0042\/#/);
  assert.match(await rules.locator('[data-effective-rule="default"]').textContent() ?? '', /deny/);
  await page.screenshot({ path: path.join(SCREENSHOTS, 'device-rules.png'), fullPage: true });

  // Removing every rule and allowing by default opens the gateway again.
  await page.goto(`${gh.gatehouse.url}/gateways/${gateway.id}/edit`);
  await page.getByRole('heading', { name: 'Edit gateway' }).waitFor();
  await page.getByRole('button', { name: 'Remove rule 1' }).click();
  await page.getByRole('button', { name: 'Remove rule 1' }).click();
  assert.equal(await page.locator('[data-rule]').count(), 0);
  await page.locator('#acl-default').selectOption('ALLOW');
  await page.getByRole('button', { name: 'Next' }).click();
  await page.getByRole('button', { name: 'Save' }).click();
  await page.getByText('saved; the change applies live').waitFor();
  assert.deepEqual((await gh.api<GatewayJson>('GET', `/gateways/${gateway.id}`)).json.accessControl, { defaultAction: 'ALLOW', rules: [] });
}
