/**
 * `GATEHOUSE_WORKERS=N` (issue 16): all cores of one machine. The primary process starts N worker processes
 * through node:cluster and serves nothing itself: it holds the listening sockets (the API's and every gateway's)
 * and hands each accepted connection to a worker round-robin (SCHED_RR, Node 20 included; TLS and MQTT run in
 * the worker). Each worker is a whole cluster node under a node id of its own, with the same rules as nodes on
 * different machines, because a device's reconnect may land on any of them: they share sessions, retained
 * messages and the registry through NATS and PostgreSQL only, never through the primary.
 *
 * The primary: starts worker 1 alone (on an empty database it creates the schema and the installation id the
 * others adopt), then the others; prints the banner once all are ready; restarts a worker that dies, with a
 * back-off, and gives up (every worker stopped, exit 1) after MAX_QUICK_DEATHS deaths in a row each within
 * QUICK_DEATH_MS of the worker's start; forwards SIGTERM / SIGINT and exits once every worker has closed.
 */
import cluster, { type Worker } from 'node:cluster';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { workerNodeId, type PreparedConfig } from './config/index.ts';
import { PID_FILE } from './config/identity.ts';
import type { Logger } from './core/logger.ts';

/** Set by the primary in each worker's environment: which worker it is (1…N). Not an operator's setting. */
export const WORKER_INDEX_ENV = 'GATEHOUSE_WORKER_INDEX';
/** The workers' own data directories live under the node's: `<dataDir>/workers/<index>`. */
export const WORKERS_DIR = 'workers';

/** A worker that dies within this long of its start counts as a quick death. */
export const QUICK_DEATH_MS = 30_000;
/** This many quick deaths of one worker in a row and the primary gives up (exit 1): a crash loop is not a service. */
export const MAX_QUICK_DEATHS = 4;
/** The wait before a restart doubles with each quick death in a row: 1 s, 2 s, 4 s … */
const RESTART_BACKOFF_MS = 1_000;
/** A worker that has not exited this long after the stop signal is killed, and the primary exits 1. */
const STOP_TIMEOUT_MS = 60_000;

/** What a worker tells the primary once it runs: its API's URL and the lines `npm start` prints. */
export interface WorkerReady {
  gatehouse: 'worker_ready';
  url: string;
  lines: string[];
}

function isWorkerReady(message: unknown): message is WorkerReady {
  return typeof message === 'object' && message !== null && (message as { gatehouse?: unknown }).gatehouse === 'worker_ready';
}

/** This process's worker index when it is a worker the primary started, else null. */
export function workerIndex(): number | null {
  if (!cluster.isWorker) return null;
  const index = Number(process.env[WORKER_INDEX_ENV]);
  return Number.isInteger(index) && index >= 1 ? index : null;
}

export function workerDataDir(dataDir: string, index: number): string {
  return path.join(dataDir, WORKERS_DIR, String(index));
}

/**
 * A worker's configuration: the node's, with a node id of its own (`<node id>-w<index>`, the same at every
 * restart of that worker, so a restarted worker takes its lease back and its dead process is reaped like any
 * node's) and a data directory of its own under the node's (its SQLite message-path files, identity and pid
 * file must never be opened by two processes). The secrets stay the node's, read from the node's directory.
 */
export async function workerConfig(prepared: PreparedConfig, index: number): Promise<PreparedConfig> {
  const dataDir = workerDataDir(prepared.config.dataDir, index);
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  return {
    config: { ...prepared.config, dataDir, nodeId: workerNodeId(prepared.config.nodeId, index) },
    // The primary generated and announces the secrets; in the worker's directory they are no sign of its state.
    generated: { adminToken: false, masterKey: false },
    files: { adminToken: null, masterKey: null },
    warnings: prepared.warnings,
  };
}

/** The worker's side of the start: tells the primary it runs (the primary prints the banner). */
export function reportWorkerReady(url: string, lines: string[]): void {
  const ready: WorkerReady = { gatehouse: 'worker_ready', url, lines };
  process.send?.(ready);
}

/** The worker's side of the stop: once closed, leaving the IPC channel lets the process end like a single one. */
export function leaveWorkers(): void {
  if (cluster.isWorker && cluster.worker?.isConnected() === true) cluster.worker.disconnect();
}

interface Slot {
  index: number;
  worker: Worker | null;
  startedAt: number;
  ready: boolean;
  quickDeaths: number;
  restartTimer: NodeJS.Timeout | null;
}

/**
 * The primary: runs until every worker has exited after a stop signal (exit code 0 when all closed cleanly) or
 * the primary gave up (exit code 1). `print` receives the banner once every worker is ready.
 */
