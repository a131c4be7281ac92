/**
 * Imports of up to 100,000 rows as operations (issue 14): POST /products/{key}/imports answers 202 at once,
 * the import runs in steps, GET …/imports/{id} tells its progress and, once finished, its failed rows. Over a
 * real SQLite file, at the lowest scrypt cost so the rows hash fast (the cost is not what is tested here).
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { silentLogger } from '../../src/core/logger.ts';
import { rowsFromCsv } from '../../src/registry/device-import.ts';
import { DeviceImporter, IMPORT_STEP, type ImportProgress } from '../../src/registry/device-importer.ts';
import { MAX_IMPORT_OPERATION_ROWS, verifyPassword } from '../../src/registry/index.ts';
import { MIN_SCRYPT_N } from '../../src/registry/passwords.ts';
import { getApiCerts, type ApiCerts } from './certs.ts';
import {
  expectError, gatewayBody, startTestApi, type GatewayJson, type ImportOperationJson, type ProductJson, type TestApi,
} from './helpers.ts';

const COST = { N: MIN_SCRYPT_N, r: 8, p: 1 };
let api: TestApi;
let certs: ApiCerts;
let productKey: string;

before(async () => {
  certs = await getApiCerts();
  api = await startTestApi({ passwordCost: COST });
  const gw = await api.call<GatewayJson>('POST', '/api/v1/gateways', { json: gatewayBody(certs) });
  assert.equal(gw.status, 201, gw.body);
  productKey = gw.json.productKey;
}, { timeout: 60_000 });
after(async () => {
  await api.registry.devices.importsSettled();
  await api.close();
  await certs.dispose();
}, { timeout: 30_000 });

const name = (i: number): string => `imp-${String(i).padStart(6, '0')}`;
const rows = (from: number, count: number): string[] => Array.from({ length: count }, (_, k) => `SN-${from + k},${name(from + k)},pw-${from + k}`);

async function finished(id: string): Promise<{ final: ImportOperationJson; seen: ImportOperationJson[] }> {
  const seen: ImportOperationJson[] = [];
  for (;;) {
    const reply = await api.call<ImportOperationJson>('GET', `/api/v1/products/${productKey}/imports/${id}`);
    assert.equal(reply.status, 200, reply.body);
    seen.push(reply.json);
    if (reply.json.state !== 'RUNNING') return { final: reply.json, seen };
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

test('an import operation: 202 at once, progress that only grows, then its failed rows', { timeout: 120_000 }, async () => {
  assert.equal((await api.call('POST', `/api/v1/products/${productKey}/devices`, { json: { username: name(5), password: 'pw' } })).status, 201);
  const csv = ['sn,username,password', ...rows(0, 1200), 'SN-x,bad user,pw', 'SN-y,imp-000001,pw'].join('\n');
  const started = await api.call<ImportOperationJson>('POST', `/api/v1/products/${productKey}/imports`, { csv });
  assert.equal(started.status, 202, started.body);
  assert.equal(started.headers.location, `/api/v1/products/${productKey}/imports/${started.json.id}`);
  assert.equal(started.json.state, 'RUNNING');
  assert.equal(started.json.total, 1202);
  assert.equal(started.json.processed, 0);

  const { final, seen } = await finished(started.json.id);
  for (let i = 1; i < seen.length; i++) {
    const [a, b] = [seen[i - 1] as ImportOperationJson, seen[i] as ImportOperationJson];
    assert.ok(b.processed >= a.processed && b.created >= a.created && b.failed >= a.failed, 'progress never goes back');
  }
  assert.equal(final.state, 'DONE');
  assert.equal(final.error, null);
  assert.ok(final.finishedAt !== null);
  // Row 6 is taken by the device added first; row 1201 has a bad username; row 1202 repeats row 2's username.
  assert.deepEqual([final.total, final.processed, final.created, final.failed], [1202, 1202, 1199, 3]);
  assert.deepEqual(final.failures.map((f) => [f.row, f.error?.code, f.error?.field]), [
    [6, 'GW_ERR_USERNAME_TAKEN', 'username'], [1201, 'GW_ERR_USERNAME_INVALID', 'username'], [1202, 'GW_ERR_USERNAME_TAKEN', 'username'],
  ]);
  assert.equal(final.failuresOmitted, 0);

  // Stored: every row, with its own password.
  const product = await api.call<ProductJson>('GET', `/api/v1/products/${productKey}`);
  assert.equal(product.json.deviceCount, 1200);
  const credential = await api.registry.findDeviceCredential(productKey, name(1199));
  assert.ok(credential);
  assert.equal(await verifyPassword(credential.passwordHash, 'pw-1199', COST), true);
});

test('import operation refusals: too many rows, bad CSV, unknown product or operation', { timeout: 60_000 }, async () => {
  const url = `/api/v1/products/${productKey}/imports`;
  const tooMany = `sn,username,password\n${'S,aaaa,b\n'.repeat(MAX_IMPORT_OPERATION_ROWS + 1)}`;
  expectError(await api.call('POST', url, { csv: tooMany }), 413, 'GW_ERR_IMPORT_TOO_LARGE', 'rows');
  expectError(await api.call('POST', url, { csv: 'sn,username,password\n"open,x,y\n' }), 400, 'GW_ERR_IMPORT_INVALID', 'body');
  expectError(await api.call('POST', url, { csv: 'S,abcd,pw', headers: { 'content-type': 'text/plain' } }), 415, 'GW_ERR_UNSUPPORTED_MEDIA_TYPE');
  expectError(await api.call('POST', '/api/v1/products/nope/imports', { csv: 'S,abcd,pw' }), 404, 'GW_ERR_PRODUCT_NOT_FOUND', 'productKey');
  expectError(await api.call('GET', `${url}/no-such-operation`), 404, 'GW_ERR_IMPORT_NOT_FOUND', 'importId');
  // An operation is found only under its own product.
  const other = await api.call<GatewayJson>('POST', '/api/v1/gateways', { json: gatewayBody(certs, { name: 'other_gw', port: 8890 }) });
  const started = await api.call<ImportOperationJson>('POST', url, { json: [{ username: 'json-0001', password: 'pw' }] });
  assert.equal(started.status, 202, started.body);
  expectError(await api.call('GET', `/api/v1/products/${other.json.productKey}/imports/${started.json.id}`), 404, 'GW_ERR_IMPORT_NOT_FOUND');
  assert.equal((await finished(started.json.id)).final.created, 1);
});

test('the importer reports after the checks and after each step, and leaves storage free between steps', { timeout: 120_000 }, async () => {
  const gw = await api.call<GatewayJson>('POST', '/api/v1/gateways', { json: gatewayBody(certs, { name: 'steps_gw', port: 8891 }) });
  const key = gw.json.productKey;
  const importer = new DeviceImporter({ storage: api.storage, passwordCost: COST, now: () => new Date(), logger: silentLogger });
  const total = 2 * IMPORT_STEP + 7;
  const csv = ['sn,username,password', ...rows(10_000, total - 1), 'S,bad user,pw'].join('\n');
  const progress: ImportProgress[] = [];
  let readDuringImport: Promise<number> | undefined;
  const { result } = await importer.run(key, rowsFromCsv(csv, MAX_IMPORT_OPERATION_ROWS), (p) => {
    progress.push(p);
    // A read issued after the first step must not wait for the whole import (a CONNECT's credential read).
    if (progress.length === 2) readDuringImport = api.storage.devices.count(key).then((n) => (progress.push({ ...p, processed: -n }), n));
  });
  assert.equal(result.created, total - 1);
  const steps = progress.filter((p) => p.processed >= 0);
  assert.deepEqual(steps.map((p) => [p.processed, p.created, p.failed]), [
    [1, 0, 1], [1 + IMPORT_STEP, IMPORT_STEP, 1], [1 + 2 * IMPORT_STEP, 2 * IMPORT_STEP, 1], [total, total - 1, 1],
  ]);
  // The read answered with the first step's rows, before the last step reported.
  assert.equal(await readDuringImport, IMPORT_STEP);
  const readAt = progress.findIndex((p) => p.processed < 0);
  assert.ok(readAt > 0 && readAt < progress.length - 1, `the read answered at ${readAt} of ${progress.length}`);
});
