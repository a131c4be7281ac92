/**
 * `GATEHOUSE_WORKERS=N` (issue 16): all cores of one machine. The primary process starts N worker processes
 * through node:cluster and serves nothing itself: it holds the listening sockets and hands each accepted
 * connection to a worker in turn — the API's through node:cluster's round-robin (SCHED_RR, Node 20 included), every
 * gateway's through port-share.ts (which says why) — and TLS and MQTT run in the worker. Each worker is a whole cluster node under a node id of its own, with the same rules as nodes on
 * different machines, because a device's reconnect may land on any of them: they share sessions, retained
 * messages and the registry through NATS and PostgreSQL only, never through the primary (which
 * counts only the machine's per-address sockets of admission: address-admission.ts).
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
import type { Readiness } from './api/index.ts';
import type { GatewayOcspState, OcspServerState } from './registry/ports.ts';
import type { GatewayLimitsUsage, LimitUse } from './registry/gateway-limits.ts';
import type { ParsingStats, WebhookStats } from './platform/index.ts';
import { isAdmissionRequest, MachineAdmission } from './address-admission.ts';
import { isPortRequest, PrimaryPorts } from './port-share.ts';

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
/** A /ready waits this long for every worker's checks; a worker that has not answered by then counts as not ready. */
const READY_TIMEOUT_MS = 2_000;
/** A worker's asks of the primary in flight at once (a scrape each; /ready's share one): past it an ask fails at once. */
const MAX_ASKS_IN_FLIGHT = 8;
/** The primary's gatherings at once, whatever the workers ask: past it an ask is answered with an error at once. */
const MAX_GATHERINGS = 32;

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
  'gatehouse_gateway_third_party_breaker_state', 'gatehouse_event_loop_saturated', 'gatehouse_event_loop_saturations_total',
]);

type MetricsJson = MetricObjectWithValues<MetricValue<string>>[];

/**
 * What a worker may ask the primary for: the machine's answer, gathered from every worker's part. A worker asks
 * (`gather_request`), the primary asks every worker for its part (`gather_collect`, the asker included), gathers
 * the parts (`gather_part`) until all are in or the topic's deadline passed, merges them and answers the asker
 * (`gather_answer`). The same code runs on both sides of the channel; every message and every part is still checked.
 */
type Topic = 'metrics' | 'readiness' | 'parsing' | 'webhooks' | 'ocsp' | 'limits';
const GATHER_KINDS: ReadonlySet<string> = new Set(['gather_request', 'gather_collect', 'gather_part', 'gather_answer']);

interface GatherMessage {
  gatehouse: 'gather_request' | 'gather_collect' | 'gather_part' | 'gather_answer';
  topic: Topic;
  id: number;
  /** gather_part: the sender's node id (a metrics part's `node_id` label). */
  nodeId?: string;
  /** gather_part: the worker's part; gather_answer: the machine's answer (checked against the topic's guards). */
  value?: unknown;
  error?: string;
}

function isGatherMessage(message: unknown): message is GatherMessage {
  if (typeof message !== 'object' || message === null) return false;
  const m = message as Partial<Record<keyof GatherMessage, unknown>>;
  return typeof m.gatehouse === 'string' && GATHER_KINDS.has(m.gatehouse) && typeof m.topic === 'string' && Object.hasOwn(GATHER_TOPICS, m.topic)
    && Number.isSafeInteger(m.id) && (m.nodeId === undefined || typeof m.nodeId === 'string') && (m.error === undefined || typeof m.error === 'string');
}

/** What the primary gathered for one ask: the parts in, and which workers (by index) gave none and why. */
interface Gathered<Part> {
  parts: { nodeId: string; part: Part }[];
  /** Asked, not answered within the deadline. */
  late: number[];
  /** Not asked (no worker, or one still starting) or gone before it answered. */
  missing: number[];
  /** Answered with an error or with something that is not a part. */
  failed: { worker: number; error: string }[];
}

/** What only the primary knows, for a merge: the machine's per-address socket counts (address-admission.ts). */
export interface MachineFigures {
  /** The most sockets open on the machine from any one address, for a gateway (by id). */
  mostOpenFromOneAddress(gatewayId: string): number;
}