export async function runPrimary(prepared: PreparedConfig, logger: Logger, print: (lines: string[]) => void): Promise<void> {
  const { config } = prepared;
  const count = config.workers ?? 1;
  const log = logger.child({ role: 'primary' });
  // Explicit: the default everywhere but Windows, where the OS would pick the worker (unevenly).
  cluster.schedulingPolicy = cluster.SCHED_RR;
  // `gatehouse restore` refuses while a process runs on the directory.
  const pidFile = path.join(config.dataDir, PID_FILE);
  await writeFile(pidFile, `${process.pid}\n`, { mode: 0o600 });

  const slots: Slot[] = Array.from({ length: count }, (_, i) => ({
    index: i + 1, worker: null, startedAt: 0, ready: false, quickDeaths: 0, restartTimer: null,
  }));
  let stopping: string | null = null;
  let failed = false;
  let bannerShown = false;
  let firstReady: WorkerReady | null = null;
  let stopTimer: NodeJS.Timeout | null = null;
  let finish: () => void = () => undefined;
  const finished = new Promise<void>((resolve) => (finish = resolve));

  const live = (): Slot[] => slots.filter((s) => s.worker !== null);
  const maybeFinish = (): void => {
    if (stopping === null || live().length > 0) return;
    if (stopTimer !== null) clearTimeout(stopTimer);
    finish();
  };
  const stopAll = (why: string): void => {
    if (stopping !== null) return;
    stopping = why;
    log.info({ reason: why, workers: live().length }, 'workers_stopping');
    for (const slot of slots) {
      if (slot.restartTimer !== null) clearTimeout(slot.restartTimer);
      slot.restartTimer = null;
      // A worker still starting takes the signal too: it finishes its start, then closes (main.ts).
      slot.worker?.process.kill('SIGTERM');
    }
    stopTimer = setTimeout(() => {
      for (const slot of live()) {
        log.error({ worker: slot.index, pid: slot.worker?.process.pid }, 'worker_stop_timed_out');
        slot.worker?.process.kill('SIGKILL');
      }
      failed = true;
    }, STOP_TIMEOUT_MS);
    stopTimer.unref();
    maybeFinish();
  };
  const showBanner = (): void => {
    if (bannerShown || stopping !== null || firstReady === null || slots.some((s) => !s.ready)) return;
    bannerShown = true;
    const url = firstReady.url;
    const lines = [`Gatehouse is running with ${count} worker${count === 1 ? '' : 's'}: console and API at ${url} (OpenAPI: ${url}/api/docs)`];
    if (prepared.generated.adminToken) lines.push(`Admin token (generated, saved in ${prepared.files.adminToken}): ${config.adminToken}`);
    // Worker 1's other lines: the demo gateway, which only it seeds.
    lines.push(...firstReady.lines.slice(1));
    print(lines);
  };

  const fork = (slot: Slot): Worker => {
    const worker = cluster.fork({ [WORKER_INDEX_ENV]: String(slot.index) });
    slot.worker = worker;
    slot.startedAt = Date.now();
    slot.ready = false;
    log.info({ worker: slot.index, pid: worker.process.pid }, 'worker_started');
    worker.on('message', (message: unknown) => {
      if (!isWorkerReady(message)) return;
      slot.ready = true;
      if (slot.index === 1 && firstReady === null) firstReady = message;
      log.info({ worker: slot.index, pid: worker.process.pid, nodeId: workerNodeId(config.nodeId, slot.index) }, 'worker_ready');
      showBanner();
    });
    worker.on('error', (err: unknown) => log.warn({ err, worker: slot.index }, 'worker_channel_error'));
    worker.once('exit', (code, signal) => onExit(slot, worker, code, signal));
    return worker;
  };

  const onExit = (slot: Slot, worker: Worker, code: number | null, signal: string | null): void => {
    if (slot.worker !== worker) return;
    slot.worker = null;
    const livedMs = Date.now() - slot.startedAt;
    if (stopping !== null) {
      if (code !== 0) failed = true;
      log.info({ worker: slot.index, pid: worker.process.pid, code, signal }, 'worker_exited');
      maybeFinish();
      return;
    }
    const wasReady = slot.ready;
    slot.ready = false;
    if (!bannerShown && !wasReady) {
      // A worker that cannot start at all (a wrong database URL, NATS unreachable …) said why on stderr;
      // restarting it would only repeat that.
      log.error({ worker: slot.index, pid: worker.process.pid, code, signal }, 'worker_start_failed');
      failed = true;
      stopAll('worker_start_failed');
      return;
    }
    slot.quickDeaths = livedMs < QUICK_DEATH_MS ? slot.quickDeaths + 1 : 1;
    if (slot.quickDeaths >= MAX_QUICK_DEATHS) {
      log.error({ worker: slot.index, pid: worker.process.pid, code, signal, livedMs, deathsInARow: slot.quickDeaths }, 'workers_giving_up');
      failed = true;
      stopAll('worker_crash_loop');
      return;
    }
    const delayMs = RESTART_BACKOFF_MS * 2 ** (slot.quickDeaths - 1);
    log.warn({ worker: slot.index, pid: worker.process.pid, code, signal, livedMs, restartInMs: delayMs }, 'worker_died');
    slot.restartTimer = setTimeout(() => {
      slot.restartTimer = null;
      if (stopping === null) fork(slot);
    }, delayMs);
  };

  process.once('SIGINT', () => stopAll('SIGINT'));
  process.once('SIGTERM', () => stopAll('SIGTERM'));

  // Worker 1 first, alone: on an empty database it migrates and creates the installation the others adopt.
  const first = fork(slots[0]!);
  await new Promise<void>((resolve) => {
    const done = (): void => {
      first.off('message', onMessage);
      first.off('exit', done);
      resolve();
    };
    const onMessage = (message: unknown): void => {
      if (isWorkerReady(message)) done();
    };
    first.on('message', onMessage);
    first.once('exit', done);
  });
  if (stopping === null) for (const slot of slots.slice(1)) fork(slot);

  await finished;
  await rm(pidFile, { force: true });
  process.exitCode = failed ? 1 : 0;
  log.info({ exitCode: process.exitCode }, failed ? 'gatehouse_stopped_with_failures' : 'gatehouse_stopped');
}
