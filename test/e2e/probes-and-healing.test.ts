/**
 * Issue 14, items 5 and 6: `/health` and `/ready` at the root answer without a token and say nothing
 * secret; `/ready` is 503 while a gateway the operator left on is not listening; an edit that removes the
 * cause of an ERROR (a free port) starts the gateway, and the edit's answer says so; a failed port move is
 * reported, not hidden behind RUNNING; the demo gateway says when its port is taken.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { getPki, type SharedPki } from '../harness/pki.ts';
import { freePort, removeDataDir, startTestGatehouse, TEST_ADMIN_TOKEN, type TestGatehouse } from '../harness/gatehouse.ts';
import { startGatehouseProcess } from '../harness/gatehouse-process.ts';
import { testWorkers } from '../harness/gatehouse-workers.ts';
import { waitFor } from '../harness/third-party.ts';

interface GatewayJson { id: string; port: number; status: string; statusReason: string | null }
interface ReadyJson { status: string; checks: { storage: string; gateways: string; cluster?: string; workers?: string }; gatewaysNotReady: { id: string; status: string }[] }

/**
 * The checks beside storage and gateways: none for a single process; against workers (GATEHOUSE_TEST_WORKERS) each
 * worker is a cluster node that reaches NATS, and the answer is the machine's, every worker answering.
 */
const nodeChecks = (): { cluster?: string; workers?: string } => (testWorkers() === undefined ? {} : { cluster: 'ok', workers: 'ok' });

let pki: SharedPki;
let gh: TestGatehouse;
const squatters: net.Server[] = [];

before(async () => {
  pki = await getPki();
  gh = await startTestGatehouse();
}, { timeout: 60_000 });
after(async () => {
  for (const s of squatters) s.close();
  await gh.stop();
  await removeDataDir(gh.dataDir);
}, { timeout: 30_000 });

/** Something that is not a gateway holds a port. */
async function squat(): Promise<{ port: number; release(): Promise<void> }> {
  const port = await freePort();
  const server = net.createServer();
  squatters.push(server);
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return { port, release: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

async function probe<T>(urlPath: string): Promise<{ status: number; json: T; text: string }> {
  const res = await fetch(`${gh.gatehouse.url}${urlPath}`); // no Authorization header
  const text = await res.text();
  return { status: res.status, json: JSON.parse(text) as T, text };
}

/**
 * /ready once a change that makes the gateways ready has reached every node: a single process has applied it when its
 * API answered; against workers the others apply it from the registry's events (and the answer is theirs too), so
 * the machine is ready a moment later: asked until it is, or the last answer once 10 s have passed.
 */
async function readyAfterChange(): Promise<{ status: number; json: ReadyJson; text: string }> {
  const first = await probe<ReadyJson>('/ready');
  if (testWorkers() === undefined || first.status === 200) return first;
  return waitFor(async () => {
    const again = await probe<ReadyJson>('/ready');
    return again.status === 200 ? again : undefined;
  }, 10_000).catch(() => probe<ReadyJson>('/ready'));
}

/** A TLS handshake on the port completes: the listener is really up. */
function handshake(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ca: pki.root.certPem, servername: 'localhost' }, () => {
      socket.destroy();
      resolve();
    });
    socket.once('error', reject);
  });
}

const certificates = (): { serverCertificateChain: string; serverPrivateKey: string } =>
  ({ serverCertificateChain: pki.server.chainPem, serverPrivateKey: pki.server.keyPem });

test('/health answers without a token and carries nothing but liveness', { timeout: 30_000 }, async () => {
  const health = await probe<Record<string, unknown>>('/health');
  assert.equal(health.status, 200);
  assert.deepEqual(Object.keys(health.json).sort(), ['status', 'uptimeSeconds']);
  assert.equal(health.json.status, 'ok');
  assert.ok(!health.text.includes(TEST_ADMIN_TOKEN));
  // The versioned one keeps its token.
  assert.equal((await fetch(`${gh.gatehouse.url}/api/v1/health`)).status, 401);
});