/** One kind of machine-wide answer: how long its gathering may take, how parts and answers are checked, how parts merge. */
interface GatherTopic<Part, Answer> {
  name: Topic;
  deadlineMs: number;
  /** Concurrent asks share the gathering in flight (a flood of probes costs one round) rather than each start one. */
  shared: boolean;
  isPart(value: unknown): value is Part;
  isAnswer(value: unknown): value is Answer;
  /** The machine's answer; a rejection is answered to the asker as an error. */
  merge(gathered: Gathered<Part>, machine: MachineFigures): Promise<Answer>;
}

const metricsTopic: GatherTopic<MetricsJson, string> = {
  name: 'metrics',
  deadlineMs: SCRAPE_TIMEOUT_MS,
  shared: false, // a scrape after an event must count it: it never takes figures collected before it was asked
  isPart: (value): value is MetricsJson => Array.isArray(value),
  isAnswer: (value): value is string => typeof value === 'string',
  async merge({ parts, late, failed }, machine) {
    // A worker gone meanwhile took its figures with it; one that is there and silent would make a part look like the whole.
    if (late.length > 0) throw new Error(`a worker did not answer within ${SCRAPE_TIMEOUT_MS} ms`);
    if (failed.length > 0) throw new Error(`a worker failed to collect its metrics: ${failed[0]!.error}`);
    return aggregateWorkerMetrics(parts.map(({ nodeId, part }) => ({ nodeId, metrics: part })), machine);
  },
};

const READY_STATES: ReadonlySet<unknown> = new Set(['ready', 'not_ready']);
const GATEWAY_STATES: ReadonlySet<unknown> = new Set(['STOPPED', 'ERROR']);

function isReadiness(value: unknown): value is Readiness {
  if (typeof value !== 'object' || value === null) return false;
  const { status, checks, gatewaysNotReady } = value as Partial<Record<keyof Readiness, unknown>>;
  if (!READY_STATES.has(status) || typeof checks !== 'object' || checks === null || !Array.isArray(gatewaysNotReady)) return false;
  const c = checks as Partial<Record<keyof Readiness['checks'], unknown>>;
  return (c.storage === 'ok' || c.storage === 'error') && (c.gateways === 'ok' || c.gateways === 'error' || c.gateways === 'unknown')
    && (c.cluster === undefined || c.cluster === 'ok' || c.cluster === 'unreachable') && (c.workers === undefined || c.workers === 'ok' || c.workers === 'error')
    && gatewaysNotReady.every((g: unknown) => typeof g === 'object' && g !== null
      && typeof (g as { id?: unknown }).id === 'string' && GATEWAY_STATES.has((g as { status?: unknown }).status));
}

const GATEWAYS_WORST: readonly Readiness['checks']['gateways'][] = ['ok', 'unknown', 'error'];

/**
 * The machine's readiness from every worker's: ready only if every worker answered ready. Each check the worst of
 * the workers' (storage `error` if any; gateways `error` before `unknown` before `ok`; cluster `unreachable` if any),
 * the gateways not ready the union by id (ERROR over STOPPED), and `workers` `error` if any worker gave no answer
 * (`unanswered`). With no answer at all, nothing confirmed that storage answers: storage `error`, gateways `unknown`.
 */
export function mergeReadiness(parts: readonly Readiness[], unanswered: number): Readiness {
  const gateways = new Map<string, Readiness['gatewaysNotReady'][number]['status']>();
  for (const part of parts) {
    for (const { id, status } of part.gatewaysNotReady) if (gateways.get(id) !== 'ERROR') gateways.set(id, status);
  }
  const worstGateways = parts.length === 0 ? 'unknown'
    : GATEWAYS_WORST[Math.max(...parts.map((p) => GATEWAYS_WORST.indexOf(p.checks.gateways)))]!;
  const clusters = parts.flatMap((p) => (p.checks.cluster === undefined ? [] : [p.checks.cluster]));
  const checks: Readiness['checks'] = {
    storage: parts.length > 0 && parts.every((p) => p.checks.storage === 'ok') ? 'ok' : 'error',
    gateways: worstGateways,
    ...(clusters.length === 0 ? {} : { cluster: clusters.includes('unreachable') ? 'unreachable' : 'ok' }),
    workers: unanswered === 0 ? 'ok' : 'error',
  };
  const ready = unanswered === 0 && parts.length > 0 && parts.every((p) => p.status === 'ready');
  return {
    status: ready ? 'ready' : 'not_ready',
    checks,
    gatewaysNotReady: [...gateways].sort(([a], [b]) => a.localeCompare(b)).map(([id, status]) => ({ id, status })),
  };
}

