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
import { AggregatorRegistry, type MetricObjectWithValues, type MetricValue, type Registry as MetricsRegistry } from 'prom-client';
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
/** A scrape waits this long for every worker's figures; past it the scrape fails rather than show a part as the whole. */
const SCRAPE_TIMEOUT_MS = 5_000;

/**
 * Metrics whose sum over workers means nothing: each worker's own state (its NATS connection, its copy of the
 * retained messages, the OCSP response it staples, its breaker) or a peak. A machine-wide scrape keeps them per
 * worker with a `node_id` label; every other series is summed (counters, connected clients …) or, where
 * every worker holds the same value, taken once (their prom-client `aggregator`: a limit's value, a
 * certificate's days left).
 */
export const PER_NODE_METRICS: ReadonlySet<string> = new Set([
  'gatehouse_cluster_connected', 'gatehouse_gateway_retained_messages',
  'gatehouse_gateway_ocsp_stapling', 'gatehouse_gateway_ocsp_staple_age_seconds', 'gatehouse_gateway_ocsp_staple_next_refresh_seconds',
  'gatehouse_gateway_third_party_breaker_state',
]);

type MetricsJson = MetricObjectWithValues<MetricValue<string>>[];
/** Worker ↔ primary messages of a machine-wide scrape. */
interface MetricsMessage {
  gatehouse: 'metrics_request' | 'metrics_collect' | 'metrics_part' | 'metrics_answer';
  id: number;
  nodeId?: string;
  metrics?: MetricsJson;
  text?: string;
  error?: string;
}

function isMetricsMessage(message: unknown): message is MetricsMessage {
  const kind = typeof message === 'object' && message !== null ? (message as { gatehouse?: unknown }).gatehouse : undefined;
  return kind === 'metrics_request' || kind === 'metrics_collect' || kind === 'metrics_part' || kind === 'metrics_answer';
}

/**
 * Use against each gateway limit, the machine's: `maxConnections` is the connections of every worker (summed); the
 * others are the most any one session, device or address holds (or the retained set every worker holds alike), so the
 * machine's is the highest of the workers'. One metric cannot have two prom-client aggregators: merged here.
 */
const LIMIT_USE = 'gatehouse_gateway_limit_use';
const SUMMED_LIMIT_USE: ReadonlySet<string> = new Set(['maxConnections']);

function mergeLimitUse(parts: MetricsJson[]): MetricsJson[] {
  const merged = new Map<string, MetricValue<string>>();
  let first: MetricObjectWithValues<MetricValue<string>> | undefined;
  let firstPart = -1;
  for (const [i, metrics] of parts.entries()) {
    for (const metric of metrics) {
      if (metric.name !== LIMIT_USE) continue;
      if (first === undefined) {
        first = metric;
        firstPart = i;
      }
      for (const value of metric.values) {
        const key = JSON.stringify(Object.entries(value.labels).sort(([a], [b]) => a.localeCompare(b)));
        const seen = merged.get(key);
        if (seen === undefined) merged.set(key, { ...value });
        else seen.value = SUMMED_LIMIT_USE.has(String(value.labels.limit)) ? seen.value + value.value : Math.max(seen.value, value.value);
      }
    }
  }
  if (first === undefined) return parts;
  const whole = { ...first, values: [...merged.values()] };
  // The merged metric in one part alone: the aggregation then has one value per series to take as it is.
  return parts.map((metrics, i) => metrics.flatMap((metric) => (metric.name !== LIMIT_USE ? [metric] : i === firstPart ? [whole] : [])));
}

/** Every worker's figures as one exposition: per-node series labelled with their node, the others aggregated. */
export function aggregateWorkerMetrics(parts: { nodeId: string; metrics: MetricsJson }[]): Promise<string> {
  const labelled = parts.map(({ nodeId, metrics }) => metrics.map((metric) => (PER_NODE_METRICS.has(metric.name)
    ? { ...metric, values: metric.values.map((v) => ({ ...v, labels: { ...v.labels, node_id: nodeId } })) }
    : metric)));
  return AggregatorRegistry.aggregate(mergeLimitUse(labelled)).metrics();
}

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

/**
 * A worker's `/metrics`: the machine's figures, not this worker's alone, since a scrape lands on any worker.
 * Answers the primary's collections with this worker's registry, and returns the scrape: ask the primary,
 * which collects from every worker and aggregates.
 */
