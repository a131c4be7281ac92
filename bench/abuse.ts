/**
 * `npm run bench:abuse`: how much one hostile device costs everyone else, in Gatehouse and in Mosquitto
 * under the same scenario. Each broker runs with two TLS listeners in one process: a device floods the
 * first while a well-behaved client of the second sends PINGREQ every 10 ms and times each PINGRESP.
 * Prints, per phase and broker, that client's PING round trip (p50 / p99 / max) and the broker's
 * resident memory.
 *
 *   npm run bench:abuse -- [--seconds 5] [--phases retained-1mb,idle-sockets] [--brokers gatehouse,mosquitto] [--gc]
 *
 * `--gc` runs Gatehouse with `--trace-gc` and adds, per phase, its garbage collections: how many scavenges
 * and mark-compacts, their summed and longest pauses. The counts depend on what the process allocates,
 * not on the machine's load, so they compare two builds even on a busy machine; the pauses do not.
 *
 * Gatehouse is the real product (dist/main.mjs) on a fresh data directory: the demo gateway is flooded,
 * a second gateway is the quiet one. Mosquitto (Debian's, default settings: no persistence, anonymous)
 * gets two TLS listeners. Phases, each bounded by its seconds: idle; 1 MB retained messages published as
 * fast as they are acknowledged (QoS 1, new topics); five persistent sessions each subscribing 1,000
 * filters of 4 KB, again and again; 1,000 clients each subscribing up to 1,000 filters; a publisher far faster than its
 * subscriber, which stops reading (QoS 0, then QoS 1); 10,000 plain TCP sockets that never start TLS.
 * Loopback only (source addresses across 127.0.0.0/8, as many devices behind many addresses).
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { appendFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { parseArgs } from 'node:util';
import mqtt from 'mqtt';
import mqttPacket from 'mqtt-packet';
import { DIST, ensureBuilt } from '../scripts/build.mjs';
import { freePort } from '../test/harness/gatehouse.ts';
import { generateCerts } from './certs.ts';

const { values } = parseArgs({ options: {
  seconds: { type: 'string', default: '5' }, phases: { type: 'string' }, brokers: { type: 'string', default: 'gatehouse,mosquitto' }, gc: { type: 'boolean', default: false },
} });
const SECONDS = Number(values.seconds);

interface Listener { port: number; ca: string; username: string; password: string }
/** A broker under test: the listener that is flooded, the quiet one the pinger uses, its process. */
interface Target {
  name: string; pid: number; flood: Listener; quiet: Listener; stop(): Promise<void>;
  /** Garbage collections since the last call (with `--gc`, Gatehouse only). */
  gc?: () => string;
  /** The broker's own event-loop delay since the last call (Gatehouse only: its /metrics). */
  loopDelay?: () => Promise<string>;
}

/** A child that this process takes down with it, however it ends (a failed start included). */
function killedOnExit<T extends ChildProcess>(child: T): T {
  const kill = (): void => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL'); };
  process.once('exit', kill);
  child.once('exit', () => process.off('exit', kill));
  return child;
}

/** Pauses per kind of collection, read from `--trace-gc` lines. */
class GcTally {
  #kinds = new Map<string, { n: number; ms: number; max: number }>();

  read(line: string): void {
    const m = /: (Scavenge|Minor Mark-Sweep|Mark-Compact(?: \(reduce\))?|Mark-Sweep)\b[^,]*, ([\d.]+) \/ [\d.]+ ms/.exec(line);
    if (m === null) return;
    const kind = m[1]!.startsWith('Mark-Compact') ? 'mark-compact' : m[1] === 'Scavenge' ? 'scavenge' : m[1]!.toLowerCase();
    const k = this.#kinds.get(kind) ?? { n: 0, ms: 0, max: 0 };
    const ms = Number(m[2]);
    k.n++;
    k.ms += ms;
    k.max = Math.max(k.max, ms);
    this.#kinds.set(kind, k);
  }

