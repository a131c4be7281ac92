/** `gatehouse gateways …` / `gatehouse devices …` against the API over real HTTP on 127.0.0.1. */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Command } from 'commander';
import { registerAdminCommands } from '../../src/cli/admin-commands.ts';
import { getApiCerts, type ApiCerts } from './certs.ts';
import { ADMIN_TOKEN, startTestApi, type GatewayJson, type TestApi } from './helpers.ts';

let api: TestApi;
let certs: ApiCerts;
let url: string;
let files: string;

before(async () => {
  certs = await getApiCerts();
  api = await startTestApi();
  await api.app.listen({ host: '127.0.0.1', port: 0 });
  url = `http://127.0.0.1:${(api.app.server.address() as AddressInfo).port}`;
  files = await mkdtemp(path.join(os.tmpdir(), 'gatehouse-cli-'));
  await writeFile(path.join(files, 'chain.pem'), certs.chain);
  await writeFile(path.join(files, 'key.pem'), certs.key);
}, { timeout: 60_000 });
after(async () => {
  await api.close();
  await certs.dispose();
  await rm(files, { recursive: true, force: true });
}, { timeout: 30_000 });

/** Runs `gatehouse <args>` in-process; the URL and token come from the environment as a script's would. */
async function gatehouse(...args: string[]): Promise<{ out: string; err: string; code: number }> {
  return gatehouseAnswering(undefined, ...args);
}

/** The same, with an operator at a terminal who answers every question with `answer` (null: no terminal). */
async function gatehouseAnswering(answer: string | undefined, ...args: string[]): Promise<{ out: string; err: string; code: number; asked: string[] }> {
  const asked: string[] = [];
  const out: string[] = [];
  const err: string[] = [];
  let code = 0;
  const program = new Command('gatehouse').exitOverride();
  registerAdminCommands(program, {
    out: (text) => out.push(text), err: (text) => err.push(text),
    env: { GATEHOUSE_URL: url, GATEHOUSE_ADMIN_TOKEN: ADMIN_TOKEN }, setExitCode: (c) => { code = c; },
    ask: (question) => {
      asked.push(question);
      return Promise.resolve(answer ?? null);
    },
  });
  await program.parseAsync(['node', 'gatehouse', ...args]);
  return { out: out.join('\n'), err: err.join('\n'), code, asked };
}

