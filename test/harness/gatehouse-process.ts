/**
 * Gatehouse as `npm start` runs it: dist/main.mjs in a child process (plain node, no loader) on a
 * given data directory, so a test can kill -9 it, start it again on the same directory, or watch it
 * refuse to start. Only loopback: the API and gateways on 127.0.0.1 unless `env` names another loopback address.
 *
 * A child never holds the test's process: it and its pipes are unreferenced (only a wait on it, such as its
 * start or its exit, keeps the test's process alive meanwhile), and whatever is still running when the test's
 * process exits is killed by its pid. A start that does not say "Gatehouse is running" within its deadline
 * is asked for Node's diagnostic report (SIGUSR2, `--report-on-signal`), killed, and the rejection carries the
 * report's JavaScript stack and libuv handles with the tail of its output: a CI log shows where it waited.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import type net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { DIST, ensureBuilt, ROOT } from '../../scripts/build.mjs';
import { freePort, TEST_ADMIN_TOKEN } from './gatehouse.ts';

/** How long a child may take to say it is running: under a cluster test's 120 s `before`, which starts several. */
export const START_DEADLINE_MS = 60_000;
/** How long a SIGTERM'd child may take to exit before it is killed (a child still starting finishes its start first). */
const STOP_GRACE_MS = 20_000;
/** How long a child asked for its diagnostic report has to write it (none comes while its event loop is blocked). */
const REPORT_WAIT_MS = 5_000;
const REPORT_SIGNAL = 'SIGUSR2';

/** Children spawned by this process and not yet exited: killed by pid when it exits, whatever ended it. */
const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of running) {
    try {
      if (child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
    } catch {
      // gone already
    }
  }
});

/** Keeps the test's process alive while `wait` is pending (the child and its pipes do not). */
export function keptAlive<T>(wait: Promise<T>): Promise<T> {
  const keep = setInterval(() => undefined, 60_000);
  return wait.finally(() => clearInterval(keep));
}

/** The tail of a child's output, for an error message. */
export function tail(text: string, chars = 4_000): string {
  return text.length <= chars ? text : `…${text.slice(-chars)}`;
}

interface NodeReport {
  header?: { nodejsVersion?: string };
  javascriptStack?: { message?: string; stack?: string[] };
  libuv?: { type: string; is_active?: boolean; is_referenced?: boolean; localEndpoint?: { ip4?: string; ip6?: string; port?: number } | null; remoteEndpoint?: { ip4?: string; ip6?: string; port?: number } | null }[];
  workers?: NodeReport[];
}

function endpoint(e: { ip4?: string; ip6?: string; port?: number } | null | undefined): string {
  return e === null || e === undefined ? '?' : `${e.ip4 ?? e.ip6 ?? '?'}:${e.port ?? '?'}`;
}

/** What a diagnostic report says about where a process waits: its JavaScript stack and the libuv handles keeping it alive. */
export function summarizeReport(report: NodeReport): string {
  const stack = report.javascriptStack?.stack?.filter((line) => line.trim() !== '') ?? [];
  const lines = [
    `JavaScript stack: ${stack.length === 0 ? '(none: idle, waiting on the event loop)' : `${report.javascriptStack?.message ?? ''}\n    ${stack.slice(0, 20).join('\n    ')}`}`,
  ];
  const referenced = (report.libuv ?? []).filter((h) => h.is_referenced === true && h.is_active === true);
  const counts = new Map<string, number>();
  for (const h of referenced) counts.set(h.type, (counts.get(h.type) ?? 0) + 1);
  lines.push(`libuv handles keeping it alive (referenced, active): ${[...counts].map(([type, n]) => `${type} ${n}`).join(', ') || 'none'}`);
  for (const h of referenced) {
    if (h.type === 'tcp') lines.push(`  tcp ${endpoint(h.localEndpoint)} -> ${endpoint(h.remoteEndpoint)}`);
  }
  const workers = report.workers ?? [];
  if (workers.length > 0) {
    lines.push(`worker threads: ${workers.length}`);
    workers.forEach((w, i) => {
      const top = w.javascriptStack?.stack?.find((line) => line.trim() !== '');
      const handles = (w.libuv ?? []).filter((h) => h.is_referenced === true && h.is_active === true).map((h) => h.type);
      lines.push(`  worker ${i + 1}: ${top === undefined ? 'idle' : `at ${top.trim()}`}; referenced handles: ${handles.join(', ') || 'none'}`);
    });
  }
  return lines.join('\n');
}

