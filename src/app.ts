/**
 * Builds and starts a whole Gatehouse from a prepared configuration: storage → registry → gateway
 * runtime → API. `main.ts` calls it for `npm start`; integration tests call it in-process.
 */
import { rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { collectDefaultMetrics, Gauge, Registry as MetricsRegistry } from 'prom-client';
import { processGuard } from './core/process-guard.ts';
import { StartSteps } from './core/start-steps.ts';
import { GatehouseError } from './core/errors.ts';
import type { PreparedConfig } from './config/index.ts';
import type { Logger } from './core/logger.ts';
import { openStorage } from './storage/index.ts';
import { damagedDatabase, isDamagedSqlite } from './storage/installation.ts';
import { hasExistingState, newInstallationId, PID_FILE, readIdentity, writeIdentity } from './config/identity.ts';
import { tightenDataDir } from './config/permissions.ts';
import { SqliteStateStores, MQTT_STATE_FILE } from './storage/sqlite-state-stores.ts';
import { SqliteUplinkJournal, UPLINK_JOURNAL_FILE } from './storage/sqlite-uplink-journal.ts';
import { WalCheckpointer } from './storage/wal-checkpointer.ts';
import { createRegistry, DEFAULT_SCRYPT_COST, type Registry } from './registry/index.ts';
import { GatewayRuntime, type GatewayRuntimeOptions } from './gateway/runtime.ts';
import { DEFAULT_OCSP_TIMINGS } from './gateway/tls/ocsp-cache.ts';
import { parseTestOverrides, TEST_OVERRIDES_ENV } from './config/test-overrides.ts';
import { registerGatewayMetrics } from './gateway/metrics.ts';
import { buildApi, readinessCheck, type Api } from './api/index.ts';
import {
  ConnectionEventRecorder, DEFAULT_CONNECTION_EVENT_OPTIONS, DEFAULT_PLATFORM_OPTIONS, PARSING_NICENESS, Platform, registerConnectionEventMetrics, registerPlatformMetrics, type ConnectionEventOptions, type PlatformOptionsInput,
} from './platform/index.ts';
import { QuickJsRunner } from './sandbox/index.ts';
import {
  DEFAULT_LEASE_TIMINGS, PresenceReaper, registerClusterMetrics, startClusterNode, type ClusterNode, type LeaseTimings,
} from './cluster/index.ts';
import { workerIndex, workerLimitsUsages, workerMetrics, workerOcspStates, workerParsingStats, workerReadiness, workerWebhookStats } from './workers.ts';
import { workerAdmission } from './address-admission.ts';
import { workerPorts } from './port-share.ts';

export interface Gatehouse {
  readonly registry: Registry;
  readonly runtime: GatewayRuntime;
  readonly platform: Platform;
  readonly api: Api;
  /** Base URL of the API and console. */
  readonly url: string;
  readonly adminToken: string;
  /** This node's cluster parts when GATEHOUSE_NATS_URL is set; null for a single process. */
  readonly cluster: ClusterNode | null;
  close(): Promise<void>;
}

/** Knobs for in-process tests; production uses the defaults. */
export interface GatehouseOverrides {
  /** OCSP cache bounds and timeouts (DESIGN.md: 5 min … 1 h), shortened by OCSP tests. */
  ocspTimings?: GatewayRuntimeOptions['ocspTimings'];
  /** Message store bounds, webhook retry timings … (tests shorten the retries). */
  platform?: PlatformOptionsInput;
  /** Connection event batching and folding (tests shorten the fold window). */
  connectionEvents?: Partial<ConnectionEventOptions>;
  /** A cluster node's lease heartbeat and length (tests of a NATS outage shorten them). */
  clusterLeaseTimings?: LeaseTimings;
}

/**
 * `GATEHOUSE_TEST_OVERRIDES` (test-only, docs/testing.md): the same overrides as JSON for a process `npm start`
 * started, checked against the defaults they shorten (a field that is not one of them, or not a number >= 0, is
 * GW_ERR_CONFIG_INVALID naming it). Undefined when unset.
 */
export function readTestOverrides(env: NodeJS.ProcessEnv = process.env): GatehouseOverrides | undefined {
  const parsed = parseTestOverrides(env[TEST_OVERRIDES_ENV], {
    ocspTimings: DEFAULT_OCSP_TIMINGS, platform: DEFAULT_PLATFORM_OPTIONS, connectionEvents: DEFAULT_CONNECTION_EVENT_OPTIONS,
    clusterLeaseTimings: DEFAULT_LEASE_TIMINGS,
  }) as GatehouseOverrides | undefined;
  if (parsed?.clusterLeaseTimings === undefined) return parsed;
  // The lease timings are used whole: what the JSON leaves out keeps its default.
  return { ...parsed, clusterLeaseTimings: { ...DEFAULT_LEASE_TIMINGS, ...parsed.clusterLeaseTimings } };
}

/**
 * How long each step of the start that waits on the network may take before the start fails
 * (GW_ERR_START_STEP_TIMED_OUT, core/start-steps.ts). Storage includes the migrations, which on a large
 * database may take long; the others wait on requests that each answer within seconds or not at all.
 */
const START_STEP_DEADLINE_MS = {
  storage: 15 * 60_000, cluster: 60_000, registry: 60_000, imports: 60_000, platform: 5 * 60_000, gateways: 5 * 60_000, api: 60_000,
} as const;

export async function startGatehouse(prepared: PreparedConfig, logger: Logger, overrides: GatehouseOverrides = {}): Promise<Gatehouse> {
  const { config } = prepared;
  const steps = new StartSteps(logger);
  // The process's one sandbox for operator JavaScript: verification functions (checked when saved,
  // run on CONNECT) and transformPayload scripts all run in it.
  const runner = new QuickJsRunner();
  // Payload parsing has a sandbox of its own whose threads run at a lower priority: on a busy core
  // the event loop forwarding MQTT traffic goes first, and parsing takes what is left (what it
  // cannot keep up with is dropped and counted, platform/parser.ts). Threads start with the first script.
  const parsingRunner = new QuickJsRunner({ niceness: PARSING_NICENESS });
  // Whose directory and whose database: an empty, missing or foreign database beside an
  // installation's state is refused here, before any migration or demo could be created over it.
  const identity = await readIdentity(config.dataDir);
  const existingState = await hasExistingState(config.dataDir, [
    prepared.generated.adminToken ? null : prepared.files.adminToken,
    prepared.generated.masterKey ? null : prepared.files.masterKey,
  ]);
  // The SQLite files written on the message path checkpoint their logs on a thread of their own.
  const checkpointer = new WalCheckpointer({ logger });
  let storage: Awaited<ReturnType<typeof openStorage>>;
  try {
    storage = await steps.run('storage', 'the database: connect, check whose it is, migrate', START_STEP_DEADLINE_MS.storage, () => openStorage({
      dataDir: config.dataDir, databaseUrl: config.databaseUrl, logger,
      claim: { expectedId: identity?.installationId ?? null, newId: newInstallationId(), existingState, dataDir: config.dataDir },
    }));
  } catch (error) {
    await checkpointer.close();
    throw error;
  }
  // A cluster node (GATEHOUSE_NATS_URL, with PostgreSQL): the nodes share the database's installation id,
  // which names their subjects and buckets. Unreachable NATS or a node id in use refuses the start.
  let cluster: ClusterNode | null = null;
  if (config.natsUrl !== undefined) {
    try {
      cluster = await steps.run('cluster', 'NATS: connect, the node\'s lease, the live leases', START_STEP_DEADLINE_MS.cluster, () => startClusterNode({
        servers: config.natsUrl!, nodeId: config.nodeId, installationId: storage.installationId ?? 'default', logger,
        streamMaxBytes: config.clusterStreamMaxBytes,
        apiUrl: `http://${config.http.host.includes(':') ? `[${config.http.host}]` : config.http.host}:${config.http.port}`,
        ...(overrides.clusterLeaseTimings === undefined ? {} : { leaseTimings: overrides.clusterLeaseTimings }),
      }));
    } catch (error) {
      await storage.close();
      await checkpointer.close();
      throw error;
    }
  }
  if (identity === null) {
    await writeIdentity(config.dataDir, { installationId: storage.installationId!, createdAt: new Date().toISOString(), database: storage.dialect });
    logger.info({ installationId: storage.installationId, dataDir: config.dataDir }, 'data_dir_identity_written');
  }
  const registry = await steps.run('registry', 'the database: the registry\'s settings', START_STEP_DEADLINE_MS.registry, () => createRegistry({
    storage, masterKey: config.masterKey, publicHost: config.publicHost, logger, runner,
    passwordCost: { ...DEFAULT_SCRYPT_COST, N: config.passwordScryptN }, nodeId: config.nodeId,
  }));
  // Node ids are unique while running: what this id left RUNNING died with its previous process.
  await steps.run('imports', 'the database: imports left running', START_STEP_DEADLINE_MS.imports, () => registry.devices.failInterruptedImports());
  // Changes made through other nodes' APIs apply here as this node's own (and ours there).
  const leaveBus = cluster === null ? () => undefined : registry.events.connect(cluster.bus);
  const stateStores = openLocalSqlite(path.join(config.dataDir, MQTT_STATE_FILE), (file) => new SqliteStateStores(file, checkpointer));
  // In the platform's database (SQLite or PostgreSQL): every node of a cluster answers /events alike.
  const connectionEvents = new ConnectionEventRecorder(storage.connectionEvents, logger, {
    keepPerGateway: config.connectionEvents.perGateway, maxAgeMs: config.connectionEvents.maxAgeHours * 3600_000,
    foldAcrossNodes: cluster !== null, ...overrides.connectionEvents,
  });
  const runtime = new GatewayRuntime({
    directory: registry, logger, host: config.mqttHost, stateStores, ocspTimings: overrides.ocspTimings, runner, connectionEvents,
    ...(cluster === null ? {} : { clusterLinks: cluster.links, clusterThrottles: cluster.throttles }),
    // Under GATEHOUSE_WORKERS the per-address socket limits count the machine: the primary keeps the tables.
    // and the primary binds each gateway port once, handing its sockets to the workers (port-share.ts).
    ...(workerIndex() === null ? {} : { sharedAdmission: workerAdmission(), ports: workerPorts() }),
  });
  const metricsRegistry = new MetricsRegistry();
  collectDefaultMetrics({ register: metricsRegistry });
  registerGatewayMetrics(metricsRegistry, runtime);
  if (cluster !== null) registerClusterMetrics(metricsRegistry, cluster);
  // With GATEHOUSE_WORKERS each scrape is answered by the worker its connection reached: this says which.
  new Gauge({
    name: 'gatehouse_node_info', help: 'This process\'s node id (a worker\'s is <node id>-w<index>); under GATEHOUSE_WORKERS one series per worker, every worker\'s figures in one scrape',
    labelNames: ['node_id'], registers: [metricsRegistry], collect() { this.set({ node_id: config.nodeId }, 1); },
  });
  new Gauge({
    name: 'gatehouse_uncaught_errors_total', help: 'Errors that escaped every per-connection guard (should stay 0: each is a bug)',
    registers: [metricsRegistry], collect() { this.set(processGuard.uncaughtErrors); },
  });
  new Gauge({
    name: 'gatehouse_sqlite_wal_bytes', help: 'Write-ahead logs of the SQLite files on the message path, checkpointed off the event loop',
    registers: [metricsRegistry], collect() { this.set(checkpointer.walBytes()); },
  });
  const platformOptions: PlatformOptionsInput = {
    ...overrides.platform,
    messages: { keepPerDevice: config.messages.perDevice, maxAgeMs: config.messages.maxAgeHours * 3600_000, ...overrides.platform?.messages },
    deviceProperties: { ...config.deviceProperties, ...overrides.platform?.deviceProperties },
  };
  const uplinkJournal = openLocalSqlite(path.join(config.dataDir, UPLINK_JOURNAL_FILE), (file) => new SqliteUplinkJournal(file, checkpointer));
  // SQLite created its files with the process umask; owner-only like everything else here (their
  // -wal and -shm files take the database file's mode).
  await tightenDataDir(config.dataDir);
  // `gatehouse restore` refuses while this process runs on the directory.
  await writeFile(path.join(config.dataDir, PID_FILE), `${process.pid}\n`, { mode: 0o600 });
  const platform = new Platform({
    registry, runtime, messages: storage.messages, runner, parsingRunner, logger, options: platformOptions, journal: uplinkJournal, nodeId: config.nodeId,
    ...(cluster === null ? {} : { peers: cluster.peers, flushConnectionEvents: () => connectionEvents.flushed() }),
  });
  await steps.run('platform', 'the database: webhooks and their outbox, the uplink journal\'s replay', START_STEP_DEADLINE_MS.platform, () => platform.start());
  connectionEvents.onStored((record) => platform.publishConnectionEvent(record));
  // A cluster node's read of connection events includes what the other nodes hold for their next batch.
  connectionEvents.flushElsewhere = platform.flushConnectionEventsElsewhere;
  registerPlatformMetrics(metricsRegistry, platform);
  registerConnectionEventMetrics(metricsRegistry, connectionEvents);
  // Under GATEHOUSE_WORKERS a scrape reaches one worker: it answers for the machine (every worker's figures).
  // Likewise /ready: a probe reaches one worker, which answers for every worker (a single process pays nothing).
  const scrapeMetrics = workerIndex() === null ? () => metricsRegistry.metrics() : workerMetrics(metricsRegistry, config.nodeId);
  const clusterReachable = cluster === null ? undefined : () => cluster.connection.state === 'connected';
  const readiness = workerIndex() === null ? undefined
    : workerReadiness(readinessCheck({ registry, runtime, ...(clusterReachable === undefined ? {} : { clusterReachable }) }, logger.child({ component: 'api' })), config.nodeId);
  // And a gateway's parsing counters and a webhook's deliveries: each worker parses and delivers its own devices' messages.
  const parsingStats = workerIndex() === null ? undefined : workerParsingStats(() => platform.parsingStatsByGateway(), config.nodeId);
  const webhookStats = workerIndex() === null ? undefined : workerWebhookStats(() => platform.webhookStatsById(), config.nodeId);
  // And a gateway's certificate checks: each worker checks and staples on the connections it holds.
  const ocspStates = workerIndex() === null ? undefined : workerOcspStates(() => runtime.ocspStates(), config.nodeId);
  // And a gateway's use of its limits: each worker holds the sessions, queues and refusals of its own connections.
  const limitsUsages = workerIndex() === null ? undefined : workerLimitsUsages(() => runtime.limitsUsages(), config.nodeId);
  const api = buildApi({
    registry, runtime, logger, metricsRegistry, scrapeMetrics, adminToken: config.adminToken, platform, connectionEvents, console: {},
    ...(clusterReachable === undefined ? {} : { clusterReachable }), ...(readiness === undefined ? {} : { readiness }),
    ...(parsingStats === undefined ? {} : { parsingStats }), ...(webhookStats === undefined ? {} : { webhookStats }),
    ...(ocspStates === undefined ? {} : { ocspStates }), ...(limitsUsages === undefined ? {} : { limitsUsages }),
  });

  await steps.run('gateways', 'the database and, on a cluster node, NATS: every enabled gateway started', START_STEP_DEADLINE_MS.gateways, () => runtime.startAll());
  // A dead node's devices go OFFLINE once its lease lapsed: every node checks once a lease (idempotent).
  const reaper = cluster === null ? null : new PresenceReaper(cluster.connection, cluster.leases,
    (live) => registry.devices.markDeadNodesOffline(live, new Date()), logger.child({ component: 'cluster' }),
    (overrides.clusterLeaseTimings ?? DEFAULT_LEASE_TIMINGS).leaseMs);
  await steps.run('api', 'the API\'s plugins and its listening socket', START_STEP_DEADLINE_MS.api,
    () => api.listen({ host: config.http.host, port: config.http.port }).catch((error: unknown) => {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== 'EADDRINUSE' && code !== 'EACCES' && code !== 'EADDRNOTAVAIL') throw error;
      throw new GatehouseError('GW_ERR_HTTP_PORT_UNAVAILABLE', `the console and API cannot listen on ${config.http.host}:${config.http.port} `
        + `(${code}: ${code === 'EADDRINUSE' ? 'another process holds it' : code === 'EACCES' ? 'no permission' : 'no such address here'}); `
        + 'set GATEHOUSE_HTTP_PORT (or GATEHOUSE_HTTP_HOST) to a free one', 'GATEHOUSE_HTTP_PORT');
    }));
  const address = api.server.address();
  const port = typeof address === 'object' && address !== null ? address.port : config.http.port;
  const url = `http://${config.http.host.includes(':') ? `[${config.http.host}]` : config.http.host}:${port}`;

  let closed = false;
  return {
    registry,
    runtime,
    platform,
    api,
    url,
    adminToken: config.adminToken,
    cluster,
    async close() {
      if (closed) return;
      closed = true;
      await api.close();
      await registry.devices.closeImports();
      leaveBus();
      await runtime.close();
      await reaper?.close();
      await cluster?.close(); // after the engines: their links are closed, the lease goes last
      await platform.close();
      await connectionEvents.close(); // after the listeners: their last disconnects are written
      await checkpointer.close();
      await uplinkJournal.close();
      await rm(path.join(config.dataDir, PID_FILE), { force: true });
      runner.dispose();
      parsingRunner.dispose();
      await stateStores.close();
      await storage.close();
    },
  };
}

/** The node-local SQLite files: a damaged one is reported by name, not as a stack. */
function openLocalSqlite<T>(file: string, open: (file: string) => T): T {
  try {
    return open(file);
  } catch (error) {
    throw isDamagedSqlite(error) ? damagedDatabase(file, error) : error;
  }
}
