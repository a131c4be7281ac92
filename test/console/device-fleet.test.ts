/**
 * Issue 14, fleets of 100,000 devices, in Debian's chromium through playwright-core: a product with 100,000
 * devices (written straight into its database in the setup, as an import would leave them) is paged and
 * searched through the API, reaching devices far past the first 1,000 rows; the counts per status are exact
 * and follow a real device that connects over TLS and one the operator disables.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import mqtt from 'mqtt';
import { chromium, type Browser, type Page } from 'playwright-core';
import { silentLogger } from '../../src/core/logger.ts';
import { hashPassword, type DeviceRecord } from '../../src/registry/index.ts';
import { openStorage } from '../../src/storage/index.ts';
import { freePort, removeDataDir, startTestGatehouse, TEST_ADMIN_TOKEN, type TestGatehouse } from '../harness/gatehouse.ts';

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const skip = existsSync(CHROMIUM) ? false : `${CHROMIUM} is absent: apt-get install -y --no-install-recommends chromium`;

const FLEET = 100_000;
const T0 = '2026-01-01T00:00:00.000Z';
const name = (i: number): string => `dev-${String(i).padStart(6, '0')}`;
/** Every 1,000th is disabled; of the others a quarter each online and offline, the rest never connected. */
const stateOf = (i: number): { disabled: boolean; connectionState: DeviceRecord['connectionState'] } => ({
  disabled: i % 1000 === 999,
  connectionState: i % 4 === 1 ? 'ONLINE' : i % 4 === 2 ? 'OFFLINE' : 'INACTIVE',
});
/** The device that connects for real: never connected before, far past row 1,000. */
const REAL = 54_320;

let gh: TestGatehouse;
let browser: Browser;
let page: Page;
let productKey: string;
let port: number;
let certificatePem: string;
const clients: mqtt.MqttClient[] = [];

before(async () => {
  if (skip !== false) return;
  gh = await startTestGatehouse();
  const cert = await gh.api<{ certificatePem: string; privateKeyPem: string }>('POST', '/certificates/self-signed', { hosts: ['localhost'] });
  certificatePem = cert.json.certificatePem;
  port = await freePort();
  const gw = await gh.api<{ productKey: string }>('POST', '/gateways', {
    name: 'big_fleet', port, certificates: { serverCertificateChain: certificatePem, serverPrivateKey: cert.json.privateKeyPem },
  });
  assert.equal(gw.status, 201, JSON.stringify(gw.json));
  productKey = gw.json.productKey;

  // Straight into the database: one hash for all (the import's hashing is device-imports.test.ts's subject),
  // a real one for the device that connects.
  const storage = await openStorage({ dataDir: gh.dataDir, logger: silentLogger });
  try {
    const [shared, real] = await Promise.all([hashPassword('not-used'), hashPassword('real-secret')]);
    await storage.transaction(async (tx) => {
      for (let from = 0; from < FLEET; from += 500) {
        await tx.devices.insertMany(Array.from({ length: Math.min(500, FLEET - from) }, (_, k): DeviceRecord => {
          const i = from + k;
          return {
            productKey, deviceName: name(i), username: `user-${String(i).padStart(6, '0')}`, passwordHash: i === REAL ? real : shared,
            sn: `SN-${String(i).padStart(6, '0')}`, origin: 'IMPORTED', ...stateOf(i), lastOnlineAt: null, clientAddress: null,
            certificate: null, createdAt: T0, updatedAt: T0,
          };
        }));
      }
    });
  } finally {
    await storage.close();
  }
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
}, { timeout: 180_000 });

after(async () => {
  for (const c of clients) c.end(true);
  await browser?.close();
  if (gh) {
    await gh.stop();
    await removeDataDir(gh.dataDir);
  }
}, { timeout: 30_000 });

function expected(change: (i: number) => ReturnType<typeof stateOf> = stateOf): { online: number; offline: number; inactive: number; disabled: number } {
  const c = { online: 0, offline: 0, inactive: 0, disabled: 0 };
  for (let i = 0; i < FLEET; i++) {
    const s = change(i);
    if (s.disabled) c.disabled++;
    else if (s.connectionState === 'ONLINE') c.online++;
    else if (s.connectionState === 'OFFLINE') c.offline++;
    else c.inactive++;
  }
  return c;
}

const n = (x: number): string => x.toLocaleString('en-US');

