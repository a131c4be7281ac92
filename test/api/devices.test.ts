/** Devices of a product: one-party rows one by one and imported (JSON and CSV), edits, reads. */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { getApiCerts, type ApiCerts } from './certs.ts';
import { expectError, gatewayBody, startTestApi, type TestApi, type DeviceJson, type DeviceListJson, type GatewayJson, type ImportJson, type ProductJson } from './helpers.ts';

let api: TestApi;
let certs: ApiCerts;
let productKey: string;

before(async () => {
  certs = await getApiCerts();
  api = await startTestApi();
  const gw = await api.call<GatewayJson>('POST', '/api/v1/gateways', { json: gatewayBody(certs) });
  assert.equal(gw.status, 201, gw.body);
  productKey = gw.json.productKey;
}, { timeout: 60_000 });
after(async () => {
  await api.close();
  await certs.dispose();
}, { timeout: 30_000 });

const devices = () => `/api/v1/products/${productKey}/devices`;
const add = (json: unknown) => api.call<DeviceJson>('POST', devices(), { json });

describe('add one device', () => {
  test('creates it with the username as device name; the password is never returned', { timeout: 5_000 }, async () => {
    const reply = await add({ username: 'user-0001', password: 'S3cret:pw', sn: 'SN-0001' });
    assert.equal(reply.status, 201, reply.body);
    const { createdAt, updatedAt, ...rest } = reply.json;
    assert.ok(createdAt && updatedAt);
    assert.deepEqual(rest, {
      deviceName: 'user-0001', productKey, username: 'user-0001', sn: 'SN-0001', status: 'INACTIVE', origin: 'IMPORTED',
      lastOnlineAt: null, clientAddress: null, certificate: null, properties: {},
    });
    assert.ok(!reply.body.includes('S3cret'));
    assert.ok(!reply.body.includes('scrypt'));
    assert.ok(!reply.body.toLowerCase().includes('password'));
  });

  test('an explicit device name is used', { timeout: 5_000 }, async () => {
    const reply = await add({ username: 'user-0002', password: 'pw', deviceName: 'meter_02@site.a' });
    assert.equal(reply.status, 201, reply.body);
    assert.equal(reply.json.deviceName, 'meter_02@site.a');
  });

  for (const [why, username] of [['too short', 'abc'], ['too long', 'u'.repeat(33)], ['a space', 'user 1'], ['a slash', 'user/1'], ['non-ASCII', 'usér-1']]) {
    test(`username ${why} → GW_ERR_USERNAME_INVALID`, { timeout: 5_000 }, async () => {
      expectError(await add({ username, password: 'pw' }), 400, 'GW_ERR_USERNAME_INVALID', 'username');
    });
  }

  test('username edge lengths and every allowed character', { timeout: 5_000 }, async () => {
    assert.equal((await add({ username: 'a-_@', password: 'p' })).status, 201);
    assert.equal((await add({ username: 'Az09-_@.:'.padEnd(32, 'x'), password: 'p' })).status, 201);
  });

  for (const [why, password] of [['empty', ''], ['too long', 'p'.repeat(33)], ['a space', 'pass word'], ['a quote', 'pa"ss']]) {
    test(`password ${why} → GW_ERR_PASSWORD_INVALID`, { timeout: 5_000 }, async () => {
      expectError(await add({ username: 'user-pw-check', password }), 400, 'GW_ERR_PASSWORD_INVALID', 'password');
    });
  }

  for (const [why, deviceName] of [['too short', 'abc'], ['too long', 'd'.repeat(33)], ['a slash', 'dev/1']]) {
    test(`device name ${why} → GW_ERR_DEVICE_NAME_INVALID`, { timeout: 5_000 }, async () => {
      expectError(await add({ username: 'user-dn-check', password: 'pw', deviceName }), 400, 'GW_ERR_DEVICE_NAME_INVALID', 'deviceName');
    });
  }

  test('SN over 64 characters or with control characters → GW_ERR_SN_INVALID', { timeout: 5_000 }, async () => {
    expectError(await add({ username: 'user-sn-check', password: 'pw', sn: 's'.repeat(65) }), 400, 'GW_ERR_SN_INVALID', 'sn');
    expectError(await add({ username: 'user-sn-check', password: 'pw', sn: 'a\nb' }), 400, 'GW_ERR_SN_INVALID', 'sn');
  });

  test('username taken in the product → GW_ERR_USERNAME_TAKEN; device name taken → GW_ERR_DEVICE_NAME_TAKEN', { timeout: 5_000 }, async () => {
    assert.equal((await add({ username: 'user-dup1', password: 'pw' })).status, 201);
    expectError(await add({ username: 'user-dup1', password: 'pw', deviceName: 'other-name' }), 409, 'GW_ERR_USERNAME_TAKEN', 'username');
    expectError(await add({ username: 'user-dup2', password: 'pw', deviceName: 'user-dup1' }), 409, 'GW_ERR_DEVICE_NAME_TAKEN', 'deviceName');
  });

  test('the same username in another product is fine', { timeout: 5_000 }, async () => {
    const other = await api.call<GatewayJson>('POST', '/api/v1/gateways', { json: gatewayBody(certs, { name: 'second_gw', port: 8884 }) });
    const reply = await api.call<DeviceJson>('POST', `/api/v1/products/${other.json.productKey}/devices`, { json: { username: 'user-dup1', password: 'pw' } });
    assert.equal(reply.status, 201, reply.body);
  });

  test('missing fields and unknown fields → GW_ERR_VALIDATION naming them', { timeout: 5_000 }, async () => {
    expectError(await add({ username: 'user-x' }), 400, 'GW_ERR_VALIDATION', 'password');
    expectError(await add({ password: 'x' }), 400, 'GW_ERR_VALIDATION', 'username');
    expectError(await add({ username: 'user-x', password: 'x', status: 'ONLINE' }), 400, 'GW_ERR_VALIDATION', 'status');
  });

  test('an unknown product → GW_ERR_PRODUCT_NOT_FOUND', { timeout: 5_000 }, async () => {
    expectError(await api.call('POST', '/api/v1/products/nope/devices', { json: { username: 'user-1234', password: 'pw' } }), 404, 'GW_ERR_PRODUCT_NOT_FOUND', 'productKey');
  });
});

