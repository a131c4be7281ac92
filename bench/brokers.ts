/** The brokers under test: how each one is launched on CPU 0, and when it is ready. */
import net from 'node:net';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { BenchCerts } from './certs.ts';
import { spawnPinned, type Child } from './children.ts';
import { DIST, ENTRIES, buildEntries } from '../scripts/build.mjs';

export type BrokerName = 'gatehouse' | 'gatehouse-tap' | 'gatehouse-parsing' | 'gatehouse-journal' | 'gatehouse-acl-0' | 'gatehouse-acl-2' | 'gatehouse-acl-20' | 'mosquitto' | 'mosquitto-nd' | 'aedes' | 'node-floor';
export const BROKER_NAMES: BrokerName[] = ['gatehouse', 'gatehouse-tap', 'gatehouse-parsing', 'gatehouse-journal', 'gatehouse-acl-0', 'gatehouse-acl-2', 'gatehouse-acl-20', 'mosquitto', 'mosquitto-nd', 'aedes', 'node-floor'];

export function isBrokerName(name: string): name is BrokerName {
  return (BROKER_NAMES as string[]).includes(name);
}

export interface LaunchContext {
  repoRoot: string;
  workDir: string;
  port: number;
  tlsPort: number;
  certs: BenchCerts;
  /** Distinguishes the config files of successive launches. */
  runId: string;
}

interface Launch {
  argv: string[];
  env: NodeJS.ProcessEnv;
}

export interface BrokerSpec {
  name: BrokerName;
  describe: string;
  /** Why the broker cannot run here, or undefined when it can. */
  unavailable(repoRoot: string): string | undefined;
  version(repoRoot: string): string;
  launch(ctx: LaunchContext): Launch;
}

/**
 * Every Node process of a run — Gatehouse, the Node peers and the generator — runs compiled JavaScript
 * with plain node, never through tsx: tsx's module-hook thread has its own V8 heap whose garbage
 * collections take the broker's single core from its event loop (several ms each, seconds after
 * start-up, i.e. inside the measured window). Gatehouse runs dist/cli.mjs as `npm start` would; the
 * bench's own entries are bundled into bench/.build by `buildBenchEntries` at the start of a run.
 */
// BENCH_PROF=DIR: every Node process of the run writes a CPU profile there (`--cpu-prof`), one file per process.
const NODE = [process.execPath, '--no-node-snapshot', ...(process.env.BENCH_PROF ? ['--cpu-prof', '--cpu-prof-dir', process.env.BENCH_PROF] : [])];
export const BENCH_BUILD_DIR = 'bench/.build';
const BENCH_ENTRIES = {
  generator: 'bench/generator.ts',
  'node-floor': 'bench/peers/node-floor.ts',
  'aedes-server': 'bench/peers/aedes-server.ts',
  'gatehouse-parsing': 'bench/peers/gatehouse-parsing.ts',
  // The sandbox's worker thread, loaded from beside gatehouse-parsing.mjs (src/sandbox/quickjs-runner.ts).
  'sandbox-worker': 'src/sandbox/quickjs-worker.ts',
  'gatehouse-acl': 'bench/peers/gatehouse-acl.ts',
};
export const benchEntry = (name: keyof typeof BENCH_ENTRIES): string => `${BENCH_BUILD_DIR}/${name}.mjs`;

/** Compiles Gatehouse (dist/, as `npm run build`) and the bench's own entries; relative to the repo root. */
export async function buildBenchEntries(repoRoot: string): Promise<void> {
  await buildEntries(ENTRIES, DIST);
  await buildEntries(BENCH_ENTRIES, join(repoRoot, BENCH_BUILD_DIR));
}

function mosquittoPath(): string | undefined {
  const found = spawnSync('bash', ['-c', 'command -v mosquitto'], { encoding: 'utf8' });
  const path = found.stdout.trim();
  return found.status === 0 && path !== '' ? path : undefined;
}

/** Installs Debian's mosquitto with apt-get when it is missing; returns its path or undefined. */
export function ensureMosquitto(log: (line: string) => void): string | undefined {
  const existing = mosquittoPath();
  if (existing !== undefined) return existing;
  log('mosquitto not found: installing it with apt-get');
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const install = (): boolean =>
    spawnSync('apt-get', ['install', '-y', '--no-install-recommends', 'mosquitto'], { stdio: ['ignore', 'ignore', 'inherit'], env }).status === 0;
  if (!install()) {
    spawnSync('apt-get', ['update'], { stdio: ['ignore', 'ignore', 'inherit'], env });
    install();
  }
  return mosquittoPath();
}