/** Asks a child for its diagnostic report, reads it from `dir` (then removes the file: it lists the environment, secrets included). */
async function askForReport(child: ChildProcess, dir: string): Promise<string> {
  try {
    child.kill(REPORT_SIGNAL);
  } catch {
    return 'no report: the signal could not be sent';
  }
  const deadline = Date.now() + REPORT_WAIT_MS;
  for (;;) {
    const files = (await readdir(dir).catch(() => [] as string[])).filter((f) => f.startsWith('report.') && f.endsWith('.json'));
    for (const file of files) {
      try {
        const report = JSON.parse(await readFile(path.join(dir, file), 'utf8')) as NodeReport;
        return summarizeReport(report);
      } catch {
        // still being written
      }
    }
    if (Date.now() > deadline || child.exitCode !== null || child.signalCode !== null) {
      return `no report within ${REPORT_WAIT_MS / 1000} s (its event loop may be blocked)`;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** A child that did not say it was running within its deadline: reported on, then killed. */
export class StartDeadlineError extends Error {
  readonly pid: number | undefined;
  readonly report: string;
  constructor(what: string, pid: number | undefined, deadlineMs: number, report: string, output: string) {
    super(`${what} (pid ${pid ?? '?'}) did not say "Gatehouse is running" within ${deadlineMs / 1000} s; killed.\n`
      + `Its diagnostic report (${REPORT_SIGNAL}):\n${report}\n${output}`);
    this.name = 'StartDeadlineError';
    this.pid = pid;
    this.report = report;
  }
}

/**
 * Node's flags for a child that can be asked for its diagnostic report, written into `dir`: pass them before
 * the script. A sibling of startGatehouseProcess (the cluster benchmark's nodes) uses them with `reportOnDeadline`.
 */
export function reportFlags(dir: string): string[] {
  return ['--report-on-signal', `--report-signal=${REPORT_SIGNAL}`, `--report-directory=${dir}`];
}

/**
 * Past a start's deadline: the child's report, then SIGKILL by its pid; resolves once it exited with the error to
 * throw, which carries `output()` as it is then (the tail of what the child printed).
 */
export async function reportOnDeadline(what: string, child: ChildProcess, reportDir: string, deadlineMs: number,
  output: () => string, exited: Promise<unknown>): Promise<StartDeadlineError> {
  const report = await askForReport(child, reportDir);
  try {
    if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) process.kill(child.pid, 'SIGKILL');
  } catch {
    // exited meanwhile
  }
  await exited;
  return new StartDeadlineError(what, child.pid, deadlineMs, report, output());
}

export interface GatehouseProcess {
  readonly child: ChildProcess;
  readonly url: string;
  readonly stdout: () => string;
  readonly stderr: () => string;
  api<T = unknown>(method: string, urlPath: string, body?: unknown, contentType?: string): Promise<{ status: number; json: T }>;
  /** Resolves with the exit code (null after a signal). */
  readonly exited: Promise<number | null>;
  /** SIGKILL: no shutdown code runs. */
  kill9(): Promise<void>;
  /** SIGTERM and wait for the exit. */
  stop(): Promise<void>;
}

export interface SpawnOptions {
  /**
   * src/main.ts through tsx instead of the bundle, for code that runs only in such a child (the `GATEHOUSE_WORKERS`
   * primary): the test suite's coverage counts src/ files, which the bundle's run does not reach.
   */
  fromSource?: boolean;
  /** Another script run in its place (the harness's own test: a child that never says it is running). */
  script?: string;
  /** START_DEADLINE_MS unless told. */
  startDeadlineMs?: number;
}

interface Spawned {
  child: ChildProcess;
  out: { stdout: string; stderr: string };
  /** Settles at the child's exit; does not keep the test's process alive by itself (`keptAlive`). */
  exited: Promise<number | null>;
  /** Where its diagnostic report goes (removed once it exited). */
  reportDir: string;
}

async function spawnMain(dataDir: string, httpPort: number, env: Record<string, string>, options: SpawnOptions = {}): Promise<Spawned> {
  const reportDir = await mkdtemp(path.join(os.tmpdir(), 'gatehouse-report-'));
  const entry = options.script !== undefined ? [options.script]
    : options.fromSource === true ? ['--import', 'tsx', path.join(ROOT, 'src', 'main.ts')] : ['--enable-source-maps', path.join(DIST, 'main.mjs')];
  const child = spawn(process.execPath, ['--no-node-snapshot', ...reportFlags(reportDir), ...entry], {
    env: {
      ...process.env, GATEHOUSE_DATA_DIR: dataDir, GATEHOUSE_HTTP_PORT: String(httpPort), GATEHOUSE_HTTP_HOST: '127.0.0.1',
      GATEHOUSE_MQTT_HOST: '127.0.0.1', GATEHOUSE_PUBLIC_HOST: 'localhost', GATEHOUSE_ADMIN_TOKEN: TEST_ADMIN_TOKEN,
      GATEHOUSE_DEMO: 'off', GATEHOUSE_LOG_LEVEL: 'warn', ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  const out = { stdout: '', stderr: '' };
  child.stdout.on('data', (b: Buffer) => (out.stdout += b.toString()));
  child.stderr.on('data', (b: Buffer) => (out.stderr += b.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => {
    running.delete(child);
    void rm(reportDir, { recursive: true, force: true });
    resolve(code);
  }));
  // A test file whose hooks failed must still end: the child and its pipes hold nothing; the exit handler kills it.
  child.unref();
  (child.stdout as net.Socket).unref();
  (child.stderr as net.Socket).unref();
  return { child, out, exited, reportDir };
}

/**
 * Resolves once `spawned` printed `line`; rejects when it exits first or, past `deadlineMs`, with its diagnostic
 * report once it has been killed (StartDeadlineError).
 */
export function waitForStartLine(what: string, spawned: Spawned, deadlineMs: number, line = 'Gatehouse is running'): Promise<void> {
  const { child, out, exited, reportDir } = spawned;
  return keptAlive(new Promise<void>((resolve, reject) => {
    const output = (): string => `--- stdout (tail) ---\n${tail(out.stdout)}\n--- stderr (tail) ---\n${tail(out.stderr)}`;
    let late = false;
    const timer = setTimeout(() => {
      late = true;
      child.stdout!.off('data', onData);
      void reportOnDeadline(what, child, reportDir, deadlineMs, output, exited).then(reject);
    }, deadlineMs);
    const onData = (): void => {
      if (!out.stdout.includes(line)) return;
      child.stdout!.off('data', onData);
      clearTimeout(timer);
      resolve();
    };
    child.stdout!.on('data', onData);
    onData();
    void exited.then((code) => {
      clearTimeout(timer);
      if (late) return; // killed past its deadline: rejected with its report
      reject(new Error(`${what} exited ${code} before it was running: ${tail(out.stderr)}${tail(out.stdout)}`));
    });
  }));
}

/** Starts dist/main.mjs and resolves once it says it is running (StartDeadlineError past its deadline: reported on, killed). */
export async function startGatehouseProcess(dataDir: string, env: Record<string, string> = {}, options: SpawnOptions = {}): Promise<GatehouseProcess> {
  await ensureBuilt();
  const httpPort = await freePort();
  const spawned = await spawnMain(dataDir, httpPort, env, options);
  const { child, out, exited } = spawned;
  await waitForStartLine(options.script ?? (options.fromSource === true ? 'src/main.ts' : 'dist/main.mjs'), spawned, options.startDeadlineMs ?? START_DEADLINE_MS);
  // A cluster test gives each node its own loopback address (GATEHOUSE_HTTP_HOST=127.0.0.2, …).
  const url = `http://${env.GATEHOUSE_HTTP_HOST ?? '127.0.0.1'}:${httpPort}`;
  return {
    child, url,
    get exited() {
      return keptAlive(exited);
    },
    stdout: () => out.stdout,
    stderr: () => out.stderr,
    async api<T>(method: string, urlPath: string, body?: unknown, contentType = 'application/json') {
      const res = await fetch(`${url}/api/v1${urlPath}`, {
        method,
        headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}`, ...(body === undefined ? {} : { 'content-type': contentType }) },
        body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
      });
      const text = await res.text();
      return { status: res.status, json: (text.length > 0 ? JSON.parse(text) : undefined) as T };
    },
    async kill9() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await keptAlive(exited);
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      // A child still starting finishes its start before it stops (main.ts): one that never finishes is killed.
      const late = setTimeout(() => {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      }, STOP_GRACE_MS);
      await keptAlive(exited);
      clearTimeout(late);
    },
  };
}

/** Runs dist/main.mjs expecting it to refuse to start: its exit code and what it printed. */
export async function runGatehouseExpectingExit(dataDir: string, env: Record<string, string> = {}, ms = 30_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  await ensureBuilt();
  const { child, out, exited } = await spawnMain(dataDir, await freePort(), env);
  const timer = setTimeout(() => child.kill('SIGKILL'), ms);
  const code = await keptAlive(exited);
  clearTimeout(timer);
  return { code, stdout: out.stdout, stderr: out.stderr };
}
