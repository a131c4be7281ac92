/**
 * `npm run bench:auth-storm`: what the password hash cost does to a fleet reconnecting at once. For each
 * scrypt N it starts the real Gatehouse (dist/main.mjs, GATEHOUSE_PASSWORD_SCRYPT_N=N) on a fresh data
 * directory, imports the devices (one-party rows, hashed at N), then measures:
 *   - the hash itself: one scrypt at N in this process, median of a few;
 *   - cold storm: the process is restarted (nothing cached) and every device connects over TLS with
 *     MQTT.js at once (bounded in flight, as devices retrying after an outage are): time until all have
 *     their CONNACK, and each CONNECT's wait;
 *   - warm storm: every device disconnects and connects again to the same process, whose verified-
 *     credential cache remembers each password: the same storm without the hash.
 *
 *   npm run bench:auth-storm -- [--devices 10000] [--costs 4096,16384] [--in-flight 1000] [--addresses 50] [--deadline 900]
 *
 * Loopback only. Devices connect from `--addresses` source addresses (127.0.0.2 …) so the per-address
 * socket cap and rate (1,000 open, 200/s) and the throttle's per-address bounds act as they would for a
 * fleet spread over many networks; a refused or timed-out CONNECT is retried after a random 0.5–2 s, as
 * firmware does. Every phase stops at `--deadline` seconds and reports what it reached.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import mqtt from 'mqtt';
import { DIST, ensureBuilt } from '../scripts/build.mjs';
import { hashPassword } from '../src/registry/passwords.ts';
import { freePort } from '../test/harness/gatehouse.ts';

const { values } = parseArgs({
  options: {
    devices: { type: 'string', default: '10000' },
    costs: { type: 'string', default: '4096,16384' },
    'in-flight': { type: 'string', default: '1000' },
    addresses: { type: 'string', default: '50' },
    deadline: { type: 'string', default: '900' },
  },
});
const DEVICES = Number(values.devices);
const COSTS = values.costs.split(',').map(Number);
const IN_FLIGHT = Number(values['in-flight']);
const ADDRESSES = Number(values.addresses);
const DEADLINE_MS = Number(values.deadline) * 1000;
const TOKEN = 'bench-admin-token-0123456789abcdef';
/** Rows per import request: one request hashes them all, and fetch gives up on a 300 s wait for headers. */
const IMPORT_CHUNK = 2000;

interface Server { child: ChildProcess; http: string }

