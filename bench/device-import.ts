/**
 * `npm run bench:import`: a CSV import of 100,000 devices as the console runs it (issue 14). Starts the real
 * Gatehouse (dist/main.mjs, the default scrypt cost) on a fresh data directory, POSTs the CSV to
 * /products/{key}/imports and polls the operation until it is done, then reports:
 *   - the time from the POST to DONE and the rows per second;
 *   - the server's peak resident memory (VmHWM of its process);
 *   - what the import did to another gateway's traffic meanwhile: a device connected to a second gateway
 *     sends itself a QoS 1 message every 100 ms; the round trips' p50, p99 and max, before and during.
 *
 *   npm run bench:import -- [--rows 100000] [--deadline 1800]
 *
 * Loopback only. The client and the server share the machine's cores.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import mqtt from 'mqtt';
import { DIST, ensureBuilt } from '../scripts/build.mjs';
import { freePort } from '../test/harness/gatehouse.ts';

const { values } = parseArgs({ options: { rows: { type: 'string', default: '100000' }, deadline: { type: 'string', default: '1800' } } });
const ROWS = Number(values.rows);
const DEADLINE_MS = Number(values.deadline) * 1000;
const TOKEN = 'bench-admin-token-0123456789abcdef';

interface Server { child: ChildProcess; http: string }

async function startServer(dataDir: string, httpPort: number): Promise<Server> {
  const child = spawn(process.execPath, ['--no-node-snapshot', path.join(DIST, 'main.mjs')], {
    env: {
      ...process.env, GATEHOUSE_DATA_DIR: dataDir, GATEHOUSE_HTTP_PORT: String(httpPort), GATEHOUSE_MQTT_HOST: '127.0.0.1',
      GATEHOUSE_ADMIN_TOKEN: TOKEN, GATEHOUSE_DEMO: 'off', GATEHOUSE_LOG_LEVEL: 'error',
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const http = `http://127.0.0.1:${httpPort}`;
  const until = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`gatehouse exited with ${child.exitCode}`);
    if ((await fetch(`${http}/ready`).then((r) => r.ok, () => false))) return { child, http };
    if (Date.now() > until) throw new Error('gatehouse did not become ready in 60 s');
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function api<T>(server: Server, method: string, url: string, body?: string | object, type = 'application/json'): Promise<T> {
  const res = await fetch(`${server.http}/api/v1${url}`, {
    method, headers: { authorization: `Bearer ${TOKEN}`, 'content-type': type },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`${method} ${url}: ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

function peakRssMiB(pid: number): number {
  const match = /^VmHWM:\s+(\d+)\s+kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(match?.[1] ?? Number.NaN) / 1024;
}

function percentile(sorted: number[], q: number): number {
  return sorted.length === 0 ? Number.NaN : (sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number);
}

function describe(roundTrips: number[]): string {
  const s = [...roundTrips].sort((a, b) => a - b);
  return `${s.length} round trips, p50 ${percentile(s, 0.5).toFixed(1)} ms, p99 ${percentile(s, 0.99).toFixed(1)} ms, max ${(s[s.length - 1] ?? Number.NaN).toFixed(1)} ms`;
}

/** A device on the other gateway sends itself QoS 1 messages every 100 ms; `take()` hands the round trips so far. */
async function pinger(port: number, ca: string): Promise<{ take(): number[]; stop(): Promise<void> }> {
  const client = await mqtt.connectAsync({
    host: '127.0.0.1', port, protocol: 'mqtts', ca, servername: 'localhost', username: 'pinger-01', password: 'pinger-pw',
    clientId: 'pinger-01', reconnectPeriod: 0, connectTimeout: 30_000,
  });
  await client.subscribeAsync('ping/pinger-01', { qos: 1 });
  let trips: number[] = [];
  const sent = new Map<string, number>();
  client.on('message', (_topic, payload) => {
    const t0 = sent.get(payload.toString());
    if (t0 !== undefined) trips.push(performance.now() - t0);
  });
  let seq = 0;
  const timer = setInterval(() => {
    const id = String(seq++);
    sent.set(id, performance.now());
    void client.publishAsync('ping/pinger-01', id, { qos: 1 }).catch(() => undefined);
  }, 100);
  return {
    take: () => { const out = trips; trips = []; return out; },
    stop: async () => { clearInterval(timer); await client.endAsync(); },
  };
}

interface Operation { id: string; state: string; total: number; processed: number; created: number; failed: number; error: { message: string } | null }

await ensureBuilt();
console.log(`device import: ${ROWS} CSV rows through POST /imports; ${os.cpus().length} CPUs, load average ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}`);
const dataDir = await mkdtemp(path.join(os.tmpdir(), 'gatehouse-import-bench-'));
const server = await startServer(dataDir, await freePort());
try {
  const cert = await api<{ certificatePem: string; privateKeyPem: string }>(server, 'POST', '/certificates/self-signed', { hosts: ['localhost', '127.0.0.1'] });
  const certificates = { serverCertificateChain: cert.certificatePem, serverPrivateKey: cert.privateKeyPem };
  const fleet = await api<{ productKey: string }>(server, 'POST', '/gateways', { name: 'import_fleet', port: await freePort(), certificates });
  const otherPort = await freePort();
  const other = await api<{ productKey: string }>(server, 'POST', '/gateways', { name: 'busy_fleet', port: otherPort, certificates });
  await api(server, 'POST', `/products/${other.productKey}/devices`, { username: 'pinger-01', password: 'pinger-pw' });
  const ping = await pinger(otherPort, cert.certificatePem);
  await new Promise((r) => setTimeout(r, 5000));
  const before = ping.take();

  const csv = ['sn,username,password', ...Array.from({ length: ROWS }, (_, i) => `SN-${i},dev-${String(i).padStart(6, '0')},pw-${(i * 7919).toString(36)}`)].join('\n');
  const started = performance.now();
  let op = await api<Operation>(server, 'POST', `/products/${fleet.productKey}/imports`, csv, 'text/csv');
  const accepted = performance.now();
  let lastLine = 0;
  while (op.state === 'RUNNING' && performance.now() - started < DEADLINE_MS) {
    await new Promise((r) => setTimeout(r, 1000));
    op = await api<Operation>(server, 'GET', `/products/${fleet.productKey}/imports/${op.id}`);
    if (performance.now() - lastLine > 30_000) {
      lastLine = performance.now();
      console.log(`  ${((performance.now() - started) / 1000).toFixed(0)} s: ${op.processed}/${op.total} rows, ${op.created} created; `
        + `server peak RSS so far ${peakRssMiB(server.child.pid as number).toFixed(0)} MiB; load average ${os.loadavg()[0]?.toFixed(1)}`);
    }
  }
  const seconds = (performance.now() - started) / 1000;
  const during = ping.take();
  await ping.stop();
  console.log(`POST answered 202 in ${((accepted - started) / 1000).toFixed(2)} s; state ${op.state}${op.error ? ` (${op.error.message})` : ''}`);
  console.log(`${op.created}/${op.total} rows created (${op.failed} failed) in ${seconds.toFixed(1)} s: ${(op.processed / seconds).toFixed(0)} rows/s; `
    + `server peak RSS ${peakRssMiB(server.child.pid as number).toFixed(0)} MiB`);
  console.log(`another gateway's QoS 1 round trips before: ${describe(before)}`);
  console.log(`                                   during: ${describe(during)}`);
} finally {
  server.child.kill('SIGTERM');
  if (server.child.exitCode === null) await new Promise((r) => server.child.once('exit', r));
  await rm(dataDir, { recursive: true, force: true });
}