const readinessTopic: GatherTopic<Readiness, Readiness> = {
  name: 'readiness',
  deadlineMs: READY_TIMEOUT_MS,
  shared: true,
  isPart: isReadiness,
  isAnswer: isReadiness,
  merge: ({ parts, late, missing, failed }) => Promise.resolve(mergeReadiness(parts.map((p) => p.part), late.length + missing.length + failed.length)),
};

/** Counters of each thing (a gateway's parsing, a webhook's deliveries) by its id: a worker's own, or the machine's sum. */
type CountersById<C> = Record<string, C>;

/** Numbers summed over the workers; a flag is true where any worker's is (a gateway's script runs where any worker runs it). */
function addCounters<C extends object>(a: C, b: C): C {
  const sum: Record<string, number | boolean> = { ...(a as Record<string, number | boolean>) };
  for (const [key, value] of Object.entries(b as Record<string, number | boolean>)) {
    const mine = sum[key];
    sum[key] = typeof value === 'boolean' ? value || mine === true : (typeof mine === 'number' ? mine : 0) + value;
  }
  return sum as C;
}

/** Each id's counters summed over the workers' parts. */
export function mergeCountersById<C extends object>(parts: readonly CountersById<C>[]): CountersById<C> {
  const merged: CountersById<C> = {};
  for (const part of parts) {
    for (const [id, counters] of Object.entries(part)) merged[id] = merged[id] === undefined ? { ...counters } : addCounters(merged[id], counters);
  }
  return merged;
}

/** A part whose every entry has these number fields (safe integers) and these flags. */
function countersGuard<C>(numbers: readonly string[], flags: readonly string[] = []): (value: unknown) => value is CountersById<C> {
  return (value): value is CountersById<C> => typeof value === 'object' && value !== null && !Array.isArray(value)
    && Object.values(value).every((entry: unknown) => {
      if (typeof entry !== 'object' || entry === null) return false;
      const fields = entry as Record<string, unknown>;
      return numbers.every((key) => Number.isSafeInteger(fields[key])) && flags.every((key) => typeof fields[key] === 'boolean');
    });
}

/** A machine-wide read of counters by id: like a scrape, never a part shown as the whole. */
function countersTopic<C extends object>(name: Topic, what: string, isPart: (value: unknown) => value is CountersById<C>): GatherTopic<CountersById<C>, CountersById<C>> {
  return {
    name,
    deadlineMs: SCRAPE_TIMEOUT_MS,
    shared: false, // a read after an event must count it
    isPart,
    isAnswer: isPart,
    merge({ parts, late, failed }) {
      // A worker there and silent fails the read (its part would be missing from the sum); one gone took its counts.
      if (late.length > 0) return Promise.reject(new Error(`a worker did not answer within ${SCRAPE_TIMEOUT_MS} ms`));
      if (failed.length > 0) return Promise.reject(new Error(`a worker failed to read its ${what}: ${failed[0]!.error}`));
      return Promise.resolve(mergeCountersById(parts.map((p) => p.part)));
    },
  };
}

const parsingTopic = countersTopic<ParsingStats>('parsing', 'parsing counters', countersGuard(['parsed', 'failed', 'dropped', 'shed'], ['enabled']));
const webhooksTopic = countersTopic<WebhookStats>('webhooks', 'webhook counters',
  countersGuard(['delivered', 'retried', 'deadLettered', 'dropped', 'queued', 'inFlight', 'heldBytes']));

type LastError = { at: string; reason: string } | null;

function sumCounts(records: readonly Record<string, number>[]): Record<string, number> {
  const sum: Record<string, number> = {};
  for (const record of records) for (const [key, n] of Object.entries(record)) sum[key] = (sum[key] ?? 0) + n;
  return sum;
}