  take(): string {
    const out = [...this.#kinds].map(([kind, k]) => `${k.n} ${kind} (${k.ms.toFixed(0)} ms, max ${k.max.toFixed(1)})`).join(', ');
    this.#kinds = new Map();
    return out === '' ? 'no GC' : out;
  }
}

async function startGatehouse(): Promise<Target> {
  const server = await startServer();
  const quiet = await quietGateway(server);
  return {
    name: 'gatehouse', pid: server.pid, gc: server.gc, loopDelay: () => eventLoopDelay(server),
    flood: { port: server.demo.port, ca: server.demo.ca, username: server.demo.username, password: server.demo.password },
    quiet: { port: quiet.port, ca: quiet.ca, username: 'quiet-device', password: 'quiet-pass' },
    stop: () => server.stop(),
  };
}

async function startMosquitto(): Promise<Target> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'gatehouse-abuse-mosquitto-'));
  const certs = generateCerts(dir);
  const [floodPort, quietPort] = [await freePort(), await freePort()];
  const conf = path.join(dir, 'mosquitto.conf');
  await writeFile(conf, [
    'per_listener_settings false', 'allow_anonymous true', 'log_dest stderr', 'log_type error', 'connection_messages false',
    ...[floodPort, quietPort].flatMap((port) => [`listener ${port} 127.0.0.1`, `certfile ${certs.serverCert}`, `keyfile ${certs.serverKey}`]),
    '',
  ].join('\n'));
  // Its stderr is left out: every client that hangs up without a TLS close_notify is an OpenSSL error line.
  const child = killedOnExit(spawn('bash', ['-c', `ulimit -n 20000 && exec mosquitto -c ${conf}`], { stdio: ['ignore', 'ignore', 'ignore'] }));
  for (let i = 0; i < 100; i++) {
    if (await new Promise<boolean>((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port: quietPort }, () => { s.destroy(); resolve(true); });
      s.on('error', () => resolve(false));
    })) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const ca = await readFile(certs.caCert, 'utf8');
  const listener = (port: number): Listener => ({ port, ca, username: 'any', password: 'any' });
  return {
    name: 'mosquitto', pid: child.pid!, flood: listener(floodPort), quiet: listener(quietPort),
    async stop() {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
      await rm(dir, { recursive: true, force: true });
    },
  };
}

interface Server { pid: number; http: string; token: string; demo: { port: number; username: string; password: string; ca: string }; stop(): Promise<void>; gc?: () => string }

