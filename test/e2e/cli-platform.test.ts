/**
 * `gatehouse functions`, `messages` and `webhooks` against a whole Gatehouse (issue 14 item 7): run in-process
 * as an operator's shell on the server would run them (API address from GATEHOUSE_HTTP_HOST / _PORT), with a
 * real MQTT.js device for the messages up and down. Deletions ask first and need --yes without a terminal.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { Command } from 'commander';
import mqtt from 'mqtt';
import { registerPlatformCommands } from '../../src/cli/platform-commands.ts';
import { freePort, removeDataDir, startTestGatehouse, TEST_ADMIN_TOKEN, type TestGatehouse } from '../harness/gatehouse.ts';
import { getPki, type SharedPki } from '../harness/pki.ts';
import { waitFor } from '../harness/third-party.ts';

interface GatewayJson { id: string; name: string; port: number; productKey: string; status: string }

let pki: SharedPki;
let gh: TestGatehouse;
let gateway: GatewayJson;
let scratch: string;

before(async () => {
  pki = await getPki();
  gh = await startTestGatehouse();
  scratch = mkdtempSync(path.join(tmpdir(), 'gh-cli-platform-'));
  gateway = (await gh.api<GatewayJson>('POST', '/gateways', {
    name: 'cli_platform', port: await freePort(), certificates: { serverCertificateChain: pki.server.chainPem, serverPrivateKey: pki.server.keyPem },
  })).json;
  assert.equal(gateway.status, 'RUNNING');
  const imported = await gh.api<{ created: number }>('POST', `/products/${gateway.productKey}/devices/import`, 'sn,username,password\nSN-1,dev-1,pw-one\n', 'text/csv');
  assert.equal(imported.json.created, 1);
}, { timeout: 60_000 });

after(async () => {
  await gh.stop();
  await removeDataDir(gh.dataDir);
  rmSync(scratch, { recursive: true, force: true });
}, { timeout: 30_000 });

/** Runs `gatehouse <args>`; `answer` is what the operator types when asked (null: no terminal). */
async function gatehouse(args: string[], answer: string | null = null): Promise<{ out: string; err: string; code: number; asked: string[] }> {
  const url = new URL(gh.gatehouse.url);
  const out: string[] = [];
  const err: string[] = [];
  const asked: string[] = [];
  let code = 0;
  const program = new Command('gatehouse').exitOverride();
  registerPlatformCommands(program, {
    out: (text) => out.push(text),
    err: (text) => err.push(text),
    env: { GATEHOUSE_HTTP_HOST: url.hostname, GATEHOUSE_HTTP_PORT: url.port, GATEHOUSE_ADMIN_TOKEN: TEST_ADMIN_TOKEN },
    setExitCode: (c) => {
      code = c;
    },
    ask: (question) => {
      asked.push(question);
      return Promise.resolve(answer);
    },
  });
  await program.parseAsync(['node', 'gatehouse', ...args]);
  return { out: out.join('\n'), err: err.join('\n'), code, asked };
}

function file(name: string, content: string): string {
  const p = path.join(scratch, name);
  writeFileSync(p, content);
  return p;
}

