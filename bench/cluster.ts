/**
 * `npm run bench:cluster` (also `npm run bench -- --cluster`), issue 16: what the cluster costs and gives,
 * measured in one run on this machine against a single node.
 *
 * Topologies, each started fresh as `npm start` runs Gatehouse (node dist/main.mjs, real processes):
 *   single    one node, the embedded default (SQLite, no NATS): what the cluster is an alternative to
 *   nodes2    two cluster nodes on 127.0.0.2 and 127.0.0.3 with a nats-server of the run's own (JetStream,
 *             free loopback port, temp store) and a PostgreSQL schema of the run's own (dropped after)
 *   workers2  GATEHOUSE_WORKERS=2 on 127.0.0.2 (a primary handing connections round-robin to two workers,
 *             each a cluster node), with its own nats-server and schema
 * Phases on each, all over TLS with devices logging in with their passwords (one-party gateway):
 *   qos0 / qos1     publishers on node A, one subscriber on node B (same node when single), windowed flow:
 *                   delivered msg/s and CPU µs per message of every server process (nodes, workers and
 *                   primary, nats-server) read from /proc
 *   lat0 / lat1     the same paced at --rate msg/s: publish → deliver p50/p99, and PUBACK p50/p99 at QoS 1
 *   lat2            the same at QoS 2 from persistent sessions (clean = false) to a QoS 2 subscriber: publish →
 *                   deliver, and PUBREC p50/p99 (the cluster's exactly-once path: the session's record names
 *                   each message's store id before it is stored)
 *   takeover        a client id held on A, CONNECT on B: CONNECT → CONNACK and until A's socket closed
 *   failover        persistent sessions (clean = false, QoS 1) on A, a publisher on B; kill -9 A (single:
 *                   kill -9 and start it again; workers2: kill -9 worker 1): until every session that lost
 *                   its connection is back, and until every PUBACKed message has been delivered
 *   storm           every device connects at once (cold: the first CONNECT of each since its process started)
 * Every message is counted in a ledger (bench/cluster-report.ts): lost = acknowledged and never delivered,
 * duplicates = delivered again. Every process is started by this script and stopped by its id (process
 * group), on failure and on Ctrl-C too; every phase is bounded in time.
 *
 *   npm run bench:cluster -- [--topologies single,nodes2,workers2] [--duration 5] [--warmup 1] [--drain 5]
 *     [--publishers 20] [--rate 5000] [--takeovers 20] [--sessions 100] [--devices 10000] [--json PATH]
 */
import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { DIST, ensureBuilt } from '../scripts/build.mjs';
import { freePort } from './brokers.ts';
import { reportFlags, reportOnDeadline, tail } from '../test/harness/gatehouse-process.ts';
import { killAllNow, spawnChild, stopAll, type Child } from './children.ts';
import { Client, PublishFrame, readStamp, type Connected } from './cluster-client.ts';
import { cpuPer, latencySummary, Ledger, renderTable } from './cluster-report.ts';
import { machineBusySeconds, processCpuSeconds } from './proc.ts';

/** How long a node may take to say it is running (a fleet's database on a loaded machine). */
const START_DEADLINE_MS = 120_000;

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const TOKEN = 'bench-admin-token-0123456789abcdef';
const HOST_A = '127.0.0.2';
const HOST_B = '127.0.0.3';
const TOPOLOGIES = ['single', 'nodes2', 'workers2'] as const;
type Topology = (typeof TOPOLOGIES)[number];
/** The lowest password cost Gatehouse accepts: importing 10,000 devices per topology stays under a minute. */
const SCRYPT_N = 1024;
const IMPORT_CHUNK = 2000;
const STORM_IN_FLIGHT = 500;
const STORM_ADDRESSES = 100;

const USAGE = `usage: npm run bench:cluster -- [options]     (or npm run bench -- --cluster [options])
  --topologies LIST  comma-separated, default ${TOPOLOGIES.join(',')} (the first one is the reference of the ratios)
  --duration S       measured seconds of the throughput and latency phases (default 5)
  --warmup S         unmeasured seconds before that (default 1)
  --drain S          longest wait for messages in flight after publishing stops (default 20; it ends
                     sooner once all arrived or nothing arrived for 2 s)
  --publishers N     publishing clients of those phases (default 20)
  --rate N           msg/s of the latency phases (default 5000)
  --takeovers N      takeover rounds (default 20)
  --sessions N       persistent sessions on the killed process in the failover phase (default 100)
  --devices N        devices of the reconnect storm (default 10000)
  --phases LIST      default all: qos0,qos1,lat0,lat1,lat2,takeover,failover,storm
  --json PATH        where to write the results (default bench/results/cluster-<timestamp>.json)`;

const PHASES = ['qos0', 'qos1', 'lat0', 'lat1', 'lat2', 'takeover', 'failover', 'storm'] as const;
type Phase = (typeof PHASES)[number];

function fail(message: string): never {
  process.stderr.write(`bench:cluster: ${message}\n${USAGE}\n`);
  process.exit(2);
}