async function startServer(): Promise<Server> {
  await ensureBuilt();
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'gatehouse-abuse-'));
  const [httpPort, demoPort] = [await freePort(), await freePort()];
  const child = killedOnExit(spawn('bash', ['-c', 'ulimit -n 20000 && exec "$@"', 'gatehouse', process.execPath, '--no-node-snapshot', ...(process.env.ABUSE_PROF ? ['--cpu-prof', '--cpu-prof-dir', process.env.ABUSE_PROF] : []), ...(values.gc ? ['--trace-gc'] : []), path.join(DIST, 'main.mjs')], {
    env: { ...process.env, GATEHOUSE_DATA_DIR: dataDir, GATEHOUSE_HTTP_PORT: String(httpPort), GATEHOUSE_DEMO_PORT: String(demoPort), GATEHOUSE_LOG_LEVEL: 'error' },
    stdio: ['ignore', 'pipe', 'inherit'],
  }));

  let out = '';
  let ready = false;
  const tally = new GcTally();
  let partial = '';
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (b: Buffer) => {
      if (ready) {
        // After start only --trace-gc lines come here (the logs go to stderr at level error).
        const lines = (partial + b.toString()).split('\n');
        partial = lines.pop()!;
        for (const line of lines) tally.read(line);
        if (process.env.ABUSE_GC_LOG) void appendFile(process.env.ABUSE_GC_LOG, lines.map((l) => `${l}\n`).join(''));
        return;
      }
      out += b.toString();
      if (/mosquitto_pub .*\n/.test(out)) {
        ready = true;
        resolve();
      }
    });
    child.once('exit', (code) => reject(new Error(`gatehouse exited with ${code}`)));
  });
  const token = /Admin token \(generated[^)]*\): (\S+)/.exec(out)![1]!;
  const sub = /-u (\S+) -P '([^']+)'/.exec(out)!;
  const ca = /--cafile (\S+)/.exec(out)![1]!;
  return {
    pid: child.pid!, http: `http://127.0.0.1:${httpPort}`, token, ...(values.gc ? { gc: () => tally.take() } : {}),
    demo: { port: demoPort, username: sub[1]!, password: sub[2]!, ca: await readFile(ca, 'utf8') },
    async stop() {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/**
 * Gatehouse's event-loop delay as its /metrics reports it (prom-client's monitor, reset at each scrape,
 * so a scrape before a phase and one after it give the phase's): what a stalled loop cost every
 * client, measured inside the broker, apart from the machine's scheduling of the pinger. The monitor's
 * timer fires every 10 ms and records whole intervals; what is printed is the delay past those 10 ms.
 */
const MONITOR_INTERVAL_MS = 10; // prom-client's eventLoopMonitoringPrecision default, which Gatehouse keeps

async function eventLoopDelay(server: Server): Promise<string> {
  const res = await fetch(`${server.http}/api/v1/metrics`, { headers: { authorization: `Bearer ${server.token}` } });
  const text = await res.text();
  if (!res.ok) throw new Error(`/metrics answered ${res.status}: ${text.slice(0, 200)}`);
  const read = (name: string): string => Math.max(0, Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1]) * 1000 - MONITOR_INTERVAL_MS).toFixed(1);
  return `event loop delay p50 ${read('nodejs_eventloop_lag_p50_seconds')}, p99 ${read('nodejs_eventloop_lag_p99_seconds')}, max ${read('nodejs_eventloop_lag_max_seconds')} ms`;
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
 * The pinger runs in a process of its own, so the flooding clients of this process never delay its
 * timer or its reads (nor this process's garbage collections, which a worker thread of it shared):
 * what it measures is the server's stall and the machine's scheduling, not the flooding client's.
 */
async function pingerProcess(listener: Listener): Promise<{ take(): Promise<number[]>; close(): Promise<void> }> {
  const child = killedOnExit(spawn(process.execPath, ['-e', PINGER_SOURCE], {
    env: { ...process.env, PINGER_LISTENER: JSON.stringify(listener) }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    cwd: path.dirname(DIST),
  }));
  await new Promise<void>((resolve, reject) => {
    child.once('message', (m: unknown) => (m === 'ready' ? resolve() : reject(new Error(String(m)))));
    child.once('error', reject);
  });
  return {
    take: () => new Promise<number[]>((resolve) => {
      child.once('message', (m: number[]) => resolve(m));
      child.send('take');
    }),
    close: async () => {
      child.kill();
      await new Promise((resolve) => child.once('exit', resolve));
    },
  };
}

/**
 * The pinger's thread (CommonJS source: worker threads do not get the TypeScript loader). It connects
 * as the quiet gateway's device and sends PINGREQ every 10 ms; each 'take' message answers with the
 * round trips (ms) measured since the last one.
 */
const PINGER_SOURCE = `
const tls = require('node:tls');
const mqttPacket = require('mqtt-packet');
const { port, ca, username, password } = JSON.parse(process.env.PINGER_LISTENER);
const parentPort = { postMessage: (m) => process.send(m), on: (e, f) => process.on(e, f) };
const socket = tls.connect({ host: '127.0.0.1', port, ca, servername: 'localhost' });
socket.on('error', (err) => parentPort.postMessage(String(err)));
socket.once('secureConnect', () => {
  socket.write(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: 'pinger', keepalive: 0,
    username, password: Buffer.from(password) }));
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

/**
 * The broker's main thread (its event loop; Mosquitto's only thread): nanoseconds run and waited on a run queue
 * (/proc/<pid>/task/<pid>/schedstat). Waiting for a CPU delays every client as a blocked loop would, but is the
 * machine's: on two cores shared with the flooding client it shows how much of a PING's delay is that.
 */
async function mainThreadSchedule(pid: number): Promise<{ ran: number; waited: number }> {
  const [ran, waited] = (await readFile(`/proc/${pid}/task/${pid}/schedstat`, 'utf8')).trim().split(/\s+/).map(Number);
  return { ran: ran!, waited: waited! };
}

function scheduleSince(before: { ran: number; waited: number }, after: { ran: number; waited: number }): string {
  const ms = (ns: number): string => (ns / 1e6).toFixed(0);
  return `main thread ran ${ms(after.ran - before.ran)} ms, waited for a CPU ${ms(after.waited - before.waited)} ms`;
}

/** CPU time (ms) of every thread of a process, from /proc/<pid>/stat (utime + stime, in clock ticks of 10 ms). */
async function processCpuMs(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // the command name may hold spaces
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

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

async function device(l: Listener, clientId: string, extra: mqtt.IClientOptions = {}): Promise<mqtt.MqttClient> {
  return mqtt.connectAsync({
    host: '127.0.0.1', port: l.port, protocol: 'mqtts', ca: l.ca, servername: 'localhost', rejectUnauthorized: true,
    username: l.username, password: l.password, clientId, reconnectPeriod: 0, connectTimeout: 10_000, ...extra,
  });
}

/** A loopback source address of its own for the i-th of many clients (127.0.<1..200>.<10..>). */
function sourceAddress(i: number): string {
  return `127.0.${1 + (i % 200)}.${10 + Math.floor(i / 200)}`;
}

/**
 * A subscriber that stops reading: it subscribes over raw TLS, then never reads again, as a device on a
 * dead link whose TCP connection has not noticed yet.
 */
async function stalledSubscriber(l: Listener, topic: string, qos: 0 | 1): Promise<tls.TLSSocket> {
  const socket = tls.connect({ host: '127.0.0.1', port: l.port, ca: l.ca, servername: 'localhost' });
  socket.on('error', () => undefined);
  await new Promise<void>((resolve) => socket.once('secureConnect', () => resolve()));
  socket.write(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: `stalled-${qos}`, keepalive: 0, username: l.username, password: Buffer.from(l.password) }));
  socket.write(mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos }] }));
  await new Promise((r) => setTimeout(r, 200));
  socket.pause();
  return socket;
}

async function fastPublisher(l: Listener, until: number, qos: 0 | 1): Promise<string> {
  const topic = `fast/${qos}`;
  const stalled = await stalledSubscriber(l, topic, qos);
  const c = await device(l, `fast-pub-${qos}`, { protocolVersion: 5 });
  const payload = Buffer.alloc(1024, 0x62);
  let n = 0;
  while (Date.now() < until) {
    // QoS 0: 100 at a time, then wait for MQTT.js to hand them to the socket; QoS 1: 100 in flight.
    await Promise.all(Array.from({ length: 100 }, () => c.publishAsync(topic, payload, { qos })));
    n += 100;
  }
  await c.endAsync();
  stalled.destroy();
  return `${n} messages of 1 KB at QoS ${qos} published to a subscriber that stopped reading`;
}

/**
 * One device publishing 1 MB retained messages at QoS 1 on new topics, each as soon as the last is
 * acknowledged. A raw MQTT 5 session over TLS that sends the same payload buffer every time: MQTT.js
 * copies each 1 MB message into a new packet, and the collections of those copies kept 1.2 of this
 * machine's 2 cores busy in the bench's own process (its main thread 2.5 s and four GC helpers 0.9 s each
 * in 5 s), which measured the machine's run queue rather than the broker. A device that floods a real
 * gateway does it from another machine.
 */
async function retainedFlood(l: Listener, until: number): Promise<{ sent: number; refused: number }> {
  const socket = tls.connect({ host: '127.0.0.1', port: l.port, ca: l.ca, servername: 'localhost' });
  socket.setNoDelay(true);
  const closed = new Promise<never>((_, reject) => {
    socket.once('error', reject);
    socket.once('close', () => reject(new Error('the broker closed the flooding connection')));
  });
  closed.catch(() => undefined);
  const parser = mqttPacket.parser({ protocolVersion: 5 });
  let answer: ((p: mqttPacket.Packet) => void) | undefined;
  parser.on('packet', (p) => answer?.(p));
  socket.on('data', (b: Buffer) => parser.parse(b));
  const next = (): Promise<mqttPacket.Packet> => Promise.race([new Promise<mqttPacket.Packet>((resolve) => { answer = resolve; }), closed]);
  await new Promise<void>((resolve) => socket.once('secureConnect', () => resolve()));
  const connack = next();
  socket.write(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clean: true, clientId: 'flood-retained', keepalive: 0, username: l.username, password: Buffer.from(l.password) }));
  const ack = await connack as mqttPacket.IConnackPacket;
  if ((ack.reasonCode ?? ack.returnCode ?? 0) !== 0) throw new Error(`the flooding device was refused: ${ack.reasonCode ?? ack.returnCode}`);
  const payload = Buffer.alloc(1_000_000, 0x61); // 1 MB: a whole packet stays under the default 1 MiB limit
  let sent = 0;
  let refused = 0;
  while (Date.now() < until) {
    const messageId = (sent % 65_535) + 1;
    const topic = Buffer.from(`flood/${sent}`);
    const length = 2 + topic.length + 2 + 1 + payload.length; // topic, packet id, no properties, payload
    const header = Buffer.alloc(1 + 4 + 2 + topic.length + 2 + 1);
    let at = header.writeUInt8(0x33, 0); // PUBLISH, QoS 1, RETAIN
    for (let rest = length; ; ) {
      const digit = rest % 128;
      rest = Math.floor(rest / 128);
      at = header.writeUInt8(rest > 0 ? digit | 0x80 : digit, at);
      if (rest === 0) break;
    }
    at = header.writeUInt16BE(topic.length, at);
    at += topic.copy(header, at);
    at = header.writeUInt16BE(messageId, at);
    at = header.writeUInt8(0, at);
    const puback = next();
    socket.cork();
    socket.write(header.subarray(0, at));
    socket.write(payload);
    socket.uncork();
    const p = await puback;
    if (p.cmd !== 'puback' || p.messageId !== messageId) throw new Error(`the flooding device expected PUBACK ${messageId}, got ${p.cmd}`);
    sent++;
    // Past the retained store's byte limit the broker answers PUBACK 0x97 (quota exceeded).
    if ((p.reasonCode ?? 0) >= 0x80) refused++;
  }
  socket.end();
  return { sent, refused };
}

const phases: Record<string, (l: Listener, until: number) => Promise<string>> = {
  async idle(_l, until) {
    await new Promise((r) => setTimeout(r, until - Date.now()));
    return '';
  },
  async 'retained-1mb'(l, until) {
    const { sent, refused } = await retainedFlood(l, until);
    return `${sent} retained messages of 1 MB sent, ${refused} refused (quota)`;
  },
  async 'subscriptions-4kb'(l, until) {
    // Five persistent sessions of 1,000 filters of 4 KB, subscribed again and again (the same filters, so the
    // same sessions' state is replaced) until the phase ends: one pass takes well under a second, too few PINGs.
    let filters = 0;
    let passes = 0;
    for (; passes === 0 || Date.now() < until; passes++) {
      for (let s = 0; s < 5 && Date.now() < until; s++) {
        const c = await device(l, `flood-subs-${s}`, { clean: false });
        for (let i = 0; i < 1000 && Date.now() < until; i += 50) {
          await c.subscribeAsync(Array.from({ length: 50 }, (_, j) => `s${s}/${i + j}/${'x'.repeat(4000)}`), { qos: 1 });
          filters += 50;
        }
        c.end(true);
      }
    }
    return `${filters} filters of 4 KB subscribed by 5 persistent sessions (${passes} passes)`;
  },
  async 'subscribers-1000'(l, phaseEnd) {
    // 1,000 TLS handshakes and a million filters need more than a flood phase's seconds on two cores.
    const until = Math.max(phaseEnd, Date.now() + 40_000);
    const clients: mqtt.MqttClient[] = [];
    let filters = 0;
    try {
      for (let i = 0; i < 1000 && Date.now() < until; i += 50) {
        clients.push(...await Promise.all(Array.from({ length: 50 }, (_, j) => device(l, `many-${i + j}`, { localAddress: sourceAddress(i + j) } as mqtt.IClientOptions))));
      }
      // Up to 1,000 filters each (Gatehouse's default maximum per client), 100 per SUBSCRIBE, all clients in parallel.
      for (let batch = 0; batch < 10 && Date.now() < until; batch++) {
        await Promise.all(clients.map((c, i) => c.subscribeAsync(Array.from({ length: 100 }, (_, k) => `many/${i}/${batch * 100 + k}`), { qos: 1 })));
        filters += clients.length * 100;
      }
    } finally {
      await Promise.all(clients.map((c) => c.endAsync(true)));
    }
    return `${clients.length} clients, ${filters} filters subscribed`;
  },
  'fast-publisher-qos0': (l, until) => fastPublisher(l, until, 0),
  'fast-publisher-qos1': (l, until) => fastPublisher(l, until, 1),
  async 'idle-sockets'(l, until) {
    const sockets: net.Socket[] = [];
    for (let i = 0; i < 10_000 && Date.now() < until; i++) {
      const s = net.connect({ host: '127.0.0.1', port: l.port, localAddress: sourceAddress(i) });
      s.on('error', () => undefined);
      sockets.push(s);
      if (i % 500 === 499) await new Promise((r) => setImmediate(r));
    }
    // Past the phase and the 5 s handshake deadline of the last socket opened: how many does the broker
    // still hold? Counted on the broker's side: a client socket whose connection overflowed the listen
    // backlog believes it is open (the broker never accepted it, and it sends nothing that would learn
    // otherwise), so the client's view over-counts.
    const openedAt = Date.now();
    await new Promise((r) => setTimeout(r, Math.max(until - Date.now(), 12_000)));
    const held = execFileSync('ss', ['-Htn', 'state', 'established', `( sport = :${l.port} )`], { encoding: 'utf8' }).split('\n').filter((line) => line.trim() !== '').length;
    for (const s of sockets) s.destroy();
    return `${sockets.length} plain sockets that never start TLS, from 200 addresses; the broker still held ${held} of them ${((Date.now() - openedAt) / 1000).toFixed(1)} s after the last one opened`;
  },
};

const starters: Record<string, () => Promise<Target>> = { gatehouse: startGatehouse, mosquitto: startMosquitto };
const chosenPhases = values.phases === undefined ? Object.keys(phases) : values.phases.split(',');
for (const name of chosenPhases) if (phases[name] === undefined) throw new Error(`unknown phase ${name}: ${Object.keys(phases).join(', ')}`);
process.stdout.write(`${SECONDS} s per phase; PINGs every 10 ms on the broker's other listener; load average ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}\n`);
for (const brokerName of values.brokers.split(',')) {
  const start = starters[brokerName];
  if (start === undefined) throw new Error(`unknown broker ${brokerName}: ${Object.keys(starters).join(', ')}`);
  const target = await start();
  try {
    const ping = await pingerProcess(target.quiet);
    process.stdout.write(`${target.name} (pid ${target.pid})\n`);
    for (const name of chosenPhases) {
      await ping.take();
      target.gc?.();
      await target.loopDelay?.();
      const scheduled = await mainThreadSchedule(target.pid);
      const [brokerCpu, ownCpu] = [await processCpuMs(target.pid), process.cpuUsage()];
      const what = await phases[name]!(target.flood, Date.now() + SECONDS * 1000);
      const schedule = scheduleSince(scheduled, await mainThreadSchedule(target.pid));
      const own = process.cpuUsage(ownCpu);
      // Both sides of the flood share this machine's cores with the pinger: what the flooding clients cost is part of the reading.
      const cpu = `broker CPU ${(await processCpuMs(target.pid)) - brokerCpu} ms (all threads), flooding clients ${((own.user + own.system) / 1000).toFixed(0)} ms`;
      const gc = `${target.gc === undefined ? '' : `; GC: ${target.gc()}`}${target.loopDelay === undefined ? '' : `; ${await target.loopDelay()}`}`;
      process.stdout.write(`  ${name.padEnd(20)} ${stats(await ping.take())}; RSS ${(await rssMiB(target.pid)).toFixed(0)} MiB${what ? `; ${what}` : ''}${gc}; ${schedule}; ${cpu}\n`);
    }
    await ping.close();
  } finally {
    await target.stop();
  }
}