describe('read, edit, delete', () => {
  test('get one; list in name order with total, limit and a cursor to the next page', { timeout: 5_000 }, async () => {
    const got = await api.call<DeviceJson>('GET', `${devices()}/user-0001`);
    assert.equal(got.status, 200);
    assert.equal(got.json.username, 'user-0001');
    const all = await api.call<DeviceListJson>('GET', `${devices()}?limit=500`);
    assert.equal(all.status, 200);
    const names = all.json.items.map((d: { deviceName: string }) => d.deviceName);
    assert.ok(names.length >= 5, `enough devices to page: ${names.length}`);
    assert.deepEqual(names, [...names].sort());
    assert.equal(all.json.total, names.length);
    assert.equal(all.json.nextCursor, null, 'the last page has no next');
    // Page by 2 to the end: every device once, in order; the last page says so.
    const paged: string[] = [];
    let cursor: string | null = null;
    do {
      const page: { json: DeviceListJson } = await api.call<DeviceListJson>('GET', `${devices()}?limit=2${cursor === null ? '' : `&cursor=${cursor}`}`);
      assert.equal(page.json.total, names.length);
      assert.ok(page.json.items.length === 2 || page.json.nextCursor === null);
      paged.push(...page.json.items.map((d) => d.deviceName));
      cursor = page.json.nextCursor;
    } while (cursor !== null);
    assert.deepEqual(paged, names);
    const product = await api.call<ProductJson>('GET', `/api/v1/products/${productKey}`);
    assert.equal(product.json.deviceCount, names.length);
    assert.deepEqual(product.json.deviceCounts, { online: 0, offline: 0, inactive: names.length, disabled: 0 });
  });

  test('list query refusals name their field', { timeout: 5_000 }, async () => {
    const list = (query: string) => api.call<DeviceListJson>('GET', `${devices()}?${query}`);
    expectError(await list('limit=0'), 400, 'GW_ERR_PAGE_LIMIT_INVALID', 'limit');
    expectError(await list('limit=501'), 400, 'GW_ERR_PAGE_LIMIT_INVALID', 'limit');
    expectError(await list('limit=many'), 400, 'GW_ERR_VALIDATION', 'limit');
    expectError(await list('cursor=not-a-cursor!'), 400, 'GW_ERR_CURSOR_INVALID', 'cursor');
    expectError(await list(`cursor=${Buffer.from('x:user-0001').toString('base64url')}`), 400, 'GW_ERR_CURSOR_INVALID', 'cursor');
    expectError(await list(`search=${'s'.repeat(65)}`), 400, 'GW_ERR_DEVICE_SEARCH_INVALID', 'search');
    expectError(await list('search=a%0Ab'), 400, 'GW_ERR_DEVICE_SEARCH_INVALID', 'search');
    expectError(await list('status=sleeping'), 400, 'GW_ERR_DEVICE_STATUS_INVALID', 'status');
    // An old caller paging by offset would get the first page forever: it is told instead.
    expectError(await list('offset=100'), 400, 'GW_ERR_PAGE_OFFSET_UNSUPPORTED', 'offset');
    const defaults = await list('');
    assert.ok(defaults.json.items.length <= 50);
    assert.equal((await list('status=INACTIVE')).status, 200, 'the status as the device shows it is accepted too');
  });

  test('search (a prefix of name, username or SN) and status, with the filtered total', { timeout: 5_000 }, async () => {
    const one = await api.call<DeviceListJson>('GET', `${devices()}?search=user-000&status=inactive`);
    assert.equal(one.status, 200, one.body);
    assert.ok(one.json.items.length > 0);
    assert.ok(one.json.items.every((d) => d.deviceName.startsWith('user-000') || d.username?.startsWith('user-000') || d.sn?.startsWith('user-000')));
    assert.equal(one.json.total, one.json.items.length);
    const bySn = await api.call<DeviceListJson>('GET', `${devices()}?search=SN-000`);
    assert.deepEqual(bySn.json.items.map((d) => d.sn), ['SN-0001']);
    assert.equal(bySn.json.total, 1);
    const none = await api.call<DeviceListJson>('GET', `${devices()}?status=online`);
    assert.deepEqual(none.json, { items: [], nextCursor: null, total: 0 });
  });

  test('unknown device → GW_ERR_DEVICE_NOT_FOUND', { timeout: 5_000 }, async () => {
    expectError(await api.call<DeviceJson>('GET', `${devices()}/nobody`), 404, 'GW_ERR_DEVICE_NOT_FOUND', 'deviceName');
    expectError(await api.call<DeviceJson>('PATCH', `${devices()}/nobody`, { json: { disabled: true } }), 404, 'GW_ERR_DEVICE_NOT_FOUND', 'deviceName');
    expectError(await api.call('DELETE', `${devices()}/nobody`), 404, 'GW_ERR_DEVICE_NOT_FOUND', 'deviceName');
  });

  test('disable shows DISABLED and tells the data plane; a new password replaces the hash', { timeout: 5_000 }, async () => {
    const before = await api.registry.findDeviceCredential(productKey, 'user-0001');
    assert.ok(before);
    assert.equal(await api.registry.verifyPassword(before.passwordHash, 'S3cret:pw'), true);
    api.events.length = 0;

    const disabled = await api.call<DeviceJson>('PATCH', `${devices()}/user-0001`, { json: { disabled: true } });
    assert.equal(disabled.status, 200);
    assert.equal(disabled.json.status, 'DISABLED');
    const changed = await api.call<DeviceJson>('PATCH', `${devices()}/user-0001`, { json: { password: 'n3w-pw', sn: null } });
    assert.equal(changed.status, 200);
    assert.equal(changed.json.sn, null);
    assert.ok(!changed.body.includes('n3w-pw'));

    const after = await api.registry.findDeviceCredential(productKey, 'user-0001');
    assert.ok(after);
    assert.equal(after.disabled, true);
    assert.equal(await api.registry.verifyPassword(after.passwordHash, 'n3w-pw'), true);
    assert.equal(await api.registry.verifyPassword(after.passwordHash, 'S3cret:pw'), false);
    assert.deepEqual(api.events.map((e) => e.name), ['device.updated', 'device.updated']);

    const enabled = await api.call<DeviceJson>('PATCH', `${devices()}/user-0001`, { json: { disabled: false } });
    assert.equal(enabled.json.status, 'INACTIVE');
    expectError(await api.call<DeviceJson>('PATCH', `${devices()}/user-0001`, { json: { password: 'bad pw' } }), 400, 'GW_ERR_PASSWORD_INVALID', 'password');
    expectError(await api.call<DeviceJson>('PATCH', `${devices()}/user-0001`, { json: { username: 'renamed' } }), 400, 'GW_ERR_VALIDATION', 'username');
  });

  test('delete', { timeout: 5_000 }, async () => {
    assert.equal((await add({ username: 'user-gone', password: 'pw' })).status, 201);
    const reply = await api.call('DELETE', `${devices()}/user-gone`);
    assert.equal(reply.status, 204);
    expectError(await api.call<DeviceJson>('GET', `${devices()}/user-gone`), 404, 'GW_ERR_DEVICE_NOT_FOUND');
    assert.equal(await api.registry.findDeviceCredential(productKey, 'user-gone'), undefined);
  });
});