describe('gatehouse CLI', () => {
  let id = '';
  let productKey = '';

  test('gateways create from flags and files, then list shows it', { timeout: 20_000 }, async () => {
    const created = await gatehouse('gateways', 'create', '--name', 'cli_gw', '--port', '8890',
      '--cert', path.join(files, 'chain.pem'), '--key', path.join(files, 'key.pem'), '--json');
    assert.equal(created.code, 0, created.err);
    const gateway = JSON.parse(created.out) as GatewayJson;
    ({ id, productKey } = gateway);
    assert.equal(gateway.url, 'mqtts://gw.example.com:8890');
    const list = await gatehouse('gateways', 'list');
    assert.equal(list.code, 0);
    assert.match(list.out, /^ID\s+NAME\s+PORT\s+STATUS/);
    assert.match(list.out, new RegExp(`${id}\\s+cli_gw\\s+8890\\s+RUNNING`));
  });

  test('gateways update / stop / start / get', { timeout: 30_000 }, async () => {
    const updated = await gatehouse('gateways', 'update', id, '--https-url', 'https://verify.example.com/', '--param', 'sn=${clientId}', '--json');
    assert.equal(updated.code, 0, updated.err);
    assert.deepEqual((JSON.parse(updated.out) as GatewayJson).thirdParty, { provider: 'HTTPS', url: 'https://verify.example.com/', params: [{ key: 'sn', value: '${clientId}' }], caCertificate: null, timeoutMs: 5000, acceptCacheTtlSeconds: 60, rejectCacheTtlSeconds: 10, signingSecretSet: false });
    // A gateway is named by its name as well as its id.
    assert.match((await gatehouse('gateways', 'stop', 'cli_gw')).out, /STOPPED/);
    assert.match((await gatehouse('gateways', 'start', 'cli_gw')).out, /RUNNING/);
    assert.equal((JSON.parse((await gatehouse('gateways', 'get', 'cli_gw', '--json')).out) as GatewayJson).authType, 'THIRD_PARTY');
    assert.equal((JSON.parse((await gatehouse('gateways', 'get', id, '--json')).out) as GatewayJson).authType, 'THIRD_PARTY');
    const unknown = await gatehouse('gateways', 'get', 'no_such_gw');
    assert.equal(unknown.code, 1);
    assert.match(unknown.err, /GW_ERR_GATEWAY_NOT_FOUND: no gateway with the id or name no_such_gw \(gateway\)/);
  });

  test('gateways update --acl-template / --acl-default / --acl-rule set topic access control', { timeout: 5_000 }, async () => {
    const template = await gatehouse('gateways', 'update', id, '--acl-template', 'per-device', '--json');
    assert.equal(template.code, 0, template.err);
    assert.deepEqual((JSON.parse(template.out) as { accessControl: unknown }).accessControl,
      { defaultAction: 'DENY', rules: [{ action: 'ALLOW', access: 'ALL', topic: 'devices/${deviceName}/#' }] });
    const rules = await gatehouse('gateways', 'update', id, '--acl-default', 'ALLOW', '--acl-rule', 'DENY:SUBSCRIBE:#', '--acl-rule', 'ALLOW:PUBLISH:a:b/${clientId}', '--json');
    assert.equal(rules.code, 0, rules.err);
    assert.deepEqual((JSON.parse(rules.out) as { accessControl: unknown }).accessControl,
      { defaultAction: 'ALLOW', rules: [{ action: 'DENY', access: 'SUBSCRIBE', topic: '#' }, { action: 'ALLOW', access: 'PUBLISH', topic: 'a:b/${clientId}' }] });
    const bad = await gatehouse('gateways', 'update', id, '--acl-rule', 'ALLOW:READ:x');
    assert.equal(bad.code, 1);
    assert.match(bad.err, /GW_ERR_VALIDATION: accessControl.rules\[0\].access must be one of PUBLISH, SUBSCRIBE, ALL/);
  });

  test('gateways update --limit sets limits by name (none lifts one); the server names a bad one', { timeout: 5_000 }, async () => {
    const set = await gatehouse('gateways', 'update', id, '--limit', 'maxConnections=500', '--limit', 'maxPacketSize=none', '--json');
    assert.equal(set.code, 0, set.err);
    const limits = (JSON.parse(set.out) as { limits: Record<string, number | null> }).limits;
    assert.equal(limits.maxConnections, 500);
    assert.equal(limits.maxPacketSize, null);
    assert.equal(limits.maxSubscriptionsPerDevice, 1000);
    const bad = await gatehouse('gateways', 'update', id, '--limit', 'maxConnections=0');
    assert.equal(bad.code, 1);
    assert.match(bad.err, /GW_ERR_LIMIT_OUT_OF_RANGE: limits.maxConnections must be from 1/);
    const typo = await gatehouse('gateways', 'update', id, '--limit', 'maxConnections=lots');
    assert.equal(typo.code, 1);
    assert.match(typo.err, /--limit maxConnections=lots/);
  });

  test('devices import a CSV file; failed rows are listed and the exit status is 1', { timeout: 10_000 }, async () => {
    const csv = path.join(files, 'devices.csv');
    await writeFile(csv, 'sn,username,password\nS1,cli-0001,pw1\nS2,bad,pw2\nS3,cli-0003,pw3\n');
    const result = await gatehouse('devices', 'import', productKey, csv);
    assert.equal(result.code, 1);
    assert.match(result.out, /2 of 3 rows imported, 1 failed/);
    assert.match(result.out, /2\s+GW_ERR_USERNAME_INVALID\s+username/);
    const list = await gatehouse('devices', 'list', productKey);
    assert.equal(list.code, 0);
    assert.match(list.out, /cli-0001\s+cli-0001\s+S1\s+INACTIVE/);
    assert.match(list.out, /2 of 2 devices/);
    // The product by its gateway's name.
    assert.equal((await gatehouse('devices', 'list', 'cli_gw')).out, list.out);
  });

  test('API errors print their code and field and exit 1', { timeout: 5_000 }, async () => {
    const result = await gatehouse('gateways', 'create', '--name', 'x', '--cert', path.join(files, 'chain.pem'), '--key', path.join(files, 'key.pem'));
    assert.equal(result.code, 1);
    assert.match(result.err, /^error: GW_ERR_GATEWAY_NAME_INVALID: .* \(name\)$/);
    const unauthorized = await gatehouse('gateways', 'list', '--token', 'wrong-token-0123456789');
    assert.equal(unauthorized.code, 1);
    assert.match(unauthorized.err, /GW_ERR_UNAUTHORIZED/);
    const unreachable = await gatehouse('gateways', 'list', '--url', 'http://127.0.0.1:1');
    assert.equal(unreachable.code, 1);
    assert.match(unreachable.err, /cannot reach http:\/\/127\.0\.0\.1:1/);
  });

  test('gateways delete asks first (naming the devices that go with it); no terminal needs --yes', { timeout: 10_000 }, async () => {
    const scripted = await gatehouse('gateways', 'delete', 'cli_gw');
    assert.equal(scripted.code, 1);
    assert.match(scripted.err, /CLI_CONFIRMATION_REQUIRED: deleting gateway cli_gw with 2 devices needs --yes/);
    const declined = await gatehouseAnswering('n', 'gateways', 'delete', 'cli_gw');
    assert.deepEqual(declined.asked, [`Delete gateway cli_gw (${id}) with its product and 2 devices? [y/N] `]);
    assert.equal(declined.code, 1);
    assert.match(declined.err, /not deleted: cli_gw/);
    assert.equal((await gatehouse('gateways', 'get', id)).code, 0, 'still there');

    const confirmed = await gatehouseAnswering('yes', 'gateways', 'delete', 'cli_gw');
    assert.equal(confirmed.code, 0, confirmed.err);
    assert.match(confirmed.out, new RegExp(`deleted cli_gw \\(${id}\\)`));
    assert.match((await gatehouse('gateways', 'get', id)).err, /GW_ERR_GATEWAY_NOT_FOUND/);
  });

  test('gateways delete --yes asks nothing', { timeout: 10_000 }, async () => {
    const created = await gatehouse('gateways', 'create', '--name', 'cli_gw_two', '--port', '8891',
      '--cert', path.join(files, 'chain.pem'), '--key', path.join(files, 'key.pem'), '--json');
    assert.equal(created.code, 0, created.err);
    const deleted = await gatehouseAnswering('n', 'gateways', 'delete', 'cli_gw_two', '--yes', '--json');
    assert.equal(deleted.code, 0, deleted.err);
    assert.deepEqual(deleted.asked, []);
    assert.equal((JSON.parse(deleted.out) as { name: string }).name, 'cli_gw_two');
  });
});