async function startServer(dataDir: string, httpPort: number, n: number): Promise<Server> {
  const child = spawn(process.execPath, ['--no-node-snapshot', path.join(DIST, 'main.mjs')], {
    env: {
      ...process.env, GATEHOUSE_DATA_DIR: dataDir, GATEHOUSE_HTTP_PORT: String(httpPort), GATEHOUSE_MQTT_HOST: '127.0.0.1',
      GATEHOUSE_ADMIN_TOKEN: TOKEN, GATEHOUSE_DEMO: 'off', GATEHOUSE_LOG_LEVEL: 'error', GATEHOUSE_PASSWORD_SCRYPT_N: String(n),
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

async function stopServer(server: Server): Promise<void> {
  server.child.kill('SIGTERM');
  if (server.child.exitCode === null) await new Promise((r) => server.child.once('exit', r));
}

async function api<T>(server: Server, method: string, url: string, body?: string | object, type = 'application/json'): Promise<T> {
  const res = await fetch(`${server.http}/api/v1${url}`, {
    method, headers: { authorization: `Bearer ${TOKEN}`, 'content-type': type },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`${method} ${url}: ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

const username = (i: number): string => `dev-${String(i).padStart(6, '0')}`;
const password = (i: number): string => `pw-${(i * 7919).toString(36)}`;

interface StormResult { seconds: number; connected: number; retries: number; waits: number[]; clients: mqtt.MqttClient[] }

/** Every device connects; at most IN_FLIGHT CONNECTs open at once; refusals and timeouts retried. */
async function storm(port: number, ca: string): Promise<StormResult> {
  const started = performance.now();
  const deadline = Date.now() + DEADLINE_MS;
  const clients: mqtt.MqttClient[] = [];
  const waits: number[] = [];
  let retries = 0;
  let next = 0;
  const connectOne = (i: number): Promise<mqtt.MqttClient | undefined> => new Promise((resolve) => {
    const t0 = performance.now();
    // MQTT.js hands its options to tls.connect, localAddress included (its types do not list it).
    const options: mqtt.IClientOptions & { localAddress: string } = {
      host: '127.0.0.1', port, protocol: 'mqtts', ca, servername: 'localhost', localAddress: `127.0.0.${2 + (i % ADDRESSES)}`,
      clientId: username(i), username: username(i), password: password(i), protocolVersion: 4, clean: true,
      keepalive: 600, reconnectPeriod: 0, connectTimeout: 60_000,
    };
    const client = mqtt.connect(options);
    client.once('connect', () => {
      waits.push(performance.now() - t0);
      resolve(client);
    });
    const fail = (): void => {
      client.end(true);
      resolve(undefined);
    };
    client.once('error', fail);
    client.once('close', fail);
  });
  const worker = async (): Promise<void> => {
    while (next < DEVICES && Date.now() < deadline) {
      const i = next++;
      for (;;) {
        const client = await connectOne(i);
        if (client !== undefined) {
          client.removeAllListeners('close');
          clients.push(client);
          break;
        }
        if (Date.now() > deadline) return;
        retries++;
        await new Promise((r) => setTimeout(r, 500 + Math.random() * 1500));
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(IN_FLIGHT, DEVICES) }, worker));
  return { seconds: (performance.now() - started) / 1000, connected: clients.length, retries, waits, clients };
}

async function closeAll(clients: mqtt.MqttClient[]): Promise<void> {
  await Promise.all(clients.map((c) => c.endAsync().catch(() => undefined)));
}

function percentile(sorted: number[], q: number): number {
  return sorted.length === 0 ? Number.NaN : (sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number);
}

function describe(r: StormResult): string {
  const w = [...r.waits].sort((a, b) => a - b);
  const s = (ms: number): string => (ms / 1000).toFixed(2);
  return `${r.connected}/${DEVICES} connected in ${r.seconds.toFixed(1)} s (${(r.connected / r.seconds).toFixed(0)}/s), `
    + `CONNECT wait p50 ${s(percentile(w, 0.5))} s, p99 ${s(percentile(w, 0.99))} s, max ${s(w[w.length - 1] ?? Number.NaN)} s, ${r.retries} retries`;
}

async function hashMs(n: number): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < 9; i++) {
    const t0 = performance.now();
    await hashPassword('pw-benchmark', { N: n, r: 8, p: 1 });
    times.push(performance.now() - t0);
  }
  return percentile(times.sort((a, b) => a - b), 0.5);
}

async function runCost(n: number): Promise<void> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'gatehouse-auth-storm-'));
  const httpPort = await freePort();
  let server = await startServer(dataDir, httpPort, n);
  try {
    const cert = await api<{ certificatePem: string; privateKeyPem: string }>(server, 'POST', '/certificates/self-signed', { hosts: ['localhost', '127.0.0.1'] });
    const port = await freePort();
    const gw = await api<{ id: string; productKey: string }>(server, 'POST', '/gateways', {
      name: 'storm_fleet', port, authType: 'ONE_PARTY', certificates: { serverCertificateChain: cert.certificatePem, serverPrivateKey: cert.privateKeyPem },
    });
    await api(server, 'POST', `/gateways/${gw.id}/start`).catch(() => undefined); // already running when created
    const importStart = performance.now();
    for (let from = 0; from < DEVICES; from += IMPORT_CHUNK) {
      const rows = Array.from({ length: Math.min(IMPORT_CHUNK, DEVICES - from) }, (_, k) => `,${username(from + k)},${password(from + k)}`);
      const result = await api<{ created: number }>(server, 'POST', `/products/${gw.productKey}/devices/import`, `sn,username,password\n${rows.join('\n')}\n`, 'text/csv');
      if (result.created !== rows.length) throw new Error(`import created ${result.created} of ${rows.length}`);
    }
    const importSeconds = (performance.now() - importStart) / 1000;

    await stopServer(server);
    server = await startServer(dataDir, httpPort, n);
    const cold = await storm(port, cert.certificatePem);
    await closeAll(cold.clients);
    const warm = await storm(port, cert.certificatePem);
    await closeAll(warm.clients);

    console.log(`N=${n} (r=8, p=1, ${(128 * 8 * n) / 2 ** 20} MiB): one hash ${(await hashMs(n)).toFixed(1)} ms in this process; `
      + `import of ${DEVICES} rows ${importSeconds.toFixed(1)} s`);
    console.log(`  cold (after a restart): ${describe(cold)}`);
    console.log(`  warm (verified-credential cache): ${describe(warm)}`);
  } finally {
    await stopServer(server);
    await rm(dataDir, { recursive: true, force: true });
  }
}

await ensureBuilt();
console.log(`auth storm: ${DEVICES} devices over TLS from ${ADDRESSES} loopback addresses, ${IN_FLIGHT} CONNECTs in flight; `
  + `${os.cpus().length} CPUs, load average ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}`);
for (const n of COSTS) await runCost(n);
