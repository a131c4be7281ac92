/**
 * Issue 17: CSV imports detect their encoding, over real HTTP and through the `gatehouse` bin. UTF-8
 * with or without a BOM (the BOM never becomes part of the first header name), UTF-16 by its BOM; any
 * other bytes are refused naming the line and byte (nothing created) unless the charset is named, in
 * which case a Latin-1 "é" or a Windows-1252 "€" reaches the SN intact — never U+FFFD.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { getPki } from '../harness/pki.ts';
import { removeDataDir, startTestGatehouse, TEST_ADMIN_TOKEN, type TestGatehouse } from '../harness/gatehouse.ts';
import { createGateway, type GatewayJson } from './platform-support.ts';

const run = promisify(execFile);
let gh: TestGatehouse;
let gw: GatewayJson;

before(async () => {
  gh = await startTestGatehouse();
  gw = await createGateway(gh, await getPki(), 'csv_fleet');
}, { timeout: 60_000 });
after(async () => {
  await gh.stop();
  await removeDataDir(gh.dataDir);
}, { timeout: 30_000 });

interface ImportAnswer { created: number; failed: number; rows: { ok: boolean; error?: { code: string } }[] }
interface ErrorAnswer { error: { code: string; message: string; field: string } }

async function importCsv(bytes: Buffer, contentType = 'text/csv', query = ''): Promise<{ status: number; json: ImportAnswer & ErrorAnswer }> {
  const res = await fetch(`${gh.gatehouse.url}/api/v1/products/${gw.productKey}/devices/import${query}`, {
    method: 'POST', headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}`, 'content-type': contentType }, body: new Uint8Array(bytes),
  });
  return { status: res.status, json: await res.json() as ImportAnswer & ErrorAnswer };
}

async function snOf(deviceName: string): Promise<string | null> {
  const r = await gh.api<{ sn: string | null }>('GET', `/products/${gw.productKey}/devices/${deviceName}`);
  assert.equal(r.status, 200, JSON.stringify(r.json));
  return r.json.sn;
}

const latin1 = (text: string): Buffer => Buffer.from(text, 'latin1');

test('UTF-8 without and with a BOM: the SN keeps its accents, and a BOM before a header is not part of "sn"', { timeout: 90_000 }, async () => {
  const plain = await importCsv(Buffer.from('Café-01,enc-0001,pw\n', 'utf8'));
  assert.equal(plain.status, 200, JSON.stringify(plain.json));
  assert.equal(await snOf('enc-0001'), 'Café-01');
  const bom = await importCsv(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('sn,username,password\nNaïve-02,enc-0002,pw\n', 'utf8')]));
  assert.equal(bom.status, 200, JSON.stringify(bom.json));
  assert.equal(bom.json.created, 1, JSON.stringify(bom.json));
  assert.equal(await snOf('enc-0002'), 'Naïve-02');
});

test('Latin-1 bytes without a charset are refused naming the line and byte, and nothing is created', { timeout: 5_000 }, async () => {
  const r = await importCsv(latin1('sn,username,password\nOK-1,enc-0003,pw\nCaf\u00e9-03,enc-0004,pw\n'));
  assert.equal(r.status, 400);
  assert.equal(r.json.error.code, 'GW_ERR_IMPORT_ENCODING');
  assert.match(r.json.error.message, /line 3, byte 4 of the line \(offset 41 in the file\) is 0xe9/);
  for (const d of ['enc-0003', 'enc-0004']) {
    assert.equal((await gh.api('GET', `/products/${gw.productKey}/devices/${d}`)).status, 404);
  }
  // A UTF-8 sequence cut short, an overlong form and a surrogate are not UTF-8 either.
  for (const bad of [[0xc3], [0xc0, 0xaf], [0xed, 0xa0, 0x80]]) {
    const cut = await importCsv(Buffer.concat([Buffer.from('S-', 'utf8'), Buffer.from(bad), Buffer.from(',enc-0099,pw\n')]));
    assert.equal(cut.json.error?.code, 'GW_ERR_IMPORT_ENCODING', JSON.stringify(bad));
  }
});

test('a named charset decodes: iso-8859-1 in the content type, windows-1252 (€) in the query, UTF-16LE by its BOM', { timeout: 5_000 }, async () => {
  const l1 = await importCsv(latin1('Caf\u00e9-05,enc-0005,pw\n'), 'text/csv; charset=ISO-8859-1');
  assert.equal(l1.status, 200, JSON.stringify(l1.json));
  assert.equal(await snOf('enc-0005'), 'Café-05');
  const cp = await importCsv(Buffer.concat([Buffer.from([0x80]), Buffer.from('-06,enc-0006,pw\n')]), 'text/csv', '?charset=windows-1252');
  assert.equal(cp.status, 200, JSON.stringify(cp.json));
  assert.equal(await snOf('enc-0006'), '€-06');
  const u16 = await importCsv(Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('Zoë-07,enc-0007,pw\n', 'utf16le')]));
  assert.equal(u16.status, 200, JSON.stringify(u16.json));
  assert.equal(await snOf('enc-0007'), 'Zoë-07');
  const unknown = await importCsv(latin1('x,enc-0008,pw\n'), 'text/csv; charset=ebcdic');
  assert.equal(unknown.status, 400);
  assert.equal(unknown.json.error.code, 'GW_ERR_IMPORT_CHARSET_UNSUPPORTED');
  assert.equal(unknown.json.error.field, 'charset');
});

test('gatehouse devices import sends the file\'s bytes: refused without --charset, imported with it', { timeout: 90_000 }, async () => {
  const file = path.join(gh.dataDir, 'legacy.csv');
  await writeFile(file, latin1('sn,username,password\nM\u00fcnchen-09,enc-0009,pw\n'));
  const env = { ...process.env, GATEHOUSE_URL: gh.gatehouse.url, GATEHOUSE_ADMIN_TOKEN: TEST_ADMIN_TOKEN };
  const refused = await run(process.execPath, ['bin/gatehouse.mjs', 'devices', 'import', gw.productKey, file], { env }).then(() => null, (e: { stderr: string }) => e.stderr);
  assert.ok(refused !== null, 'the import should have failed');
  assert.match(refused, /GW_ERR_IMPORT_ENCODING/);
  await run(process.execPath, ['bin/gatehouse.mjs', 'devices', 'import', gw.productKey, file, '--charset', 'iso-8859-1'], { env });
  assert.equal(await snOf('enc-0009'), 'München-09');
});