function mosquittoSpec(name: 'mosquitto' | 'mosquitto-nd', noDelay: boolean): BrokerSpec {
  return {
    name,
    describe: noDelay ? 'Mosquitto (Debian) with set_tcp_nodelay true' : 'Mosquitto (Debian), default settings',
    unavailable: () => (mosquittoPath() === undefined ? 'mosquitto is not installed' : undefined),
    version: () => {
      const help = spawnSync('mosquitto', ['-h'], { encoding: 'utf8' });
      return /version (\S+)/.exec(help.stdout)?.[1] ?? 'unknown';
    },
    launch: (ctx) => {
      const conf = join(ctx.workDir, `${ctx.runId}.conf`);
      writeFileSync(conf, [
        // Defaults except what a benchmark needs: anonymous clients, no disk persistence, no per-connect log lines.
        'per_listener_settings false',
        'allow_anonymous true',
        'persistence false',
        'log_dest stderr',
        'log_type error',
        'log_type warning',
        'connection_messages false',
        ...(noDelay ? ['set_tcp_nodelay true'] : []),
        `listener ${ctx.port} 127.0.0.1`,
        `listener ${ctx.tlsPort} 127.0.0.1`,
        `certfile ${ctx.certs.serverCert}`,
        `keyfile ${ctx.certs.serverKey}`,
        'tls_version tlsv1.3',
        '',
      ].join('\n'));
      return { argv: ['mosquitto', '-c', conf], env: process.env };
    },
  };
}

export const BROKERS: Record<BrokerName, BrokerSpec> = {
  gatehouse: {
    name: 'gatehouse',
    describe: 'Gatehouse engine: `gatehouse broker` (dist/cli.mjs, built from src/cli/index.ts)',
    unavailable: (repoRoot) => (existsSync(join(repoRoot, 'src/cli/index.ts')) ? undefined : 'src/cli/index.ts does not exist yet'),
    version: (repoRoot) => {
      const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string };
      try {
        const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: repoRoot, encoding: 'utf8' }).trim();
        const dirty = execFileSync('git', ['status', '--porcelain', '--', 'src'], { cwd: repoRoot, encoding: 'utf8' }).trim() !== '';
        return `${pkg.version} ${head}${dirty ? '+dirty src' : ''}`;
      } catch {
        return pkg.version;
      }
    },
    launch: (ctx) => ({
      argv: [...NODE, 'dist/cli.mjs', 'broker', '--host', '127.0.0.1', '--port', String(ctx.port), '--tls-port', String(ctx.tlsPort),
        '--tls-cert', ctx.certs.serverCert, '--tls-key', ctx.certs.serverKey],
      env: { ...process.env, GATEHOUSE_LOG_LEVEL: 'warn' },
    }),
  },
  'gatehouse-parsing': {
    name: 'gatehouse-parsing',
    describe: 'Gatehouse engine with data parsing on: transformPayload per PUBLISH in the sandbox (bench/peers/gatehouse-parsing.ts)',
    unavailable: (repoRoot) => (existsSync(join(repoRoot, 'src/platform/index.ts')) ? undefined : 'src/platform does not exist yet'),
    version: (repoRoot) => (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version,
    launch: (ctx) => ({
      argv: [...NODE, benchEntry('gatehouse-parsing'), '--port', String(ctx.port), '--tls-port', String(ctx.tlsPort),
        '--tls-cert', ctx.certs.serverCert, '--tls-key', ctx.certs.serverKey],
      env: { ...process.env, GATEHOUSE_LOG_LEVEL: 'warn' },
    }),
  },
  'gatehouse-acl-0': aclPeer(0),
  'gatehouse-acl-2': aclPeer(2),
  'gatehouse-acl-20': aclPeer(20),
  'gatehouse-tap': {
    name: 'gatehouse-tap',
    describe: 'gatehouse-parsing with parsing off: the platform\'s uplink tap on every PUBLISH, no script (bench/peers/gatehouse-parsing.ts --no-parsing)',
    unavailable: (repoRoot) => (existsSync(join(repoRoot, 'src/platform/index.ts')) ? undefined : 'src/platform does not exist yet'),
    version: (repoRoot) => (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version,
    launch: (ctx) => ({
      argv: [...NODE, benchEntry('gatehouse-parsing'), '--port', String(ctx.port), '--tls-port', String(ctx.tlsPort),
        '--tls-cert', ctx.certs.serverCert, '--tls-key', ctx.certs.serverKey, '--no-parsing'],
      env: { ...process.env, GATEHOUSE_LOG_LEVEL: 'warn' },
    }),
  },
  'gatehouse-journal': {
    name: 'gatehouse-journal',
    describe: 'gatehouse-parsing plus the uplink journal: each QoS 1/2 uplink committed to SQLite before its PUBACK, rows removed in batches (bench/peers/gatehouse-parsing.ts --journal)',
    unavailable: (repoRoot) => (existsSync(join(repoRoot, 'src/platform/uplink-journal.ts')) ? undefined : 'src/platform/uplink-journal.ts does not exist yet'),
    version: (repoRoot) => (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version,
    launch: (ctx) => ({
      argv: [...NODE, benchEntry('gatehouse-parsing'), '--port', String(ctx.port), '--tls-port', String(ctx.tlsPort),
        '--tls-cert', ctx.certs.serverCert, '--tls-key', ctx.certs.serverKey, '--journal', join(ctx.workDir, `uplink-journal-${ctx.runId}.db`)],
      env: { ...process.env, GATEHOUSE_LOG_LEVEL: 'warn' },
    }),
  },
  mosquitto: mosquittoSpec('mosquitto', false),
  'mosquitto-nd': mosquittoSpec('mosquitto-nd', true),
  aedes: {
    name: 'aedes',
    describe: 'Aedes (npm), in-memory persistence, net + tls listeners (bench/peers/aedes-server.ts)',
    unavailable: (repoRoot) => (existsSync(join(repoRoot, 'node_modules/aedes/package.json')) ? undefined : 'aedes is not installed (npm ci)'),
    version: (repoRoot) => (JSON.parse(readFileSync(join(repoRoot, 'node_modules/aedes/package.json'), 'utf8')) as { version: string }).version,
    launch: (ctx) => ({
      argv: [...NODE, benchEntry('aedes-server'), '--port', String(ctx.port), '--tls-port', String(ctx.tlsPort),
        '--tls-cert', ctx.certs.serverCert, '--tls-key', ctx.certs.serverKey],
      env: process.env,
    }),
  },
  'node-floor': {
    name: 'node-floor',
    describe: 'Plain Node TLS/TCP relay, no broker logic: the floor of a Node server (bench/peers/node-floor.ts)',
    unavailable: () => undefined,
    version: () => process.version,
    launch: (ctx) => ({
      argv: [...NODE, benchEntry('node-floor'), '--port', String(ctx.port), '--tls-port', String(ctx.tlsPort),
        '--tls-cert', ctx.certs.serverCert, '--tls-key', ctx.certs.serverKey],
      env: process.env,
    }),
  },
};

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address !== null ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => resolve(false));
  });
}