function latestError(errors: readonly LastError[]): LastError {
  return errors.reduce<LastError>((latest, e) => (e !== null && (latest === null || e.at > latest.at) ? e : latest), null);
}

/**
 * One gateway's certificate checks on the machine, from each worker's (every worker runs the gateway's listener with its
 * own OCSP cache and its own staple): counters summed, the latest error. The machine staples only if every worker does
 * (a handshake lands on any), and the kept response shown is the one of a worker that does not staple, else the oldest.
 * The mode and the failure policy are the first worker's (every worker's once an edit has reached them all).
 */
export function mergeOcspStates(states: readonly GatewayOcspState[]): GatewayOcspState {
  const servers = states.flatMap((s) => (s.server === null ? [] : [s.server]));
  const clients = states.flatMap((s) => (s.client === null ? [] : [s.client]));
  const weakest = servers.reduce<OcspServerState | undefined>((worst, s) => {
    if (worst === undefined) return s;
    if (worst.stapling !== s.stapling) return s.stapling ? worst : s;
    return (s.thisUpdate ?? '') < (worst.thisUpdate ?? '') ? s : worst;
  }, undefined);
  return {
    mode: states[0]!.mode,
    server: weakest === undefined ? null : {
      ...weakest,
      stapling: servers.every((s) => s.stapling),
      staplesServed: servers.reduce((n, s) => n + s.staplesServed, 0),
      responderErrors: sumCounts(servers.map((s) => s.responderErrors)),
      lastError: latestError(servers.map((s) => s.lastError)),
    },
    client: clients.length === 0 ? null : {
      onResponderFailure: clients[0]!.onResponderFailure,
      checks: sumCounts(clients.map((c) => c.checks)),
      cacheHits: clients.reduce((n, c) => n + c.cacheHits, 0),
      cacheSize: clients.reduce((n, c) => n + c.cacheSize, 0),
      responderErrors: sumCounts(clients.map((c) => c.responderErrors)),
      lastError: latestError(clients.map((c) => c.lastError)),
      revokedWhileConnected: clients.reduce((n, c) => n + c.revokedWhileConnected, 0),
    },
    x509Refusals: sumCounts(states.map((s) => s.x509Refusals)),
  };
}

function isOcspStates(value: unknown): value is Record<string, GatewayOcspState> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && Object.values(value).every((state: unknown) => {
    const s = state as Partial<Record<keyof GatewayOcspState, unknown>> | null;
    return typeof s === 'object' && s !== null && typeof s.mode === 'string' && typeof s.x509Refusals === 'object' && s.x509Refusals !== null
      && (s.server === null || typeof s.server === 'object') && (s.client === null || typeof s.client === 'object');
  });
}

const ocspTopic: GatherTopic<Record<string, GatewayOcspState>, Record<string, GatewayOcspState>> = {
  name: 'ocsp',
  deadlineMs: SCRAPE_TIMEOUT_MS,
  shared: false, // a read after a CONNECT must count its check
  isPart: isOcspStates,
  isAnswer: isOcspStates,
  merge({ parts, late, failed }) {
    if (late.length > 0) return Promise.reject(new Error(`a worker did not answer within ${SCRAPE_TIMEOUT_MS} ms`));
    if (failed.length > 0) return Promise.reject(new Error(`a worker failed to read its certificate checks: ${failed[0]!.error}`));
    const byGateway = new Map<string, GatewayOcspState[]>();
    for (const { part } of parts) for (const [id, state] of Object.entries(part)) byGateway.set(id, [...(byGateway.get(id) ?? []), state]);
    return Promise.resolve(Object.fromEntries([...byGateway].map(([id, states]) => [id, mergeOcspStates(states)])));
  },
};

/**
 * One gateway's use of its limits on the machine, from each worker's (a session, and so its queue and subscriptions, is
 * held by the worker its connection landed on): refusals summed; the level is the highest of the workers' (the most any
 * one session, device or address holds, or the retained set every worker holds alike). `maxConnections` is already the
 * whole cluster's on every worker (the connection counts are shared): the highest, not a sum.
 */