const { values } = parseArgs({
  options: {
    topologies: { type: 'string', default: TOPOLOGIES.join(',') },
    duration: { type: 'string', default: '5' },
    warmup: { type: 'string', default: '1' },
    drain: { type: 'string', default: '20' },
    publishers: { type: 'string', default: '20' },
    rate: { type: 'string', default: '5000' },
    takeovers: { type: 'string', default: '20' },
    sessions: { type: 'string', default: '100' },
    devices: { type: 'string', default: '10000' },
    phases: { type: 'string', default: PHASES.join(',') },
    json: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (values.help === true) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}
function num(name: string, raw: string, min: number, max: number): number {
  const n = Number(raw);
  if (!Number.isFinite(n) || n < min || n > max) fail(`--${name} must be a number from ${min} to ${max}`);
  return n;
}
const topologies = values.topologies.split(',').map((s) => s.trim()).filter((s) => s !== '');
for (const t of topologies) if (!(TOPOLOGIES as readonly string[]).includes(t)) fail(`unknown topology '${t}'`);
const phases = values.phases.split(',').map((s) => s.trim()).filter((s) => s !== '');
for (const p of phases) if (!(PHASES as readonly string[]).includes(p)) fail(`unknown phase '${p}'`);
const opt = {
  topologies: topologies as Topology[],
  phases: new Set(phases as Phase[]),
  duration: num('duration', values.duration, 1, 120),
  warmup: num('warmup', values.warmup, 0, 60),
  drain: num('drain', values.drain, 1, 60),
  publishers: Math.round(num('publishers', values.publishers, 1, 500)),
  rate: Math.round(num('rate', values.rate, 100, 50_000)),
  takeovers: Math.round(num('takeovers', values.takeovers, 1, 500)),
  sessions: Math.round(num('sessions', values.sessions, 1, 5000)),
  devices: Math.round(num('devices', values.devices, 1, 50_000)),
};
const databaseUrl = process.env.GATEHOUSE_TEST_DATABASE_URL;
if (opt.topologies.some((t) => t !== 'single') && databaseUrl === undefined) {
  fail('GATEHOUSE_TEST_DATABASE_URL (PostgreSQL) is needed for the cluster topologies; each run uses a schema of its own, dropped after');
}

const log = (line: string): void => void process.stderr.write(`${line}\n`);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const now = (): number => performance.now();
const username = (i: number): string => `dev-${String(i).padStart(6, '0')}`;
const password = (i: number): string => `pw-${(i * 7919).toString(36)}`;

// ---------------------------------------------------------------- processes

interface Node {
  name: string;
  host: string;
  http: string;
  dataDir: string;
  child: Child;
  output: () => string;
  env: Record<string, string>;
}

interface Infra {
  topology: Topology;
  nodes: Node[];
  nats?: Child;
  natsUrl?: string;
  natsStore?: string;
  schema?: string;
  masterKey: string;
  dirs: string[];
  ca: string;
  port: number;
  productKey: string;
}

function accepts(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, host, () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

async function startNats(infra: Infra): Promise<void> {
  const port = await freePort();
  infra.natsStore = mkdtempSync(path.join(os.tmpdir(), 'gatehouse-bench-nats-'));
  infra.dirs.push(infra.natsStore);
  infra.nats = spawnChild(['nats-server', '-js', '-a', '127.0.0.1', '-p', String(port), '-sd', infra.natsStore], { cwd: REPO_ROOT, env: process.env, stdout: 'ignore', stderr: 'ignore' });
  infra.natsUrl = `nats://127.0.0.1:${port}`;
  const deadline = Date.now() + 15_000;
  while (!(await accepts('127.0.0.1', port))) {
    if (infra.nats.exitStatus !== undefined) throw new Error(`nats-server exited ${infra.nats.exitStatus} (is it installed? test/cluster/README.md)`);
    if (Date.now() > deadline) throw new Error('nats-server did not listen within 15 s');
    await sleep(25);
  }
}

function schemaUrl(schema: string): string {
  const url = new URL(databaseUrl!);
  url.searchParams.set('options', `-c search_path=${schema}`);
  return url.toString();
}

async function sql(query: string): Promise<void> {
  const db = new pg.Client({ connectionString: databaseUrl });
  await db.connect();
  try {
    await db.query(query);
  } finally {
    await db.end();
  }
}

async function startNode(infra: Infra, name: string, host: string, extra: Record<string, string> = {}, dataDir?: string): Promise<Node> {
  const dir = dataDir ?? mkdtempSync(path.join(os.tmpdir(), `gatehouse-bench-${name}-`));
  if (dataDir === undefined) infra.dirs.push(dir);
  const httpPort = await freePort();
  const env: Record<string, string> = {
    GATEHOUSE_DATA_DIR: dir, GATEHOUSE_HTTP_PORT: String(httpPort), GATEHOUSE_HTTP_HOST: host, GATEHOUSE_MQTT_HOST: host,
    GATEHOUSE_PUBLIC_HOST: 'localhost', GATEHOUSE_ADMIN_TOKEN: TOKEN, GATEHOUSE_DEMO: 'off', GATEHOUSE_LOG_LEVEL: 'warn',
    GATEHOUSE_PASSWORD_SCRYPT_N: String(SCRYPT_N), GATEHOUSE_MASTER_KEY: infra.masterKey, ...extra,
  };
  if (infra.natsUrl !== undefined && infra.schema !== undefined) {
    Object.assign(env, { GATEHOUSE_NATS_URL: infra.natsUrl, GATEHOUSE_DATABASE_URL: schemaUrl(infra.schema), GATEHOUSE_NODE_ID: name });
  }
  // BENCH_PROF=DIR: each Gatehouse process writes a CPU profile there when it stops (`--cpu-prof`), as in `npm run bench`.
  const prof = process.env.BENCH_PROF ? ['--cpu-prof', '--cpu-prof-dir', process.env.BENCH_PROF] : [];
  // A node that never says it is running is asked for its diagnostic report (where it waits) before it is killed.
  const reportDir = mkdtempSync(path.join(os.tmpdir(), `gatehouse-bench-report-${name}-`));
  infra.dirs.push(reportDir);
  const child = spawnChild([process.execPath, '--no-node-snapshot', ...reportFlags(reportDir), ...prof, path.join(DIST, 'main.mjs')], {
    cwd: REPO_ROOT, env: { ...process.env, ...env }, stdout: 'pipe', stderr: 'pipe',
  });
  let out = '';
  const keep = (b: Buffer): void => void (out = (out + b.toString()).slice(-16_000));
  child.proc.stdout?.on('data', keep);
  child.proc.stderr?.on('data', keep);
  const deadline = Date.now() + START_DEADLINE_MS;
  while (!out.includes('Gatehouse is running')) {
    if (child.exitStatus !== undefined) throw new Error(`${name} exited ${child.exitStatus} while starting: ${out.slice(-2000)}`);
    if (Date.now() > deadline) throw await reportOnDeadline(name, child.proc, reportDir, START_DEADLINE_MS, () => tail(out), child.exited);
    await sleep(50);
  }
  const node: Node = { name, host, http: `http://${host}:${httpPort}`, dataDir: dir, child, output: () => out, env };
  return node;
}

async function api<T>(node: Node, method: string, url: string, body?: string | object, type = 'application/json'): Promise<T> {
  const res = await fetch(`${node.http}/api/v1${url}`, {
    method, headers: { authorization: `Bearer ${TOKEN}`, 'content-type': type },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body), signal: AbortSignal.timeout(290_000),
  });
  if (!res.ok) throw new Error(`${method} ${url}: ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

/** Pids of one node's processes now: the node, and a workers primary's children. */
function nodePids(node: Node): number[] {
  if (node.child.exitStatus !== undefined) return [];
  const pids = [node.child.pid];
  try {
    const children = readFileSync(`/proc/${node.child.pid}/task/${node.child.pid}/children`, 'utf8').trim();
    if (children !== '') pids.push(...children.split(/\s+/).map(Number));
  } catch {
    // gone meanwhile
  }
  return pids;
}

/** CPU seconds of one node's processes (an exited one counts 0). */
function nodeCpuSeconds(node: Node): number {
  let seconds = 0;
  for (const pid of nodePids(node)) {
    try {
      seconds += processCpuSeconds(pid);
    } catch {
      // exited between the listing and the read
    }
  }
  return seconds;
}

/** `byNode`: each node's own part of `nodes` (node-a publishes, node-b subscribes on nodes2), by name. */
interface CpuSnap { at: number; nodes: number; byNode: Record<string, number>; nats: number; driver: number; machine: number }

function cpuSnap(infra: Infra): CpuSnap {
  let nodes = 0;
  const byNode: Record<string, number> = {};
  for (const node of infra.nodes) {
    const seconds = nodeCpuSeconds(node);
    byNode[node.name] = seconds;
    nodes += seconds;
  }
  let nats = 0;
  if (infra.nats !== undefined && infra.nats.exitStatus === undefined) {
    try {
      nats = processCpuSeconds(infra.nats.pid);
    } catch {
      // exited
    }
  }
  const u = process.cpuUsage();
  return { at: now(), nodes, byNode, nats, driver: (u.user + u.system) / 1e6, machine: machineBusySeconds() };
}

/** CPU seconds of the servers (nodes + nats-server) between two snapshots, and each share in % of one core. */
function cpuBetween(a: CpuSnap, b: CpuSnap): { servers: number; wall: number; pct: Record<string, number>; parts: Record<string, number> } {
  const wall = (b.at - a.at) / 1000;
  const nodes = b.nodes - a.nodes;
  const nats = b.nats - a.nats;
  const driver = b.driver - a.driver;
  const other = Math.max(0, b.machine - a.machine - nodes - nats - driver);
  const pct = (s: number): number => Math.round((1000 * s) / wall) / 10;
  // Each node's and nats-server's seconds apart: where a message's cost falls (sending node, receiving node, NATS).
  const parts: Record<string, number> = { nats };
  for (const [name, seconds] of Object.entries(b.byNode)) parts[name] = seconds - (a.byNode[name] ?? seconds);
  const byNode = Object.fromEntries(Object.keys(b.byNode).map((name) => [name, pct(parts[name]!)]));
  return { servers: nodes + nats, wall, parts, pct: { nodes: pct(nodes), nats: pct(nats), driver: pct(driver), other: pct(other), ...(Object.keys(byNode).length > 1 ? byNode : {}) } };
}

// ---------------------------------------------------------------- setup

function newInfra(topology: Topology): Infra {
  return { topology, nodes: [], masterKey: randomBytes(32).toString('hex'), dirs: [], ca: '', port: 0, productKey: '' };
}

/** Starts the topology's processes into `infra` (so a failure half-way still tears down what started). */
async function setUp(infra: Infra): Promise<void> {
  const { topology } = infra;
  if (topology !== 'single') {
    await startNats(infra);
    infra.schema = `bench_${randomBytes(6).toString('hex')}`;
    await sql(`create schema ${infra.schema}`);
  }
  if (topology === 'single') infra.nodes.push(await startNode(infra, 'single', HOST_A));
  else if (topology === 'nodes2') {
    infra.nodes.push(await startNode(infra, 'node-a', HOST_A)); // the first migrates the schema
    infra.nodes.push(await startNode(infra, 'node-b', HOST_B));
  } else infra.nodes.push(await startNode(infra, 'workers', HOST_A, { GATEHOUSE_WORKERS: '2' }));
  const first = infra.nodes[0]!;
  const cert = await api<{ certificatePem: string; privateKeyPem: string }>(first, 'POST', '/certificates/self-signed', { hosts: ['localhost'] });
  infra.ca = cert.certificatePem;
  infra.port = await freePort();
  const gw = await api<{ id: string; productKey: string }>(first, 'POST', '/gateways', {
    name: 'bench_cluster', port: infra.port, authType: 'ONE_PARTY', certificates: { serverCertificateChain: cert.certificatePem, serverPrivateKey: cert.privateKeyPem },
    // No queue bound: past the servers' capacity (5,000 msg/s offered on two busy cores) a subscriber's queue
    // would drop its oldest QoS 1 messages by design; unbounded, a message not delivered is a lost one.
    limits: { maxQueuedMessagesPerDevice: null, maxQueuedBytesPerDevice: null },
  });
  infra.productKey = gw.productKey;
  const devices = Math.max(opt.devices, opt.sessions + 1, opt.publishers + 1);
  const t0 = now();
  for (let from = 0; from < devices; from += IMPORT_CHUNK) {
    const rows = Array.from({ length: Math.min(IMPORT_CHUNK, devices - from) }, (_, k) => `,${username(from + k)},${password(from + k)}`);
    const result = await api<{ created: number }>(first, 'POST', `/products/${gw.productKey}/devices/import`, `sn,username,password\n${rows.join('\n')}\n`, 'text/csv');
    if (result.created !== rows.length) throw new Error(`import created ${result.created} of ${rows.length}`);
  }
  log(`  ${topology}: gateway on port ${infra.port}, ${devices} devices imported in ${((now() - t0) / 1000).toFixed(1)} s`);
  for (const host of new Set(infra.nodes.map((n) => n.host))) {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const ok = await connect(host, infra, 0, 'probe', true).then((c) => (c.client.destroy(), true), () => false);
      if (ok) break;
      if (Date.now() > deadline) throw new Error(`${host} does not take devices on ${infra.port}`);
      await sleep(200);
    }
  }
}

async function tearDown(infra: Infra): Promise<void> {
  // The nodes before nats-server: a node stopping drains its NATS connection, and one whose server went first
  // waited out its grace and was killed (no CPU profile written under BENCH_PROF).
  await Promise.all(infra.nodes.map((n) => n.child.stop(10_000)));
  await infra.nats?.stop(5000);
  if (infra.schema !== undefined) await sql(`drop schema if exists ${infra.schema} cascade`).catch((err: unknown) => log(`  could not drop schema ${infra.schema}: ${String(err)}`));
  for (const dir of infra.dirs) rmSync(dir, { recursive: true, force: true });
}

function connect(host: string, infra: Infra, device: number, clientId: string, clean: boolean, localAddress?: string, onMessage?: (payload: Buffer) => void): Promise<Connected> {
  return Client.open({ host, port: infra.port, ca: infra.ca, clientId, username: username(device), password: password(device), clean, localAddress, onMessage });
}

/**
 * After publishing stops: until every message counted (`pending` = 0), or nothing more arrives for 2 s, or
 * --drain seconds at most (a backlog the servers are still working through is waited for, not called lost).
 */
async function drain(pending: () => number, delivered: () => number): Promise<void> {
  const deadline = Date.now() + opt.drain * 1000;
  let last = delivered();
  let lastChange = Date.now();
  while (Date.now() < deadline && pending() > 0) {
    await sleep(50);
    if (delivered() !== last) {
      last = delivered();
      lastChange = Date.now();
    } else if (Date.now() - lastChange > 2000) break;
  }
}

/** Where each role's clients connect: node A and node B (the same host on one node or one workers port). */
function hosts(infra: Infra): { a: string; b: string } {
  return infra.topology === 'nodes2' ? { a: HOST_A, b: HOST_B } : { a: HOST_A, b: HOST_A };
}

// ---------------------------------------------------------------- qos0 / qos1: windowed flow

type Figures = Record<string, number>;

async function openPublishers(infra: Infra, host: string, tag: string, clean = true): Promise<Client[]> {
  return Promise.all(Array.from({ length: opt.publishers }, (_, i) => connect(host, infra, 1 + i, `${tag}-pub-${i}`, clean).then((c) => c.client)));
}

async function throughput(infra: Infra, qos: 0 | 1): Promise<Figures> {
  const { a, b } = hosts(infra);
  const sub = (await connect(b, infra, 0, `q${qos}-sub`, true)).client;
  await sub.subscribe('bench/#', qos);
  const pubs = await openPublishers(infra, a, `q${qos}`);
  const frames = pubs.map((_, i) => new PublishFrame(`bench/${i}`, qos));
  const idToSeq = pubs.map(() => new Uint32Array(65_536));
  const ledger = new Ledger();
  const seqs = pubs.map(() => 0);
  const window = qos === 0 ? 1000 : 500;
  let sent = 0;
  let delivered = 0;
  let writtenOff = 0;
  let lastDelivery = now();
  let sending = true;
  let cursor = 0;
  const blocked = pubs.map(() => false);
  const pump = (): void => {
    if (!sending) return;
    let budget = window - (sent - delivered - writtenOff);
    let skipped = 0;
    while (budget > 0 && skipped < pubs.length) {
      const i = cursor;
      cursor = (cursor + 1) % pubs.length;
      const pub = pubs[i]!;
      if (blocked[i] || pub.closed) {
        skipped++;
        continue;
      }
      skipped = 0;
      const count = Math.min(16, budget);
      const parts: Buffer[] = [];
      for (let k = 0; k < count; k++) {
        const seq = seqs[i]!++;
        const id = qos === 1 ? pub.nextPacketId() : 0;
        if (qos === 1) idToSeq[i]![id] = seq;
        ledger.sent(i, seq);
        parts.push(frames[i]!.build(i, seq, id));
      }
      if (!pub.write(Buffer.concat(parts))) blocked[i] = true;
      sent += count;
      budget -= count;
    }
  };
  pubs.forEach((pub, i) => {
    pub.sock.on('drain', () => {
      blocked[i] = false;
      pump();
    });
    pub.onPuback = (id) => ledger.acked(i, idToSeq[i]![id]!);
  });
  sub.onMessage = (payload) => {
    const s = readStamp(payload);
    if (s !== undefined && ledger.delivered(s.publisher, s.seq)) delivered++;
    lastDelivery = now();
  };
  sub.sock.on('data', pump);
  // A QoS 0 message the broker dropped never comes back to open the window: after 500 ms without a
  // delivery the window's outstanding messages are written off (they still count as missing).
  const backstop = setInterval(() => {
    if (now() - lastDelivery > 500) {
      writtenOff = sent - delivered;
      lastDelivery = now();
    }
    pump();
  }, 5);
  pump();
  await sleep(opt.warmup * 1000);
  const c0 = cpuSnap(infra);
  const d0 = delivered;
  await sleep(opt.duration * 1000);
  const c1 = cpuSnap(infra);
  const d1 = delivered;
  sending = false;
  clearInterval(backstop);
  await drain(() => ledger.counts().missing, () => delivered);
  const counts = ledger.counts();
  const cpu = cpuBetween(c0, c1);
  for (const c of [sub, ...pubs]) c.destroy();
  const p = `qos${qos}`;
  const f: Figures = {
    [`${p}_msgs_per_s`]: (d1 - d0) / cpu.wall,
    [`${p}_cpu_us_per_msg`]: cpuPer(cpu.servers, d1 - d0, 1e6),
  };
  if (qos === 0) f.qos0_missing = counts.missing;
  else Object.assign(f, { qos1_lost: counts.lostAcked, qos1_duplicates: counts.duplicates });
  // Per process (JSON only): on nodes2 node-a is the publishers' node and node-b the subscriber's.
  if (infra.topology !== 'single') for (const [name, seconds] of Object.entries(cpu.parts)) f[`${p}_cpu_us_per_msg_${name}`] = cpuPer(seconds, d1 - d0, 1e6);
  logPhase(infra, p, `${Math.round((d1 - d0) / cpu.wall)} msg/s, ${closedNote([sub, ...pubs])}sent ${counts.sent}, acked ${counts.acked}, delivered ${counts.delivered}, missing ${counts.missing}, lost ${counts.lostAcked}, dup ${counts.duplicates}, unknown ${counts.unknown}`, cpu.pct);
  return f;
}

/** Says how many of the phase's clients the servers closed on them (none should be). */
function closedNote(clients: Client[]): string {
  const closed = clients.filter((c) => c.closed && !c.destroyedByUs).length;
  return closed === 0 ? '' : `${closed} of ${clients.length} clients CLOSED BY THE SERVER, `;
}

function logPhase(infra: Infra, phase: string, what: string, pct?: Record<string, number>): void {
  const split = pct?.['node-a'] === undefined ? '' : ` (a ${pct['node-a']} b ${pct['node-b']})`;
  const shares = pct === undefined ? '' : `  cpu% nodes/nats/driver/other ${pct.nodes}${split}/${pct.nats}/${pct.driver}/${pct.other}`;
  cpuShares.push({ topology: infra.topology, phase, ...(pct ?? {}) });
  log(`  ${infra.topology} ${phase}: ${what}${shares}`);
}
const cpuShares: Record<string, unknown>[] = [];

// ---------------------------------------------------------------- lat0 / lat1 / lat2: paced

async function latency(infra: Infra, qos: 0 | 1 | 2): Promise<Figures> {
  const { a, b } = hosts(infra);
  const sub = (await connect(b, infra, 0, `l${qos}-sub`, true)).client;
  await sub.subscribe('bench/#', qos);
  // QoS 2 from persistent sessions: the path a device relying on exactly-once takes.
  const pubs = await openPublishers(infra, a, `l${qos}`, qos < 2);
  const frames = pubs.map((_, i) => new PublishFrame(`bench/${i}`, qos));
  const idToSeq = pubs.map(() => new Uint32Array(65_536));
  const sentAt = pubs.map(() => new Float64Array(65_536));
  const ledger = new Ledger();
  const seqs = pubs.map(() => 0);
  const start = now();
  const t0 = start + opt.warmup * 1000;
  const t1 = t0 + opt.duration * 1000;
  const deliver: number[] = [];
  const puback: number[] = [];
  let windowDelivered = 0;
  pubs.forEach((pub, i) => {
    // QoS 2: the PUBREC says the server holds the message (the PUBREL follows at once).
    const acked = (id: number, at: number): void => {
      ledger.acked(i, idToSeq[i]![id]!);
      const t = sentAt[i]![id]!;
      if (t >= t0 && t < t1) puback.push(at - t);
    };
    if (qos === 2) pub.onPubrec = acked;
    else pub.onPuback = acked;
  });
  let deliveredAll = 0;
  sub.onMessage = (payload, at) => {
    const s = readStamp(payload);
    if (s === undefined || !ledger.delivered(s.publisher, s.seq)) return;
    deliveredAll++;
    if (s.sentAt >= t0 && s.sentAt < t1) {
      deliver.push(at - s.sentAt);
      windowDelivered++;
    }
  };
  // Paced by a 1 ms timer, not a busy loop: the driver shares the two cores with the nodes it measures.
  // Each message is stamped as it is written, so a late tick delays sends, not their measured latency.
  let sent = 0;
  let cursor = 0;
  let c0: CpuSnap | undefined;
  await new Promise<void>((resolve) => {
    const tick = (): void => {
      const t = now();
      if (c0 === undefined && t >= t0) c0 = cpuSnap(infra);
      if (t >= t1) return resolve();
      let due = Math.min(Math.floor(((t - start) * opt.rate) / 1000) - sent, opt.rate / 10);
      for (; due > 0; due--) {
        const i = cursor;
        cursor = (cursor + 1) % pubs.length;
        const pub = pubs[i]!;
        const seq = seqs[i]!++;
        const id = qos > 0 ? pub.nextPacketId() : 0;
        if (qos > 0) {
          idToSeq[i]![id] = seq;
          sentAt[i]![id] = now();
        }
        ledger.sent(i, seq);
        pub.write(frames[i]!.build(i, seq, id));
        sent++;
      }
      setTimeout(tick, 1);
    };
    tick();
  });
  const c1 = cpuSnap(infra);
  await drain(() => ledger.counts().missing, () => deliveredAll);
  const counts = ledger.counts();
  const cpu = cpuBetween(c0 ?? c1, c1);
  for (const c of [sub, ...pubs]) c.destroy();
  const d = latencySummary(deliver);
  const p = `lat${qos}`;
  const f: Figures = { [`${p}_p50_ms`]: d.p50, [`${p}_p99_ms`]: d.p99, [`${p}_cpu_us_per_msg`]: cpuPer(cpu.servers, windowDelivered, 1e6) };
  let ack = '';
  if (qos === 0) f.lat0_missing = counts.missing;
  else {
    const pa = latencySummary(puback);
    const name = qos === 1 ? 'puback' : 'pubrec';
    Object.assign(f, { [`${p}_${name}_p50_ms`]: pa.p50, [`${p}_${name}_p99_ms`]: pa.p99, [`${p}_lost`]: counts.lostAcked, [`${p}_duplicates`]: counts.duplicates });
    ack = `, ${name.toUpperCase()} p50 ${pa.p50.toFixed(2)} p99 ${pa.p99.toFixed(2)} ms`;
  }
  logPhase(infra, p, `${Math.round(sent / ((t1 - start) / 1000))} msg/s offered, ${closedNote([sub, ...pubs])} ${d.n} samples, p50 ${d.p50.toFixed(2)} p99 ${d.p99.toFixed(2)} max ${d.max.toFixed(1)} ms${ack}; sent ${counts.sent}, missing ${counts.missing}, lost ${counts.lostAcked}, dup ${counts.duplicates}`, cpu.pct);
  return f;
}

// ---------------------------------------------------------------- takeover

async function takeover(infra: Infra): Promise<Figures> {
  const { a, b } = hosts(infra);
  const connack: number[] = [];
  const closed: number[] = [];
  let failed = 0;
  for (let k = 0; k < opt.takeovers; k++) {
    const clientId = `takeover-${k}`;
    let old: Client | undefined;
    let next: Client | undefined;
    try {
      old = (await connect(a, infra, 0, clientId, false)).client;
      await sleep(200); // a device that reconnects elsewhere does so some time after its first CONNECT
      // TLS is up before CONNECT is written: connectMs is the MQTT part alone.
      const taken = await connect(b, infra, 0, clientId, false);
      next = taken.client;
      const sentAt = now() - taken.connectMs;
      const oldClient = old;
      const deadline = Date.now() + 5000;
      while (!oldClient.closed && Date.now() < deadline) await sleep(1);
      connack.push(taken.connectMs);
      if (oldClient.closed) closed.push(oldClient.closedAt - sentAt);
      else failed++;
    } catch (err) {
      failed++;
      if (failed === 1) log(`  takeover round ${k} failed: ${(err as Error).message}`);
    } finally {
      old?.destroy();
      next?.destroy();
    }
  }
  const c = latencySummary(connack);
  const s = latencySummary(closed);
  logPhase(infra, 'takeover', `${opt.takeovers} rounds, CONNACK p50 ${c.p50.toFixed(1)} max ${c.max.toFixed(1)} ms, old socket closed p50 ${s.p50.toFixed(1)} max ${s.max.toFixed(1)} ms, failed ${failed}`);
  return { takeover_connack_p50_ms: c.p50, takeover_connack_max_ms: c.max, takeover_closed_p50_ms: s.p50, takeover_closed_max_ms: s.max, takeover_failed: failed };
}

// ---------------------------------------------------------------- failover

function workerPid(node: Node, index: number): number | undefined {
  try {
    const text = readFileSync(path.join(node.dataDir, 'workers', String(index), 'gatehouse.pid'), 'utf8');
    return /^\d+\n$/.test(text) ? Number(text) : undefined;
  } catch {
    return undefined;
  }
}

async function failover(infra: Infra): Promise<Figures> {
  const { a, b } = hosts(infra);
  const ledger = new Ledger();
  const rate = 1000;
  let killAt = Number.NaN;
  let stopped = false;
  const resumedAt = new Map<number, number>();
  const sessionPresent = new Set<number>();
  const affected = new Set<number>();

  const onDelivery = (payload: Buffer): void => {
    const s = readStamp(payload);
    if (s !== undefined) ledger.delivered(s.publisher, s.seq);
  };
  /** Reconnects session i (clean = false) until it is back, to `host`; subscribes again if the session was not kept. */
  const reconnect = async (i: number, host: string): Promise<void> => {
    while (!stopped) {
      try {
        const c = await connect(host, infra, 1 + i, `failover-${i}`, false, undefined, onDelivery);
        resumedAt.set(i, now());
        if (c.sessionPresent) sessionPresent.add(i);
        attach(i, c.client, host);
        if (!c.sessionPresent) await c.client.subscribe(`fo/${i}`, 1);
        return;
      } catch {
        await sleep(100);
      }
    }
  };
  const sessions = new Map<number, Client>();
  const attach = (i: number, client: Client, host: string): void => {
    sessions.set(i, client);
    client.onMessage = onDelivery;
    client.onClose = () => {
      if (stopped) return;
      affected.add(i);
      // A real device reconnects to the address it has: one node's (a load balancer in front would pick B).
      void reconnect(i, infra.topology === 'nodes2' ? HOST_B : host);
    };
  };
  await Promise.all(Array.from({ length: opt.sessions }, async (_, i) => {
    const c = await connect(a, infra, 1 + i, `failover-${i}`, false, undefined, onDelivery);
    attach(i, c.client, a);
    await c.client.subscribe(`fo/${i}`, 1);
  }));

  // The publisher: QoS 1, one message every ms to the sessions in turn; resends whatever was not PUBACKed
  // when its own connection drops (single and workers2: it may be on the killed process).
  const frames = Array.from({ length: opt.sessions }, (_, i) => new PublishFrame(`fo/${i}`, 1));
  const pending = new Map<number, number>(); // packet id → seq
  let pub: Client | undefined;
  let seq = 0;
  const openPublisher = async (): Promise<void> => {
    while (!stopped) {
      try {
        const c = await connect(b, infra, 0, 'failover-pub', true);
        pub = c.client;
        const unacked = [...pending.values()];
        pending.clear();
        for (const s of unacked) send(s);
        pub.onPuback = (id) => {
          const s = pending.get(id);
          if (s === undefined) return;
          pending.delete(id);
          ledger.acked(0, s);
        };
        pub.onClose = () => {
          pub = undefined;
          if (!stopped) void openPublisher();
        };
        return;
      } catch {
        await sleep(100);
      }
    }
  };
  const send = (s: number): void => {
    if (pub === undefined) return;
    const id = pub.nextPacketId();
    pending.set(id, s);
    ledger.sent(0, s);
    pub.write(frames[s % opt.sessions]!.build(0, s, id));
  };
  await openPublisher();
  let publishing = true;
  const start = now();
  const pacer = setInterval(() => {
    if (!publishing || pub === undefined) return;
    const due = Math.floor(((now() - start) * rate) / 1000) - seq;
    for (let k = 0; k < Math.min(due, 200); k++) send(seq++);
    if (due > 200) seq += due - 200; // skipped while disconnected: never sent, not counted
  }, 5);
  await sleep(2000);

  killAt = now();
  let victimPid: number | undefined;
  if (infra.topology === 'workers2') victimPid = workerPid(infra.nodes[0]!, 1);
  else victimPid = infra.nodes[0]!.child.pid;
  if (victimPid === undefined) throw new Error('no pid to kill');
  process.kill(victimPid, 'SIGKILL');
  if (infra.topology === 'single') {
    // One node: it has to come back (a supervisor would start it again) on its own data directory.
    const old = infra.nodes[0]!;
    await old.child.exited;
    infra.nodes[0] = await startNode(infra, old.name, old.host, {}, old.dataDir);
  } else if (infra.topology === 'nodes2') {
    await infra.nodes[0]!.child.exited;
  }
  // Publish on until every session that lost its connection is back (at most 30 s), then 1 s more.
  const resumeDeadline = Date.now() + 30_000;
  const allBack = (): boolean => affected.size > 0 && [...affected].every((i) => resumedAt.has(i) && (resumedAt.get(i) ?? 0) > killAt);
  while (!allBack() && Date.now() < resumeDeadline) await sleep(20);
  const resumed = allBack() ? Math.max(...[...affected].map((i) => resumedAt.get(i)!)) - killAt : Number.NaN;
  await sleep(1000);
  publishing = false;
  clearInterval(pacer);
  // Drained: every PUBACKed message delivered (the publisher's last PUBACKs may still be on their way).
  const drainDeadline = Date.now() + opt.drain * 1000;
  let drained = Number.NaN;
  while (Date.now() < drainDeadline) {
    if (pending.size === 0 && ledger.allAckedDelivered()) {
      drained = now() - killAt;
      break;
    }
    await sleep(20);
  }
  stopped = true;
  const counts = ledger.counts();
  pub?.destroy();
  for (const c of sessions.values()) c.destroy();
  const present = [...affected].filter((i) => sessionPresent.has(i)).length;
  if (infra.topology === 'nodes2') {
    // Node A back on its data directory (unmeasured), so the storm that follows has both nodes.
    const old = infra.nodes[0]!;
    infra.nodes[0] = await startNode(infra, old.name, old.host, {}, old.dataDir);
  }
  logPhase(infra, 'failover', `${affected.size} of ${opt.sessions} sessions lost their connection; all back in ${(resumed / 1000).toFixed(2)} s, `
    + `${present} with Session Present 1; sent ${counts.sent}, acked ${counts.acked}, delivered ${counts.delivered}, lost ${counts.lostAcked}, dup ${counts.duplicates}, `
    + `drained ${Number.isFinite(drained) ? `${(drained / 1000).toFixed(2)} s` : 'never (lost messages)'} after the kill`);
  return {
    failover_sessions: affected.size, failover_resumed_s: resumed / 1000, failover_session_present: present,
    failover_drained_s: drained / 1000, failover_acked: counts.acked, failover_lost: counts.lostAcked, failover_duplicates: counts.duplicates,
  };
}

// ---------------------------------------------------------------- storm

async function storm(infra: Infra): Promise<Figures> {
  const targets = infra.topology === 'nodes2' ? [HOST_A, HOST_B] : [HOST_A];
  const clients: Client[] = [];
  let next = 0;
  let retries = 0;
  let firstError: string | undefined;
  const deadline = Date.now() + 180_000;
  const c0 = cpuSnap(infra);
  const worker = async (): Promise<void> => {
    while (next < opt.devices && Date.now() < deadline) {
      const i = next++;
      for (;;) {
        try {
          const c = await connect(targets[i % targets.length]!, infra, i, `storm-${i}`, true, `127.0.1.${1 + (i % STORM_ADDRESSES)}`);
          clients.push(c.client);
          break;
        } catch (err) {
          firstError ??= (err as Error).message;
          if (Date.now() > deadline) return;
          retries++;
          await sleep(500 + Math.random() * 1500);
        }
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(STORM_IN_FLIGHT, opt.devices) }, worker));
  const c1 = cpuSnap(infra);
  const cpu = cpuBetween(c0, c1);
  const connected = clients.length;
  for (const c of clients) c.destroy();
  logPhase(infra, 'storm', `${connected}/${opt.devices} connected in ${cpu.wall.toFixed(1)} s (${Math.round(connected / cpu.wall)}/s), ${retries} retries${firstError === undefined ? '' : ` (first: ${firstError})`}`, cpu.pct);
  await sleep(2000); // let the nodes close the 10,000 sessions before the next topology starts
  return { storm_connects_per_s: connected / cpu.wall, storm_cpu_ms_per_connect: cpuPer(cpu.servers, connected, 1e3), storm_connected: connected, storm_retries: retries };
}

// ---------------------------------------------------------------- main

function gitHead(): string {
  const r = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: REPO_ROOT, encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : 'unknown';
}

let interrupted = false;
async function main(): Promise<void> {
  await ensureBuilt();
  const onSignal = (signal: string): void => {
    if (interrupted) {
      killAllNow();
      process.exit(130);
    }
    interrupted = true;
    log(`\n${signal}: stopping every node and nats-server (again to quit at once)`);
    void stopAll();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.once('exit', killAllNow);
  const startedAt = new Date();
  const loadStart = os.loadavg();
  const head = gitHead();
  log(`bench:cluster at ${head}: ${opt.topologies.join(', ')}; ${os.cpus().length} CPUs, load average ${loadStart.map((l) => l.toFixed(1)).join(' ')}`);
  const results: Record<string, Figures> = {};
  const errors: string[] = [];
  for (const topology of opt.topologies) {
    if (interrupted) break;
    log(`${topology}: starting`);
    const infra = newInfra(topology);
    const figures: Figures = {};
    results[topology] = figures;
    try {
      await setUp(infra);
      const run: [Phase, () => Promise<Figures>][] = [
        ['qos0', () => throughput(infra, 0)], ['qos1', () => throughput(infra, 1)],
        ['lat0', () => latency(infra, 0)], ['lat1', () => latency(infra, 1)], ['lat2', () => latency(infra, 2)],
        ['takeover', () => takeover(infra)], ['failover', () => failover(infra)], ['storm', () => storm(infra)],
      ];
      for (const [phase, fn] of run) {
        if (interrupted) break;
        if (!opt.phases.has(phase)) continue;
        try {
          Object.assign(figures, await fn());
        } catch (err) {
          const msg = `${topology} ${phase}: ${err instanceof Error ? err.message : String(err)}`;
          errors.push(msg);
          log(`  FAILED ${msg}`);
        }
      }
    } catch (err) {
      const msg = `${topology}: ${err instanceof Error ? err.message : String(err)}`;
      errors.push(msg);
      log(`  FAILED ${msg}`);
    } finally {
      await tearDown(infra);
    }
  }
  const loadEnd = os.loadavg();
  const table = renderTable(results, opt.topologies, opt.topologies[0]!);
  process.stdout.write(`\n${interrupted ? 'INTERRUPTED: partial results\n' : ''}bench:cluster at ${head}, ${startedAt.toISOString()}; load average at start ${loadStart.map((l) => l.toFixed(1)).join(' ')}, at end ${loadEnd.map((l) => l.toFixed(1)).join(' ')}\n\n${table}\n\n`);
  process.stdout.write(`Ratios are topology ÷ ${opt.topologies[0]} (on ↓ rows ×2.00 = twice the cost). CPU = every server process (nodes, workers and primary, nats-server) from /proc.\n`);
  for (const e of errors) process.stdout.write(`failed: ${e}\n`);
  const stamp = startedAt.toISOString().replace(/[:.]/g, '-');
  const jsonPath = path.resolve(values.json ?? path.join(REPO_ROOT, 'bench', 'results', `cluster-${stamp}.json`));
  mkdirSync(path.dirname(jsonPath), { recursive: true });
  writeFileSync(jsonPath, `${JSON.stringify({
    version: 1, commit: head, startedAt: startedAt.toISOString(), finishedAt: new Date().toISOString(),
    machine: { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model ?? '?', node: process.version, loadavgAtStart: loadStart, loadavgAtEnd: loadEnd },
    options: { ...opt, phases: [...opt.phases] }, interrupted, results, cpuShares, errors,
  }, null, 2)}\n`);
  process.stdout.write(`results: ${path.relative(process.cwd(), jsonPath)}\n`);
  if (interrupted) process.exitCode = 130;
  else if (errors.length > 0) process.exitCode = 1;
}

await main().catch((err: unknown) => {
  log(`bench:cluster: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  killAllNow();
  process.exitCode = 1;
});