describe('import', () => {
  const importUrl = () => `${devices()}/import`;

  test('JSON array with good and bad rows answers per row and creates the good ones', { timeout: 5_000 }, async () => {
    const rows = [
      { sn: 'A1', username: 'imp-0001', password: 'pw1' },
      { username: 'imp-0002', password: 'pw2', deviceName: 'imp-device-2' },
      { username: 'bad', password: 'pw' },
      { username: 'imp-0003', password: 'bad pw' },
      { username: 'imp-0001', password: 'again' },
      { username: 'imp-0004', password: 'pw', colour: 'red' },
      'not an object',
      { username: 'user-0002', password: 'pw' },
      { username: 'imp-0005', password: 'pw', deviceName: 'imp-device-2' },
    ];
    const reply = await api.call<ImportJson>('POST', importUrl(), { json: rows });
    assert.equal(reply.status, 200, reply.body);
    assert.equal(reply.json.total, 9);
    assert.equal(reply.json.created, 2);
    assert.equal(reply.json.failed, 7);
    const summary = reply.json.rows.map((r: { row: number; ok: boolean; deviceName?: string; error?: { code: string; field: string | null } }) =>
      [r.row, r.ok, r.deviceName ?? null, r.error?.code ?? null, r.error?.field ?? null]);
    assert.deepEqual(summary, [
      [1, true, 'imp-0001', null, null],
      [2, true, 'imp-device-2', null, null],
      [3, false, null, 'GW_ERR_USERNAME_INVALID', 'username'],
      [4, false, null, 'GW_ERR_PASSWORD_INVALID', 'password'],
      [5, false, null, 'GW_ERR_USERNAME_TAKEN', 'username'],
      [6, false, null, 'GW_ERR_VALIDATION', 'colour'],
      [7, false, null, 'GW_ERR_VALIDATION', null],
      [8, false, null, 'GW_ERR_USERNAME_TAKEN', 'username'],
      [9, false, null, 'GW_ERR_DEVICE_NAME_TAKEN', 'deviceName'],
    ]);
    assert.ok(!reply.body.includes('pw1'), 'passwords are not echoed');
    const first = await api.call<DeviceJson>('GET', `${devices()}/imp-0001`);
    assert.equal(first.json.sn, 'A1');
    const credential = await api.registry.findDeviceCredential(productKey, 'imp-0002');
    assert.equal(credential?.deviceName, 'imp-device-2');
    assert.equal(await api.registry.verifyPassword(credential?.passwordHash, 'pw2'), true);
  });

  test('CSV without a header: sn,username,password, with quotes, CRLF, blank lines and mixed rows', { timeout: 5_000 }, async () => {
    const csv = [
      'SN-1,csv-0001,pw-1',
      '"SN, with comma",csv-0002,pw-2',
      '',
      ',csv-0003,pw-3',
      'SN-4,csv-0004',
      'SN-5,csv-0005,pw 5',
      'SN-6,csv-0001,pw-6',
      ' SN-7 , csv-0007 , pw-7 ',
    ].join('\r\n');
    const reply = await api.call<ImportJson>('POST', importUrl(), { csv });
    assert.equal(reply.status, 200, reply.body);
    const summary = reply.json.rows.map((r: { row: number; ok: boolean; error?: { code: string } }) => [r.row, r.ok, r.error?.code ?? null]);
    assert.deepEqual(summary, [
      [1, true, null], [2, true, null], [3, true, null], [4, false, 'GW_ERR_IMPORT_INVALID'],
      [5, false, 'GW_ERR_PASSWORD_INVALID'], [6, false, 'GW_ERR_USERNAME_TAKEN'], [7, true, null],
    ]);
    assert.match(reply.json.rows[3]?.error?.message ?? '', /line 5 has 2 column/);
    assert.equal((await api.call<DeviceJson>('GET', `${devices()}/csv-0002`)).json.sn, 'SN, with comma');
    assert.equal((await api.call<DeviceJson>('GET', `${devices()}/csv-0003`)).json.sn, null);
    assert.equal((await api.call<DeviceJson>('GET', `${devices()}/csv-0007`)).json.sn, 'SN-7');
  });

  test('CSV with a header may reorder columns and add deviceName', { timeout: 5_000 }, async () => {
    const csv = 'username,password,deviceName,sn\nhdr-0001,pw,hdr-device-1,S1\nhdr-0002,pw,,S2\n';
    const reply = await api.call<ImportJson>('POST', importUrl(), { csv });
    assert.equal(reply.status, 200, reply.body);
    assert.deepEqual(reply.json.rows.map((r: { deviceName?: string }) => r.deviceName), ['hdr-device-1', 'hdr-0002']);
    assert.equal(reply.json.rows[0]?.row, 1, 'the header is not a row');
  });

  test('CSV with content type parameters (charset) is accepted', { timeout: 5_000 }, async () => {
    const reply = await api.call<ImportJson>('POST', importUrl(), { csv: 'sn,username,password\nS,cs-00001,pw\n', headers: { 'content-type': 'text/csv; charset=utf-8' } });
    assert.equal(reply.status, 200, reply.body);
    assert.equal(reply.json.created, 1);
  });

  test('an unclosed quote → GW_ERR_IMPORT_INVALID for the request', { timeout: 5_000 }, async () => {
    expectError(await api.call<ImportJson>('POST', importUrl(), { csv: 'sn,username,password\n"open,bad-0001,pw\n' }), 400, 'GW_ERR_IMPORT_INVALID', 'body');
  });

  test('no rows, or a JSON object instead of an array → GW_ERR_IMPORT_INVALID', { timeout: 5_000 }, async () => {
    expectError(await api.call<ImportJson>('POST', importUrl(), { csv: 'sn,username,password\n' }), 400, 'GW_ERR_IMPORT_INVALID');
    expectError(await api.call<ImportJson>('POST', importUrl(), { json: [] }), 400, 'GW_ERR_IMPORT_INVALID');
    expectError(await api.call<ImportJson>('POST', importUrl(), { json: { username: 'x' } }), 400, 'GW_ERR_VALIDATION');
  });

  test('10,001 rows → GW_ERR_IMPORT_TOO_LARGE, nothing created', { timeout: 5_000 }, async () => {
    const before = (await api.call<ProductJson>('GET', `/api/v1/products/${productKey}`)).json.deviceCount;
    const lines = Array.from({ length: 10_001 }, (_, i) => `SN${i},big-${String(i).padStart(6, '0')},pw`);
    expectError(await api.call<ImportJson>('POST', importUrl(), { csv: lines.join('\n') }), 413, 'GW_ERR_IMPORT_TOO_LARGE', 'rows');
    expectError(await api.call<ImportJson>('POST', importUrl(), { json: lines.map((l) => ({ username: l.split(',')[1], password: 'pw' })) }), 413, 'GW_ERR_IMPORT_TOO_LARGE', 'rows');
    assert.equal((await api.call<ProductJson>('GET', `/api/v1/products/${productKey}`)).json.deviceCount, before);
  });

  test('a few hundred rows import in one request', { timeout: 90_000 }, async () => {
    const lines = Array.from({ length: 300 }, (_, i) => `SN${i},bulk-${String(i).padStart(4, '0')},pw-${i}`);
    const reply = await api.call<ImportJson>('POST', importUrl(), { csv: lines.join('\n') });
    assert.equal(reply.status, 200, reply.body.slice(0, 300));
    assert.equal(reply.json.created, 300);
    const credential = await api.registry.findDeviceCredential(productKey, 'bulk-0299');
    assert.equal(await api.registry.verifyPassword(credential?.passwordHash, 'pw-299'), true);
  });

  test('a plain-text body → GW_ERR_UNSUPPORTED_MEDIA_TYPE', { timeout: 5_000 }, async () => {
    expectError(await api.call<ImportJson>('POST', importUrl(), { csv: 'a,b,c', headers: { 'content-type': 'text/plain' } }), 415, 'GW_ERR_UNSUPPORTED_MEDIA_TYPE');
  });
});
