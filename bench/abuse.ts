/**
 * `npm run bench:abuse`: how much one hostile device costs everyone else. Starts the real Gatehouse
 * (dist/main.mjs) on a fresh data directory with two gateways: a device floods the demo gateway while a
 * well-behaved client of the other gateway sends PINGREQ every 10 ms and times each PINGRESP. Prints,
 * per phase, that client's PING round trip (p50 / p99 / max) and the server's resident memory.
 *
 *   npm run bench:abuse -- [--seconds 5] [--phases retained-1mb,idle-sockets]
 *
 * Phases: idle; 1 MB retained messages published as fast as they are acknowledged (QoS 1, new topics);
 * five persistent sessions each subscribing 1,000 filters of 4 KB; 2,000 idle plain TCP sockets on the
 * flooded gateway's port. Loopback only; every loop is bounded by the phase's seconds.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';
import mqtt from 'mqtt';
import { DIST, ensureBuilt } from '../scripts/build.mjs';
import { freePort } from '../test/harness/gatehouse.ts';

const { values } = parseArgs({ options: { seconds: { type: 'string', default: '5' }, phases: { type: 'string' } } });
const SECONDS = Number(values.seconds);

interface Server { pid: number; http: string; token: string; demo: { port: number; username: string; password: string; ca: string }; stop(): Promise<void> }

async function startServer(): Promise<Server> {
  await ensureBuilt();
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'gatehouse-abuse-'));
  const [httpPort, demoPort] = [await freePort(), await freePort()];
  const child = spawn(process.execPath, ['--no-node-snapshot', ...(process.env.ABUSE_PROF ? ['--cpu-prof', '--cpu-prof-dir', process.env.ABUSE_PROF] : []), path.join(DIST, 'main.mjs')], {
    env: { ...process.env, GATEHOUSE_DATA_DIR: dataDir, GATEHOUSE_HTTP_PORT: String(httpPort), GATEHOUSE_DEMO_PORT: String(demoPort), GATEHOUSE_LOG_LEVEL: 'error' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (b: Buffer) => {
      out += b.toString();
      if (/mosquitto_pub .*\n/.test(out)) resolve();
    });
    child.once('exit', (code) => reject(new Error(`gatehouse exited with ${code}`)));
  });
  const token = /Admin token \(generated[^)]*\): (\S+)/.exec(out)![1]!;
  const sub = /-u (\S+) -P '([^']+)'/.exec(out)!;
  const ca = /--cafile (\S+)/.exec(out)![1]!;
  return {
    pid: child.pid!, http: `http://127.0.0.1:${httpPort}`, token,
    demo: { port: demoPort, username: sub[1]!, password: sub[2]!, ca: await readFile(ca, 'utf8') },
    async stop() {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

async function api<T>(server: Server, method: string, url: string, body?: unknown): Promise<T> {
  const res = await fetch(`${server.http}/api/v1${url}`, {
    method, headers: { authorization: `Bearer ${server.token}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`${method} ${url}: ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

/** A second gateway with its own device: the well-behaved neighbour. */
async function quietGateway(server: Server): Promise<{ port: number; ca: string }> {
  const cert = await api<{ certificatePem: string; privateKeyPem: string }>(server, 'POST', '/certificates/self-signed', { hosts: ['localhost', '127.0.0.1'] });
  const port = await freePort();
  const gw = await api<{ id: string; productKey: string }>(server, 'POST', '/gateways', {
    name: 'quiet_gateway', port, authType: 'ONE_PARTY', certificates: { serverCertificateChain: cert.certificatePem, serverPrivateKey: cert.privateKeyPem },
  });
  await api(server, 'POST', `/products/${gw.productKey}/devices`, { username: 'quiet-device', password: 'quiet-pass' });
  await api(server, 'POST', `/gateways/${gw.id}/start`).catch(() => undefined); // started on create in some versions
  return { port, ca: cert.certificatePem };
}

/**
 * The pinger runs in a worker thread of its own, so the flooding clients of this process never delay
 * its timer or its reads: what it measures is the server's stall, not ours.
 */
async function pingerThread(port: number, ca: string): Promise<{ take(): Promise<number[]>; close(): Promise<void> }> {
  const worker = new Worker(PINGER_SOURCE, { eval: true, workerData: { port, ca } });
  await new Promise<void>((resolve, reject) => {
    worker.once('message', (m: unknown) => (m === 'ready' ? resolve() : reject(new Error(String(m)))));
    worker.once('error', reject);
  });
  return {
    take: () => new Promise<number[]>((resolve) => {
      worker.once('message', (m: number[]) => resolve(m));
      worker.postMessage('take');
    }),
    close: async () => { await worker.terminate(); },
  };
}

/**
 * The pinger's thread (CommonJS source: worker threads do not get the TypeScript loader). It connects
 * as the quiet gateway's device and sends PINGREQ every 10 ms; each 'take' message answers with the
 * round trips (ms) measured since the last one.
 */
