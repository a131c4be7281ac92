/**
 * What `npm start` runs — the bundle in dist/ (scripts/build.mjs), plain node, no TypeScript loader —
 * started as a process on a fresh data directory: the console and the API answer on one port, the
 * `gatehouse` bin (dist/cli.mjs) lists the demo gateway through the API with the printed token, a
 * verification function runs in the sandbox's bundled worker (dist/sandbox-worker.mjs), and the demo
 * gateway works with the exact mosquitto_sub / mosquitto_pub lines it prints.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { DIST, ensureBuilt } from '../../scripts/build.mjs';
import { freePort, removeDataDir } from '../harness/gatehouse.ts';
import { runGatehouseExpectingExit, startGatehouseProcess } from '../harness/gatehouse-process.ts';

const run = promisify(execFile);

test('dist/main.mjs serves console and API, the bin talks to it, and its demo gateway carries messages for the printed commands', { timeout: 90_000 }, async (t) => {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'gatehouse-start-'));
  t.after(() => removeDataDir(dataDir));
  await ensureBuilt(); // as the bin does: rebuilt when a source is newer than dist/
  const [httpPort, demoPort] = [await freePort(), await freePort()];

  const child = spawn(process.execPath, ['--enable-source-maps', path.join(DIST, 'main.mjs')], {
    env: { ...process.env, GATEHOUSE_DATA_DIR: dataDir, GATEHOUSE_HTTP_PORT: String(httpPort), GATEHOUSE_DEMO_PORT: String(demoPort), GATEHOUSE_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  t.after(async () => {
    if (child.exitCode === null) child.kill('SIGTERM');
    await exited;
  });
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  const banner = await new Promise<string>((resolve, reject) => {
    child.stdout.on('data', (b: Buffer) => {
      stdout += b.toString();
      if (/mosquitto_pub .*\n/.test(stdout)) resolve(stdout);
    });
    void exited.then((code) => reject(new Error(`exited ${code}: ${stderr}`)));
  });

  assert.match(banner, new RegExp(`console and API at http://[^:]+:${httpPort}`));
  const page = await fetch(`http://127.0.0.1:${httpPort}/`);
  assert.equal(page.status, 200);
  const html = await page.text();
  if (existsSync('console/dist/index.html')) assert.match(html, /<title>Gatehouse console<\/title>/);
  else assert.match(html, /console has not been built/);
  const unauthenticated = await fetch(`http://127.0.0.1:${httpPort}/api/v1/gateways`);
  assert.equal(unauthenticated.status, 401);

  // The bin, with the admin token the first start printed.
  const token = /Admin token \(generated[^)]*\): (\S+)/.exec(banner)?.[1];
  assert.ok(token !== undefined, banner);
  const { stdout: listed } = await run(process.execPath, ['bin/gatehouse.mjs', 'gateways', 'list', '--json'], {
    env: { ...process.env, GATEHOUSE_URL: `http://127.0.0.1:${httpPort}`, GATEHOUSE_ADMIN_TOKEN: token },
  });
  const { items } = JSON.parse(listed) as { items: { port: number }[] };
  assert.deepEqual(items.map((g) => g.port), [demoPort]);

  // The sandbox as shipped: saving a function compiles it, the dry run calls it (HMAC on the host).
  const api = (method: string, route: string, json: unknown): Promise<Response> => fetch(`http://127.0.0.1:${httpPort}/api/v1${route}`, {
    method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(json),
  });
  const saved = await api('POST', '/functions', {
    name: 'start_check', source: 'function handler(e) { return { result: "true", deviceName: gatehouse.crypto.hash("sha256", e.userName).slice(0, 8) }; }',
  });
  assert.equal(saved.status, 201, await saved.clone().text());
  const dryRun = await api('POST', '/functions/start_check/invoke', { userName: 'abc' });
  assert.equal(dryRun.status, 200);
  assert.deepEqual(((await dryRun.json()) as { output: unknown }).output, { result: 'true', deviceName: 'ba7816bf' });

  // The printed commands, run as printed (the shell quoting of the password included).
  const sub = /try: (mosquitto_sub .*)/.exec(banner)?.[1];
  const pub = /(mosquitto_pub .*)/.exec(banner)?.[1];
  assert.ok(sub !== undefined && pub !== undefined, banner);
  assert.match(sub, new RegExp(`-p ${demoPort} `));
  const received = run('bash', ['-c', `${sub} -C 1 -W 20`]);
  // mosquitto_sub has no "subscribed" signal on stdout: publish until the one message it waits for arrives.
  let done = false;
  void received.finally(() => (done = true)).catch(() => undefined);
  for (let i = 0; i < 40 && !done; i++) {
    await run('bash', ['-c', pub]);
    await new Promise((r) => setTimeout(r, 250));
  }
  const { stdout: line } = await received;
  assert.equal(line.trim(), 'demo/hello world');
});

test('a single process loads no NATS client: dist/main.mjs imports @nats-io only dynamically, once GATEHOUSE_NATS_URL makes it a cluster node', { timeout: 60_000 }, async () => {
  await ensureBuilt();
  const bundle = await readFile(path.join(DIST, 'main.mjs'), 'utf8');
  // A static import would be hoisted to the top of the bundle and run at every start (src/cluster/nats-client.ts).
  assert.doesNotMatch(bundle, /^import\b[^;]*?from\s*["']@nats-io\//m);
  for (const name of ['transport-node', 'jetstream', 'kv']) assert.match(bundle, new RegExp(`import\\(\\s*["']@nats-io/${name}["']\\s*\\)`));
});

test('an API port another process holds: dist/main.mjs exits 1 naming the port and the setting, not half started', { timeout: 60_000 }, async (t) => {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'gatehouse-start-'));
  t.after(() => removeDataDir(dataDir));
  await ensureBuilt();
  const holder = net.createServer();
  await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => holder.close(() => resolve())));
  const port = (holder.address() as net.AddressInfo).port;
  const child = spawn(process.execPath, [path.join(DIST, 'main.mjs')], {
    env: { ...process.env, GATEHOUSE_DATA_DIR: dataDir, GATEHOUSE_HTTP_HOST: '127.0.0.1', GATEHOUSE_HTTP_PORT: String(port), GATEHOUSE_DEMO: 'off', GATEHOUSE_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  // Before the fix it never exited: the failure reached the process guard as an uncaught exception.
  const code = await new Promise<number | null>((resolve) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      resolve(-1);
    }, 40_000);
    child.once('exit', (c) => {
      clearTimeout(timer);
      resolve(c);
    });
  });
  assert.equal(code, 1, stderr);
  assert.match(stderr, new RegExp(`GW_ERR_HTTP_PORT_UNAVAILABLE: the console and API cannot listen on 127\\.0\\.0\\.1:${port} \\(EADDRINUSE.*GATEHOUSE_HTTP_PORT`));
});

test('GATEHOUSE_TEST_OVERRIDES (test-only): a field that is not an override refuses the start naming it; a good value is applied and logged at warn', { timeout: 90_000 }, async (t) => {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'gatehouse-overrides-'));
  t.after(() => removeDataDir(dataDir));
  const refused = await runGatehouseExpectingExit(dataDir, { GATEHOUSE_TEST_OVERRIDES: '{"platform":{"webhooks":{"maxAttemps":4}}}' });
  assert.equal(refused.code, 1, refused.stderr);
  assert.match(refused.stderr, /^gatehouse: GW_ERR_CONFIG_INVALID: GATEHOUSE_TEST_OVERRIDES platform\.webhooks\.maxAttemps is not an override \(known here: maxAttempts,/m);

  // Refused before the data directory was prepared: the same directory starts afterwards (no secrets left without a database).
  const overrides = { ocspTimings: { retryMs: 200 }, platform: { webhooks: { maxAttempts: 4 } } };
  const node = await startGatehouseProcess(dataDir, { GATEHOUSE_TEST_OVERRIDES: JSON.stringify(overrides) });
  t.after(() => node.stop());
  // An operator who set it by mistake sees it: one warn line at start with what it changed.
  const applied = node.stdout().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { msg?: string; level?: number; overrides?: unknown })
    .filter((r) => r.msg === 'test_overrides_applied');
  assert.deepEqual(applied.map((r) => [r.level, r.overrides]), [[40, overrides]]);
});