export function mergeLimitsUsage(usages: readonly GatewayLimitsUsage[]): GatewayLimitsUsage {
  const merged: Record<string, LimitUse> = {};
  for (const usage of usages) {
    for (const [name, use] of Object.entries<LimitUse>(usage)) {
      const before = merged[name];
      if (before === undefined) {
        merged[name] = { ...use };
        continue;
      }
      const current = before.current === null ? use.current : use.current === null ? before.current : Math.max(before.current, use.current);
      merged[name] = { current, hits: name === 'maxConnections' ? Math.max(before.hits, use.hits) : before.hits + use.hits };
    }
  }
  return merged as GatewayLimitsUsage;
}

function isLimitsUsages(value: unknown): value is Record<string, GatewayLimitsUsage> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && Object.values(value).every((usage: unknown) =>
    typeof usage === 'object' && usage !== null && !Array.isArray(usage) && Object.values(usage).every((use: unknown) => {
      const u = use as Partial<LimitUse> | null;
      return typeof u === 'object' && u !== null && Number.isSafeInteger(u.hits) && (u.current === null || Number.isSafeInteger(u.current));
    }));
}

const limitsTopic: GatherTopic<Record<string, GatewayLimitsUsage>, Record<string, GatewayLimitsUsage>> = {
  name: 'limits',
  deadlineMs: SCRAPE_TIMEOUT_MS,
  shared: false, // a read after a refusal must count it
  isPart: isLimitsUsages,
  isAnswer: isLimitsUsages,
  merge({ parts, late, failed }, machine) {
    if (late.length > 0) return Promise.reject(new Error(`a worker did not answer within ${SCRAPE_TIMEOUT_MS} ms`));
    if (failed.length > 0) return Promise.reject(new Error(`a worker failed to read its limits' use: ${failed[0]!.error}`));
    const byGateway = new Map<string, GatewayLimitsUsage[]>();
    for (const { part } of parts) for (const [id, usage] of Object.entries(part)) byGateway.set(id, [...(byGateway.get(id) ?? []), usage]);
    return Promise.resolve(Object.fromEntries([...byGateway].map(([id, usages]) => {
      const merged = mergeLimitsUsage(usages);
      // The sockets of one address over every worker: only the primary counts them together.
      merged.maxConnectionsPerAddress = { ...merged.maxConnectionsPerAddress, current: machine.mostOpenFromOneAddress(id) };
      return [id, merged];
    })));
  },
};

const GATHER_TOPICS: Record<Topic, GatherTopic<unknown, unknown>> = {
  metrics: metricsTopic,
  readiness: readinessTopic,
  parsing: parsingTopic,
  webhooks: webhooksTopic,
  ocsp: ocspTopic,
  limits: limitsTopic,
};

/**
 * Use against each gateway limit, the machine's: `maxConnections` is the connections of every worker (summed); the
 * others are the most any one session, device or address holds (or the retained set every worker holds alike), so the
 * machine's is the highest of the workers'. One metric cannot have two prom-client aggregators: merged here.
 */
const LIMIT_USE = 'gatehouse_gateway_limit_use';
const GATEWAY_INFO = 'gatehouse_gateway_info';
const SUMMED_LIMIT_USE: ReadonlySet<string> = new Set(['maxConnections']);

function mergeLimitUse(parts: MetricsJson[], machine: MachineFigures): MetricsJson[] {
  // gateway name → id, from gatehouse_gateway_info: the series are labelled by name, the primary counts by id.
  const ids = new Map<string, string>();
  for (const metric of parts.flat()) {
    if (metric.name !== GATEWAY_INFO) continue;
    for (const { labels } of metric.values) ids.set(String(labels.gateway), String(labels.gateway_id));
  }
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
  for (const value of merged.values()) {
    const id = ids.get(String(value.labels.gateway));
    // The sockets of one address over every worker: only the primary counts them together.
    if (value.labels.limit === 'maxConnectionsPerAddress' && id !== undefined) value.value = machine.mostOpenFromOneAddress(id);
  }
  const whole = { ...first, values: [...merged.values()] };
  // The merged metric in one part alone: the aggregation then has one value per series to take as it is.
  return parts.map((metrics, i) => metrics.flatMap((metric) => (metric.name !== LIMIT_USE ? [metric] : i === firstPart ? [whole] : [])));
}