test('functions: put from a file, list, get, invoke as a CONNECT would, and delete only when confirmed', { timeout: 60_000 }, async () => {
  const source = "function handler(e) { console.log('checking ' + e.userName); return e.userName === 'ok' ? { result: 'true', deviceName: 'dev-' + e.clientId } : { result: 'false', message: 'not you' }; }";
  const put = await gatehouse(['functions', 'put', 'cli_check', file('check.js', source), '--timeout', '200', '--json']);
  assert.equal(put.code, 0, put.err);
  assert.deepEqual((({ name, timeoutMs }) => ({ name, timeoutMs }))(JSON.parse(put.out) as { name: string; timeoutMs: number }), { name: 'cli_check', timeoutMs: 200 });
  assert.match((await gatehouse(['functions', 'list'])).out, /^NAME\s+TIMEOUT MS\s+MEMORY MB\s+UPDATED\ncli_check\s+200\s+/);
  assert.ok((await gatehouse(['functions', 'get', 'cli_check'])).out.endsWith(source));

  const accepted = await gatehouse(['functions', 'invoke', 'cli_check', '--username', 'ok', '--password', 'x', '--client-id', '42']);
  assert.equal(accepted.code, 0, accepted.err);
  assert.match(accepted.out, /^ACCEPT as dev-42\n/);
  assert.match(accepted.out, /log: checking ok/);
  const refused = await gatehouse(['functions', 'invoke', 'cli_check', '--username', 'stranger', '--json']);
  assert.equal(refused.code, 0, 'a refusal is an answer, not a failure of the command');
  assert.equal((JSON.parse(refused.out) as { decision: { result: string } }).decision.result, 'REJECT');
  const bad = await gatehouse(['functions', 'put', 'cli_check', file('check.js', source), '--timeout', 'soon']);
  assert.deepEqual([bad.code, bad.err], [1, 'error: CLI_NUMBER_INVALID: --timeout must be a whole number, not soon (timeout)']);

  const noTerminal = await gatehouse(['functions', 'delete', 'cli_check']);
  assert.equal(noTerminal.code, 1);
  assert.match(noTerminal.err, /CLI_CONFIRMATION_REQUIRED: deleting function cli_check needs --yes/);
  const declined = await gatehouse(['functions', 'delete', 'cli_check'], 'n');
  assert.deepEqual([declined.code, declined.asked], [1, ['Delete function cli_check? [y/N] ']]);
  assert.equal((await gh.api('GET', '/functions/cli_check')).status, 200, 'still there');
  const yes = await gatehouse(['functions', 'delete', 'cli_check'], 'y');
  assert.deepEqual([yes.code, yes.out], [0, 'deleted function cli_check']);
  assert.equal((await gh.api('GET', '/functions/cli_check')).status, 404);
  const missing = await gatehouse(['functions', 'delete', 'cli_check', '--yes']);
  assert.equal(missing.code, 1);
  assert.match(missing.err, /^error: GW_ERR_/);
});

test('messages: send down to a device in text, hex or base64 (by gateway name), not-delivered is exit 1; list shows its uplinks', { timeout: 60_000 }, async () => {
  const device = await mqtt.connectAsync({
    host: '127.0.0.1', port: gateway.port, protocol: 'mqtts', ca: pki.root.certPem, servername: 'localhost', reconnectPeriod: 0,
    protocolVersion: 5, clientId: 'cli-dev-1', username: 'dev-1', password: 'pw-one',
  });
  try {
    const got: Buffer[] = [];
    device.on('message', (_topic, payload) => got.push(payload));
    await device.subscribeAsync('devices/dev-1/cmd', { qos: 1 });
    const hex = await gatehouse(['messages', 'send', 'cli_platform', 'dev-1', 'devices/dev-1/cmd', '--hex', '01 02 ff', '--qos', '1']);
    assert.deepEqual([hex.code, hex.out], [0, 'ACKED: to dev-1 on devices/dev-1/cmd'], hex.err);
    const text = await gatehouse(['messages', 'send', gateway.productKey, 'dev-1', 'devices/dev-1/cmd', '--text', 'reboot', '--json']);
    assert.equal((JSON.parse(text.out) as { result: string }).result, 'SENT');
    await gatehouse(['messages', 'send', gateway.id, 'dev-1', 'devices/dev-1/cmd', '--base64', 'aGk=']);
    await waitFor(() => Promise.resolve(got.length === 3 ? true : undefined));
    assert.deepEqual(got.map((b) => b.toString('hex')), ['0102ff', Buffer.from('reboot').toString('hex'), Buffer.from('hi').toString('hex')]);

    const notSubscribed = await gatehouse(['messages', 'send', 'cli_platform', 'dev-1', 'devices/dev-1/other', '--text', 'x']);
    assert.deepEqual([notSubscribed.code, notSubscribed.out], [1, 'NOT_SUBSCRIBED: to dev-1 on devices/dev-1/other']);
    const twoPayloads = await gatehouse(['messages', 'send', 'cli_platform', 'dev-1', 'devices/dev-1/cmd', '--text', 'a', '--hex', '61']);
    assert.deepEqual([twoPayloads.code, twoPayloads.err], [1, 'error: CLI_PAYLOAD_REQUIRED: give the payload once: --text, --hex, --base64 or --file (got --text, --hex) (payload)']);
    const badHex = await gatehouse(['messages', 'send', 'cli_platform', 'dev-1', 'devices/dev-1/cmd', '--hex', 'abc']);
    assert.deepEqual([badHex.code, badHex.err], [1, 'error: GW_ERR_PAYLOAD_INVALID: payload is not valid hex (payload)']);

    await device.publishAsync('devices/dev-1/up', 'temp=21.5', { qos: 1 });
    await device.publishAsync('devices/dev-1/up', Buffer.from([0, 1, 2]), { qos: 1 });
    const listed = await waitFor(async () => {
      const r = await gatehouse(['messages', 'list', '--gateway', 'cli_platform', '--device', 'dev-1', '--json']);
      const items = (JSON.parse(r.out) as { items: { topic: string; payload: string }[] }).items;
      return items.length === 2 ? items : undefined;
    });
    assert.deepEqual(listed.map((m) => Buffer.from(m.payload, 'base64').toString('hex')), ['000102', Buffer.from('temp=21.5').toString('hex')]);
    const table = await gatehouse(['messages', 'list', '--device', 'dev-1', '--limit', '5']);
    assert.match(table.out, /^RECEIVED\s+DEVICE\s+TOPIC\s+QOS\s+PAYLOAD\s+PARSED\n/);
    assert.match(table.out, /dev-1\s+devices\/dev-1\/up\s+1\s+base64:AAEC/, 'binary shown as base64');
    assert.match(table.out, /dev-1\s+devices\/dev-1\/up\s+1\s+temp=21\.5/, 'text shown as text');
  } finally {
    await device.endAsync(true);
  }
  const offline = await gatehouse(['messages', 'send', 'cli_platform', 'dev-1', 'devices/dev-1/cmd', '--text', 'x']);
  assert.deepEqual([offline.code, offline.out], [1, 'OFFLINE: to dev-1 on devices/dev-1/cmd']);
});