async function seeCounts(c: ReturnType<typeof expected>): Promise<void> {
  await page.getByTestId('device-counts').filter({ hasText: new RegExp(`^${n(c.online)} online / ${n(FLEET)}$`) }).waitFor();
  await page.getByTestId('device-status-counts')
    .filter({ hasText: `${n(c.offline)} offline · ${n(c.inactive)} never connected · ${n(c.disabled)} disabled` }).waitFor();
}

async function seeRange(text: string): Promise<void> {
  await page.getByTestId('device-range').filter({ hasText: new RegExp(`^${text}$`) }).waitFor();
}

test('100,000 devices: paged and searched by the server, past row 1,000; exact counts', { skip, timeout: 300_000 }, async () => {
  try {
    page.setDefaultTimeout(20_000);
    await page.goto(`${gh.gatehouse.url}/products/${productKey}`);
    await page.getByLabel('Admin token').fill(TEST_ADMIN_TOKEN);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await seeCounts(expected());
    await seeRange(`1–50 of ${n(FLEET)}`);
    await page.locator(`tr[data-device="${name(0)}"]`).waitFor();

    // Next, page after page, to rows 1,051-1,100 (the old console stopped at 1,000); back one.
    for (let k = 1; k <= 21; k++) {
      await page.getByRole('button', { name: 'Next page' }).click();
      await seeRange(`${n(k * 50 + 1)}–${n(k * 50 + 50)} of ${n(FLEET)}`);
    }
    await page.locator(`tr[data-device="${name(1050)}"]`).waitFor();
    assert.equal(await page.locator('tr[data-device]').count(), 50);
    await page.getByRole('button', { name: 'Previous page' }).click();
    await seeRange(`1,001–1,050 of ${n(FLEET)}`);
    await page.locator(`tr[data-device="${name(1000)}"]`).waitFor();

    // Search (typed, then debounced): a name prefix, then a username and an SN deep in the fleet.
    await page.getByLabel('Search devices').fill('dev-0543');
    await seeRange('1–50 of 100 matching');
    await page.locator(`tr[data-device="${name(54_300)}"]`).waitFor();
    await page.getByRole('button', { name: 'Next page' }).click();
    await seeRange('51–100 of 100 matching');
    assert.equal(await page.getByRole('button', { name: 'Next page' }).isDisabled(), true);
    await page.getByLabel('Search devices').fill('user-07777');
    await seeRange('1–10 of 10 matching');
    await page.getByLabel('Search devices').fill('SN-099999');
    await seeRange('1–1 of 1 matching');
    await page.locator(`tr[data-device="${name(99_999)}"] [data-status="DISABLED"]`).waitFor();
    await page.getByLabel('Search devices').fill('nothing-like-this');
    await seeRange('No device matches');

    // Status, exact: every disabled device, 100 of them.
    await page.getByLabel('Search devices').fill('');
    await page.getByLabel('Status', { exact: true }).selectOption('disabled');
    await seeRange(`1–50 of ${n(expected().disabled)} matching`);

    // A real device far past row 1,000 connects over TLS: its row and the counts follow.
    await page.getByLabel('Status', { exact: true }).selectOption('');
    await page.getByLabel('Search devices').fill(name(REAL));
    await page.locator(`tr[data-device="${name(REAL)}"] [data-status="INACTIVE"]`).waitFor();
    const client = await mqtt.connectAsync({
      host: '127.0.0.1', port, protocol: 'mqtts', ca: certificatePem, servername: 'localhost',
      username: `user-${String(REAL).padStart(6, '0')}`, password: 'real-secret', clientId: name(REAL), reconnectPeriod: 0, connectTimeout: 10_000,
    });
    clients.push(client);
    await page.locator(`tr[data-device="${name(REAL)}"] [data-status="ONLINE"]`).waitFor();
    const connected = (i: number) => (i === REAL ? { disabled: false, connectionState: 'ONLINE' as const } : stateOf(i));
    await seeCounts(expected(connected));

    // The operator disables another device deep in the fleet from its search result.
    const other = REAL + 1;
    await page.getByLabel('Search devices').fill(name(other));
    const row = page.locator(`tr[data-device="${name(other)}"]`);
    await row.locator('[data-status="ONLINE"]').waitFor();
    await row.getByRole('button', { name: 'Disable' }).click();
    await row.locator('[data-status="DISABLED"]').waitFor();
    await seeCounts(expected((i) => (i === other ? { disabled: true, connectionState: 'ONLINE' } : connected(i))));
  } catch (err) {
    const file = path.join(os.tmpdir(), 'gatehouse-console-fleet-failure.png');
    await page.screenshot({ path: file, fullPage: true }).then(() => console.error(`screenshot of the failure: ${file}`), () => undefined);
    throw err;
  }
});