/** Every worker's figures as one exposition: per-node series labelled with their node, the others aggregated. */
export function aggregateWorkerMetrics(parts: { nodeId: string; metrics: MetricsJson }[], machine: MachineFigures): Promise<string> {
  const labelled = parts.map(({ nodeId, metrics }) => metrics.map((metric) => (PER_NODE_METRICS.has(metric.name)
    ? { ...metric, values: metric.values.map((v) => ({ ...v, labels: { ...v.labels, node_id: nodeId } })) }
    : metric)));
  return AggregatorRegistry.aggregate(mergeLimitUse(labelled, machine)).metrics();
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
 * A worker's side of one topic: answers the primary's collections with `collect` (this worker's part), and returns
 * the ask: the primary's answer for the machine. Asks of a shared topic made while one is in flight share it.
 */
function workerGathering<Part, Answer>(topic: GatherTopic<Part, Answer>, nodeId: string, collect: () => Promise<Part>): () => Promise<Answer> {
  let next = 0;
  const waiting = new Map<number, { resolve: (answer: Answer) => void; reject: (error: Error) => void }>();
  let inFlight: Promise<Answer> | null = null;
  const send = (message: GatherMessage): void => {
    try {
      process.send?.(message);
    } catch {
      // The channel closed: the primary is gone and this worker ends with it; an ask then times out.
    }
  };
  process.on('message', (message: unknown) => {
    if (!isGatherMessage(message) || message.topic !== topic.name) return;
    if (message.gatehouse === 'gather_collect') {
      void collect().then(
        (value) => send({ gatehouse: 'gather_part', topic: topic.name, id: message.id, nodeId, value }),
        (error: unknown) => send({ gatehouse: 'gather_part', topic: topic.name, id: message.id, nodeId, error: String(error) }),
      );
    } else if (message.gatehouse === 'gather_answer') {
      const asked = waiting.get(message.id);
      waiting.delete(message.id);
      if (topic.isAnswer(message.value)) asked?.resolve(message.value);
      else asked?.reject(new Error(message.error ?? `no ${topic.name} answer`));
    }
  });
  const ask = (): Promise<Answer> => new Promise<Answer>((resolve, reject) => {
    if (waiting.size >= MAX_ASKS_IN_FLIGHT) {
      reject(new Error(`${MAX_ASKS_IN_FLIGHT} ${topic.name} asks already wait for the primary`));
      return;
    }
    const id = next++;
    // The primary answers within its deadline; twice that and it is not answering.
    const timer = setTimeout(() => {
      waiting.delete(id);
      reject(new Error(`the primary did not answer the ${topic.name} ask`));
    }, 2 * topic.deadlineMs);
    waiting.set(id, {
      resolve: (answer) => (clearTimeout(timer), resolve(answer)),
      reject: (error) => (clearTimeout(timer), reject(error)),
    });
    send({ gatehouse: 'gather_request', topic: topic.name, id });
  });
  if (!topic.shared) return ask;
  return () => (inFlight ??= ask().finally(() => (inFlight = null)));
}

/**
 * A worker's `/metrics`: the machine's figures, not this worker's alone, since a scrape lands on any worker.
 * Answers the primary's collections with this worker's registry, and returns the scrape: ask the primary,
 * which collects from every worker and aggregates.
 */
export function workerMetrics(local: MetricsRegistry, nodeId: string): () => Promise<string> {
  return workerGathering(metricsTopic, nodeId, () => local.getMetricsAsJSON());
}

/**
 * A worker's `/ready`: the machine's readiness, not this worker's alone, since a probe lands on any worker. Answers
 * the primary's collections with this worker's own checks (`local`), and returns the probe: ask the primary, which
 * gathers every worker's and merges them. Should the primary not answer, this worker's own with `workers` `error`.
 */
export function workerReadiness(local: () => Promise<Readiness>, nodeId: string): () => Promise<Readiness> {
  const ask = workerGathering(readinessTopic, nodeId, local);
  return () => ask().catch(async () => {
    const own = await local();
    return { ...own, status: 'not_ready', checks: { ...own.checks, workers: 'error' } };
  });
}

/**
 * A worker's `GET /gateways/:id/parsing`: the machine's counters, not this worker's alone, since a device's messages
 * are parsed by the worker its connection landed on and the request lands on any. Answers the primary's collections
 * with this worker's counters of every gateway (`local`), and returns the read of one gateway's.
 */
export function workerParsingStats(local: () => CountersById<ParsingStats>, nodeId: string): (gatewayId: string) => Promise<ParsingStats> {
  const ask = workerGathering(parsingTopic, nodeId, () => Promise.resolve(local()));
  return async (gatewayId) => (await ask())[gatewayId] ?? { parsed: 0, failed: 0, dropped: 0, shed: 0, enabled: false };
}

/**
 * A worker's webhook delivery counters (`GET /webhooks`, `/webhooks/:id`): the machine's, every webhook's summed over
 * the workers, since each worker delivers the events of its own devices (and takes over a dead node's outbox rows).
 */
export function workerWebhookStats(local: () => CountersById<WebhookStats>, nodeId: string): () => Promise<CountersById<WebhookStats>> {
  return workerGathering(webhooksTopic, nodeId, () => Promise.resolve(local()));
}

/**
 * A worker's certificate checks of its gateways (`GET /gateways/:id`'s `ocspStatus`): the machine's, every worker's
 * merged (mergeOcspStates), since a device's check and a handshake's staple happen on the worker its connection reached.
 */
export function workerOcspStates(local: () => Record<string, GatewayOcspState>, nodeId: string): () => Promise<Record<string, GatewayOcspState>> {
  return workerGathering(ocspTopic, nodeId, () => Promise.resolve(local()));
}

/**
 * A worker's use of its gateways' limits (`GET /gateways/:id`'s `limitsUsage`): the machine's, every worker's merged
 * (mergeLimitsUsage), since a device's session, queue and refusals are on the worker its connection reached.
 */
export function workerLimitsUsages(local: () => Record<string, GatewayLimitsUsage>, nodeId: string): () => Promise<Record<string, GatewayLimitsUsage>> {
  return workerGathering(limitsTopic, nodeId, () => Promise.resolve(local()));
}

/** An ask the primary is gathering the parts of. */
interface Gathering {
  topic: GatherTopic<unknown, unknown>;
  /** The workers whose ask this answers, each with its ask's id (one unless the topic is shared). */
  askers: { worker: Worker; id: number }[];
  /** Workers asked that have not answered yet, with their index. */
  pending: Map<Worker, number>;
  gathered: Gathered<unknown>;
  timer: NodeJS.Timeout;
}

/**
 * The primary's side: asks every worker for its part, gathers the parts with the topic's deadline and answers the
 * askers. A worker is asked when its slot has a ready worker on a connected channel; a slot without one is
 * `missing` at once (readiness: a worker dead, restarting or starting means the machine is not ready).
 */
function primaryGatherings(slots: readonly Slot[], log: Logger, machine: MachineFigures): { onMessage(from: Worker, message: GatherMessage): void; onExit(worker: Worker): void } {
  let nextId = 0;
  const gatherings = new Map<number, Gathering>();
  const open = new Map<Topic, number>(); // a shared topic's gathering in flight
  const lastMissing = new Map<Topic, string>();

  const answer = (asker: { worker: Worker; id: number }, topic: Topic, reply: { value: unknown } | { error: string }): void => {
    if (asker.worker.isConnected()) asker.worker.send({ gatehouse: 'gather_answer', topic, id: asker.id, ...reply } satisfies GatherMessage);
  };
  const finish = (id: number): void => {
    const gathering = gatherings.get(id);
    if (gathering === undefined) return;
    gatherings.delete(id);
    if (open.get(gathering.topic.name) === id) open.delete(gathering.topic.name);
    clearTimeout(gathering.timer);
    const { topic, askers, gathered } = gathering;
    gathered.late.push(...gathering.pending.values());
    // Once per change, not per ask: which workers gave no part (a probe every second would repeat it).
    const missing = JSON.stringify({ late: gathered.late, missing: gathered.missing, failed: gathered.failed.map((f) => f.worker) });
    if (missing !== (lastMissing.get(topic.name) ?? JSON.stringify({ late: [], missing: [], failed: [] }))) {
      lastMissing.set(topic.name, missing);
      const details = { topic: topic.name, late: gathered.late, missing: gathered.missing, failed: gathered.failed };
      if (gathered.late.length + gathered.missing.length + gathered.failed.length === 0) log.info(details, 'gather_workers_all_answered');
      else log.warn(details, 'gather_workers_missing');
    }
    if (askers.length === 0) return;
    topic.merge(gathered, machine).then(
      (value) => askers.forEach((asker) => answer(asker, topic.name, { value })),
      (error: unknown) => askers.forEach((asker) => answer(asker, topic.name, { error: String(error) })),
    );
  };
  const finishWhenComplete = (id: number): void => {
    if (gatherings.get(id)?.pending.size === 0) finish(id);
  };

  return {
    onMessage(from, message) {
      const topic = GATHER_TOPICS[message.topic];
      if (message.gatehouse === 'gather_request') {
        const shared = topic.shared ? open.get(topic.name) : undefined;
        if (shared !== undefined) {
          gatherings.get(shared)?.askers.push({ worker: from, id: message.id });
          return;
        }
        if (gatherings.size >= MAX_GATHERINGS) {
          answer({ worker: from, id: message.id }, topic.name, { error: `${MAX_GATHERINGS} gatherings already in flight` });
          return;
        }
        const id = nextId++;
        const pending = new Map<Worker, number>();
        const missing: number[] = [];
        for (const slot of slots) {
          if (slot.ready && slot.worker?.isConnected() === true) pending.set(slot.worker, slot.index);
          else missing.push(slot.index);
        }
        const timer = setTimeout(() => finish(id), topic.deadlineMs);
        timer.unref();
        gatherings.set(id, { topic, askers: [{ worker: from, id: message.id }], pending, gathered: { parts: [], late: [], missing, failed: [] }, timer });
        if (topic.shared) open.set(topic.name, id);
        for (const target of pending.keys()) target.send({ gatehouse: 'gather_collect', topic: topic.name, id } satisfies GatherMessage);
        finishWhenComplete(id);
      } else if (message.gatehouse === 'gather_part') {
        const gathering = gatherings.get(message.id);
        const index = gathering?.pending.get(from);
        if (gathering === undefined || index === undefined || gathering.topic !== topic) return;
        gathering.pending.delete(from);
        if (message.error === undefined && topic.isPart(message.value)) {
          gathering.gathered.parts.push({ nodeId: message.nodeId ?? `pid ${from.process.pid}`, part: message.value });
        } else gathering.gathered.failed.push({ worker: index, error: message.error ?? 'not a part' });
        finishWhenComplete(message.id);
      }
    },
    onExit(worker) {
      for (const [id, gathering] of gatherings) {
        // Its asks die with it; a part it owed is missing (gone, its figures or checks with it).
        gathering.askers = gathering.askers.filter((asker) => asker.worker !== worker);
        const index = gathering.pending.get(worker);
        if (index === undefined) continue;
        gathering.pending.delete(worker);
        gathering.gathered.missing.push(index);
        finishWhenComplete(id);
      }
    },
  };
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
      if (isAdmissionRequest(message)) {
        machineAdmission.handle(worker, message);
        return;
      }
      if (isPortRequest(message)) {
        gatewayPorts.handle(worker, message);
        return;
      }
      if (isGatherMessage(message)) {
        gatherings.onMessage(worker, message);
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

  // The per-address socket limits of every gateway, counted for the machine (address-admission.ts).
  const machineAdmission = new MachineAdmission();
  // Every gateway port, bound once here and its sockets handed to the workers running the gateway (port-share.ts).
  const gatewayPorts = new PrimaryPorts((event, reason) => log.warn({ reason }, event));

  // /metrics and /ready: every worker's part, answered to the worker that was asked.
  const gatherings = primaryGatherings(slots, log, { mostOpenFromOneAddress: (id) => machineAdmission.mostOpen(id) });

  const onExit = (slot: Slot, worker: Worker, code: number | null, signal: string | null): void => {
    gatherings.onExit(worker);
    machineAdmission.forget(worker); // its sockets closed with it
    gatewayPorts.forget(worker);
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