export function workerMetrics(local: MetricsRegistry, nodeId: string): () => Promise<string> {
  let next = 0;
  const waiting = new Map<number, { resolve: (text: string) => void; reject: (error: Error) => void }>();
  process.on('message', (message: unknown) => {
    if (!isMetricsMessage(message)) return;
    if (message.gatehouse === 'metrics_collect') {
      void local.getMetricsAsJSON().then(
        (metrics) => process.send?.({ gatehouse: 'metrics_part', id: message.id, nodeId, metrics } satisfies MetricsMessage),
        (error: unknown) => process.send?.({ gatehouse: 'metrics_part', id: message.id, nodeId, error: String(error) } satisfies MetricsMessage),
      );
    } else if (message.gatehouse === 'metrics_answer') {
      const asked = waiting.get(message.id);
      waiting.delete(message.id);
      if (message.text !== undefined) asked?.resolve(message.text);
      else asked?.reject(new Error(message.error ?? 'no metrics'));
    }
  });
  return () => new Promise<string>((resolve, reject) => {
    const id = next++;
    const timer = setTimeout(() => {
      waiting.delete(id);
      reject(new Error('the primary did not answer the metrics scrape'));
    }, 2 * SCRAPE_TIMEOUT_MS);
    waiting.set(id, {
      resolve: (text) => (clearTimeout(timer), resolve(text)),
      reject: (error) => (clearTimeout(timer), reject(error)),
    });
    process.send?.({ gatehouse: 'metrics_request', id } satisfies MetricsMessage);
  });
}

/** A machine-wide scrape the primary is collecting. */
interface Scrape {
  /** The worker whose /metrics was asked, and its request's id. */
  from: Worker;
  askedId: number;
  pending: Set<Worker>;
  parts: { nodeId: string; metrics: MetricsJson }[];
  timer: NodeJS.Timeout;
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
      if (isMetricsMessage(message)) {
        onMetricsMessage(worker, message);
        return;
      }
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

  // A scrape: every ready worker's figures, aggregated, answered to the worker that was asked.
  let nextScrape = 0;
  const scrapes = new Map<number, Scrape>();
  const settle = (id: number, reply: Omit<MetricsMessage, 'gatehouse' | 'id'>): void => {
    const scrape = scrapes.get(id);
    if (scrape === undefined) return;
    scrapes.delete(id);
    clearTimeout(scrape.timer);
    if (scrape.from.isConnected()) scrape.from.send({ gatehouse: 'metrics_answer', id: scrape.askedId, ...reply } satisfies MetricsMessage);
  };
  const aggregateWhenComplete = (id: number): void => {
    const scrape = scrapes.get(id);
    if (scrape === undefined || scrape.pending.size > 0) return;
    aggregateWorkerMetrics(scrape.parts).then((text) => settle(id, { text }), (error: unknown) => settle(id, { error: String(error) }));
  };
  const onMetricsMessage = (from: Worker, message: MetricsMessage): void => {
    if (message.gatehouse === 'metrics_request') {
      const targets = slots.filter((s) => s.ready && s.worker?.isConnected() === true).map((s) => s.worker as Worker);
      const id = nextScrape++;
      const timer = setTimeout(() => settle(id, { error: `a worker did not answer within ${SCRAPE_TIMEOUT_MS} ms` }), SCRAPE_TIMEOUT_MS);
      timer.unref();
      scrapes.set(id, { from, askedId: message.id, pending: new Set(targets), parts: [], timer });
      for (const target of targets) target.send({ gatehouse: 'metrics_collect', id } satisfies MetricsMessage);
      aggregateWhenComplete(id);
    } else if (message.gatehouse === 'metrics_part') {
      const scrape = scrapes.get(message.id);
      if (scrape === undefined || !scrape.pending.delete(from)) return;
      if (message.metrics === undefined) settle(message.id, { error: message.error ?? 'a worker failed to collect its metrics' });
      else {
        scrape.parts.push({ nodeId: message.nodeId ?? `pid ${from.process.pid}`, metrics: message.metrics });
        aggregateWhenComplete(message.id);
      }
    }
  };

  const onExit = (slot: Slot, worker: Worker, code: number | null, signal: string | null): void => {
    // A scrape waiting for this worker's figures is answered with the others' (it is gone, its figures with it).
    for (const [id, scrape] of scrapes) {
      if (scrape.from === worker) settle(id, { error: 'the worker asked has exited' });
      else if (scrape.pending.delete(worker)) aggregateWhenComplete(id);
    }
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