test('/ready: 503 naming the gateway whose port is taken; an edit to a free port starts it; ready again', { timeout: 20_000 }, async () => {
  assert.equal((await probe<ReadyJson>('/ready')).status, 200);
  const taken = await squat();
  const created = await gh.api<GatewayJson>('POST', '/gateways', { name: 'healing_gateway', port: taken.port, certificates: certificates() });
  assert.equal(created.status, 201, JSON.stringify(created.json));
  assert.equal(created.json.status, 'ERROR');
  const id = created.json.id;

  const notReady = await probe<ReadyJson>('/ready');
  assert.equal(notReady.status, 503);
  assert.deepEqual(notReady.json, { status: 'not_ready', checks: { storage: 'ok', gateways: 'error', ...nodeChecks() }, gatewaysNotReady: [{ id, status: 'ERROR' }] });
  assert.ok(!notReady.text.includes('healing_gateway') && !notReady.text.includes(String(taken.port)), 'no names or ports to strangers');

  // The edit removes the cause: the answer to the edit is the running gateway, not the old ERROR.
  const port = await freePort();
  const healed = await gh.api<GatewayJson>('PATCH', `/gateways/${id}`, { port });
  assert.equal(healed.status, 200, JSON.stringify(healed.json));
  assert.equal(healed.json.status, 'RUNNING', JSON.stringify(healed.json));
  assert.equal(healed.json.statusReason, null);
  await handshake(port);
  assert.equal((await gh.api<GatewayJson>('GET', `/gateways/${id}`)).json.status, 'RUNNING');
  const ready = await readyAfterChange();
  assert.equal(ready.status, 200, ready.text);
  assert.deepEqual(ready.json, { status: 'ready', checks: { storage: 'ok', gateways: 'ok', ...nodeChecks() }, gatewaysNotReady: [] });

  // Stopped on purpose is not a fault.
  assert.equal((await gh.api<GatewayJson>('POST', `/gateways/${id}/stop`)).json.status, 'STOPPED');
  assert.equal((await probe<ReadyJson>('/ready')).status, 200);
  assert.equal((await gh.api('DELETE', `/gateways/${id}`)).status, 204);
  await taken.release();
});

test('a gateway in ERROR retries on any edit: once the port is free, a certificate edit starts it', { timeout: 20_000 }, async () => {
  const taken = await squat();
  const created = await gh.api<GatewayJson>('POST', '/gateways', { name: 'retry_gateway', port: taken.port, certificates: certificates() });
  assert.equal(created.json.status, 'ERROR');
  // An edit that does not remove the cause: still ERROR, with the reason.
  const still = await gh.api<GatewayJson>('PATCH', `/gateways/${created.json.id}`, { certificates: { serverCertificateChain: pki.server.certPem, serverPrivateKey: pki.server.keyPem } });
  assert.equal(still.json.status, 'ERROR');
  assert.equal(still.json.statusReason, `port ${taken.port} is already in use`);
  await taken.release();
  const started = await gh.api<GatewayJson>('PATCH', `/gateways/${created.json.id}`, { certificates: certificates() });
  assert.equal(started.json.status, 'RUNNING', JSON.stringify(started.json));
  await handshake(taken.port);
  assert.equal((await gh.api('DELETE', `/gateways/${created.json.id}`)).status, 204);
});

test('a port move onto a taken port is reported as ERROR (still serving on the old port), and /ready says so', { timeout: 20_000 }, async () => {
  const port = await freePort();
  const created = await gh.api<GatewayJson>('POST', '/gateways', { name: 'moving_gateway', port, certificates: certificates() });
  assert.equal(created.json.status, 'RUNNING');
  const taken = await squat();
  const moved = await gh.api<GatewayJson>('PATCH', `/gateways/${created.json.id}`, { port: taken.port });
  assert.equal(moved.json.status, 'ERROR', JSON.stringify(moved.json));
  assert.equal(moved.json.statusReason, `port ${taken.port} is already in use; still listening on port ${port}`);
  await handshake(port);
  assert.equal((await probe<ReadyJson>('/ready')).status, 503);
  await taken.release();
  const started = await gh.api<GatewayJson>('POST', `/gateways/${created.json.id}/start`);
  assert.equal(started.json.status, 'RUNNING', JSON.stringify(started.json));
  await handshake(taken.port);
  assert.equal((await readyAfterChange()).status, 200);
  assert.equal((await gh.api('DELETE', `/gateways/${created.json.id}`)).status, 204);
});

test('the demo gateway on a taken port: the banner says it could not start, not "ready"; a port edit starts it', { timeout: 60_000 }, async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'gh-demo-'));
  t.after(() => removeDataDir(dir));
  const taken = await squat();
  const proc = await startGatehouseProcess(dir, { GATEHOUSE_DEMO: 'on', GATEHOUSE_DEMO_PORT: String(taken.port) });
  t.after(() => proc.stop());
  const banner = proc.stdout();
  assert.doesNotMatch(banner, /demo gateway is ready/);
  assert.match(banner, new RegExp(`demo gateway could not start: port ${taken.port} is already in use`));
  const ready = await fetch(`${proc.url}/ready`);
  assert.equal(ready.status, 503);
  const { json } = await proc.api<{ items: GatewayJson[] }>('GET', '/gateways');
  assert.equal(json.items[0]?.status, 'ERROR');
  const port = await freePort();
  const healed = await proc.api<GatewayJson>('PATCH', `/gateways/${json.items[0].id}`, { port });
  assert.equal(healed.json.status, 'RUNNING', JSON.stringify(healed.json));
  assert.equal((await fetch(`${proc.url}/ready`)).status, 200);
  await taken.release();
});