const PINGER_SOURCE = `
const tls = require('node:tls');
const { parentPort, workerData } = require('node:worker_threads');
const mqttPacket = require('mqtt-packet');
const { port, ca } = workerData;
const socket = tls.connect({ host: '127.0.0.1', port, ca, servername: 'localhost' });
socket.on('error', (err) => parentPort.postMessage(String(err)));
socket.once('secureConnect', () => {
  socket.write(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: 'pinger', keepalive: 0,
    username: 'quiet-device', password: Buffer.from('quiet-pass') }));
});
const parser = mqttPacket.parser({ protocolVersion: 4 });
const sent = []; // send times of the PINGREQs not yet answered, oldest first
let samples = [];
parser.on('packet', (p) => {
  if (p.cmd === 'connack') {
    if (p.returnCode !== 0) return parentPort.postMessage('the pinger was refused: ' + p.returnCode);
    setInterval(() => { sent.push(process.hrtime.bigint()); socket.write(Buffer.from([0xc0, 0x00])); }, 10);
    parentPort.postMessage('ready');
  }
  if (p.cmd === 'pingresp') samples.push(Number(process.hrtime.bigint() - sent.shift()) / 1e6);
});
socket.on('data', (b) => parser.parse(b));
parentPort.on('message', () => { parentPort.postMessage(samples); samples = []; });
`;

async function rssMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)![1]) / 1024;
}

function stats(samples: number[]): string {
  if (samples.length === 0) return 'no PINGRESP at all';
  const s = [...samples].sort((a, b) => a - b);
  const at = (q: number): string => s[Math.min(s.length - 1, Math.floor(q * s.length))]!.toFixed(2);
  return `PING p50 ${at(0.5)} ms, p99 ${at(0.99)} ms, max ${s[s.length - 1]!.toFixed(2)} ms (${s.length} pings)`;
}

async function device(server: Server, clientId: string, extra: mqtt.IClientOptions = {}): Promise<mqtt.MqttClient> {
  return mqtt.connectAsync({
    host: '127.0.0.1', port: server.demo.port, protocol: 'mqtts', ca: server.demo.ca, servername: 'localhost', rejectUnauthorized: true,
    username: server.demo.username, password: server.demo.password, clientId, reconnectPeriod: 0, ...extra,
  });
}

const phases: Record<string, (server: Server, until: number) => Promise<string>> = {
  async idle(_server, until) {
    await new Promise((r) => setTimeout(r, until - Date.now()));
    return '';
  },
  async 'retained-1mb'(server, until) {
    const c = await device(server, 'flood-retained', { protocolVersion: 5 });
    const payload = Buffer.alloc(1_000_000, 0x61); // 1 MB: a whole packet stays under the default 1 MiB limit
    let n = 0;
    let refused = 0;
    while (Date.now() < until) {
      const ack = await c.publishAsync(`flood/${n++}`, payload, { qos: 1, retain: true });
      if (((ack as { reasonCode?: number } | undefined)?.reasonCode ?? 0) >= 0x80) refused++;
    }
    await c.endAsync();
    return `${n} retained messages of 1 MB sent, ${refused} refused (quota)`;
  },
  async 'subscriptions-4kb'(server, until) {
    let filters = 0;
    for (let s = 0; s < 5 && Date.now() < until; s++) {
      const c = await device(server, `flood-subs-${s}`, { clean: false });
      for (let i = 0; i < 1000 && Date.now() < until; i += 50) {
        await c.subscribeAsync(Array.from({ length: 50 }, (_, j) => `s${s}/${i + j}/${'x'.repeat(4000)}`), { qos: 1 });
        filters += 50;
      }
      c.end(true);
    }
    return `${filters} filters of 4 KB subscribed by persistent sessions`;
  },
  async 'idle-sockets'(server, until) {
    const sockets: net.Socket[] = [];
    for (let i = 0; i < 2000 && Date.now() < until; i++) {
      const s = net.connect({ host: '127.0.0.1', port: server.demo.port, localAddress: `127.0.${1 + (i % 200)}.${10 + Math.floor(i / 200)}` });
      s.on('error', () => undefined);
      sockets.push(s);
    }
    // Past the phase and the 5 s handshake deadline of the last socket opened: how many are left?
    const openedAt = Date.now();
    await new Promise((r) => setTimeout(r, Math.max(until - Date.now(), 12_000)));
    const open = sockets.filter((s) => !s.destroyed && s.readyState === 'open').length;
    for (const s of sockets) s.destroy();
    return `${sockets.length} idle plain sockets from 200 addresses; ${open} still open ${((Date.now() - openedAt) / 1000).toFixed(1)} s after the last one opened`;
  },
};

const server = await startServer();
try {
  const quiet = await quietGateway(server);
  const ping = await pingerThread(quiet.port, quiet.ca);
  process.stdout.write(`gatehouse pid ${server.pid}, ${SECONDS} s per phase; PINGs on another gateway of the same process\n`);
  const chosen = values.phases === undefined ? Object.keys(phases) : values.phases.split(',');
  for (const name of chosen) {
    const run = phases[name];
    if (run === undefined) throw new Error(`unknown phase ${name}: ${Object.keys(phases).join(', ')}`);
    await ping.take();
    const what = await run(server, Date.now() + SECONDS * 1000);
    process.stdout.write(`${name.padEnd(18)} ${stats(await ping.take())}; RSS ${(await rssMiB(server.pid)).toFixed(0)} MiB${what ? `; ${what}` : ''}\n`);
  }
  await ping.close();
} finally {
  await server.stop();
}