test('webhooks: create for one gateway (secret shown once, on stderr), list, update, dead letters, delete with --yes', { timeout: 60_000 }, async () => {
  const created = await gatehouse(['webhooks', 'create', '--endpoint', 'https://127.0.0.1:9/hook', '--gateway', 'cli_platform', '--events', 'message,online', '--description', 'ops']);
  assert.equal(created.code, 0, created.err);
  assert.match(created.err, /^signing secret \(shown once, keep it\): \S{16,}$/);
  const id = /^\S+\s+\S+\s+\S+\s+\S+\s+\S+\s+\S+\s+\S+\n(\S+)\s+https:\/\/127\.0\.0\.1:9\/hook\s+(\S+)\s+message,online\s+yes/.exec(created.out);
  assert.ok(id, created.out);
  assert.equal(id[2], gateway.id);
  const webhookId = id[1]!;
  const updated = await gatehouse(['webhooks', 'update', webhookId, '--disable', '--gateway', 'all', '--json']);
  const view = JSON.parse(updated.out) as { enabled: boolean; gatewayId: string | null; description: string; secret?: string };
  assert.deepEqual([view.enabled, view.gatewayId, view.description, view.secret], [false, null, 'ops', undefined]);
  const conflicting = await gatehouse(['webhooks', 'update', webhookId, '--enable', '--disable']);
  assert.deepEqual([conflicting.code, conflicting.err], [1, 'error: CLI_FLAGS_CONFLICT: give --enable or --disable, not both (enabled)']);
  const noUrl = await gatehouse(['webhooks', 'create']);
  assert.equal(noUrl.code, 1);
  assert.match((await gatehouse(['webhooks', 'list'])).out, new RegExp(`${webhookId}\\s+https://127\\.0\\.0\\.1:9/hook\\s+all\\s+message,online\\s+no`));
  const dead = await gatehouse(['webhooks', 'dead-letters', webhookId, '--json']);
  assert.deepEqual(JSON.parse(dead.out), { items: [] });
  const deleted = await gatehouse(['webhooks', 'delete', webhookId, '--yes']);
  assert.deepEqual([deleted.code, deleted.out], [0, `deleted webhook ${webhookId}`]);
  assert.deepEqual((await gh.api<{ items: unknown[] }>('GET', '/webhooks')).json.items, []);
});