/** Waits until both listeners accept TCP connections; fails early if the broker exits. */
export async function waitForListeners(child: Child, ports: number[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (const port of ports) {
    while (!(await canConnect(port))) {
      if (child.exitStatus !== undefined) throw new Error(`broker exited (${child.exitStatus}) before listening on ${port}`);
      if (Date.now() > deadline) throw new Error(`broker not listening on ${port} after ${timeoutMs / 1000} s`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

export function startBroker(spec: BrokerSpec, ctx: LaunchContext, logFd: number): Child {
  const { argv, env } = spec.launch(ctx);
  return spawnPinned(0, argv, { cwd: ctx.repoRoot, env, stdout: logFd, stderr: logFd });
}

/** The engine with a gateway's topic access control and `rules` rules per session (bench/peers/gatehouse-acl.ts). */
function aclPeer(rules: 0 | 2 | 20): BrokerSpec {
  return {
    name: `gatehouse-acl-${rules}`,
    describe: `Gatehouse engine with topic access control hooks, ${rules === 0 ? 'no rules (default ALLOW)' : `${rules} rules per session`} (bench/peers/gatehouse-acl.ts)`,
    unavailable: (repoRoot) => (existsSync(join(repoRoot, 'src/gateway/acl/index.ts')) ? undefined : 'src/gateway/acl does not exist yet'),
    version: (repoRoot) => (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version,
    launch: (ctx) => ({
      argv: [...NODE, benchEntry('gatehouse-acl'), '--port', String(ctx.port), '--tls-port', String(ctx.tlsPort),
        '--tls-cert', ctx.certs.serverCert, '--tls-key', ctx.certs.serverKey, '--rules', String(rules)],
      env: { ...process.env, GATEHOUSE_LOG_LEVEL: 'warn' },
    }),
  };
}
