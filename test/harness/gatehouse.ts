/** A whole Gatehouse in-process (real SQLite file, real HTTP and TLS listeners on 127.0.0.1). */
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '../../src/config/index.ts';
import pino from 'pino';
import { createLogger, type Logger } from '../../src/core/logger.ts';
import { startGatehouse, type Gatehouse, type GatehouseOverrides } from '../../src/app.ts';
import { queryDatabase } from './database-query.ts';

export const TEST_ADMIN_TOKEN = 'e2e-admin-token-0123456789abcdef';

export interface TestGatehouse {
  gatehouse: Gatehouse;
  dataDir: string;
  /** Calls the REST API with the admin token; JSON in and out unless a string body and content type are given. */
  api<T = unknown>(method: string, urlPath: string, body?: unknown, contentType?: string): Promise<{ status: number; json: T }>;
  /** Reads the node's database (database-query.ts: `$1`… parameters), for a stored result the API does not show. */
  query<T>(sql: string, params?: unknown[]): Promise<T[]>;
  /** Stops the process-level parts (keeps the data directory). */
  stop(): Promise<void>;
}

/**
 * `env`: more configuration keys (GATEHOUSE_…), read as the process would read them. `log`: its log kept for the
 * test to read instead of dropped (`capturedLog`; against workers, the JSON lines every worker prints).
 * The overrides reach worker processes as GATEHOUSE_TEST_OVERRIDES.
 */
export async function startTestGatehouse(options: { dataDir?: string; env?: Record<string, string>; log?: CapturedLog } & GatehouseOverrides = {}): Promise<TestGatehouse> {
  const dataDir = options.dataDir ?? (await mkdtemp(path.join(os.tmpdir(), 'gh-e2e-')));
  // GATEHOUSE_TEST_WORKERS=N: the same suite against `npm start` with N workers (gatehouse-workers.ts).
  const workersHarness = await import('./gatehouse-workers.ts');
  const workers = workersHarness.testWorkers();
  if (workers !== undefined) {
    const { dataDir: _dir, env, ...overrides } = options;
    return workersHarness.startWorkersGatehouse(workers, dataDir, env ?? {}, overrides);
  }
  const prepared = await loadConfig({
    GATEHOUSE_DATA_DIR: dataDir,
    GATEHOUSE_HTTP_PORT: '0',
    GATEHOUSE_HTTP_HOST: '127.0.0.1',
    GATEHOUSE_MQTT_HOST: '127.0.0.1',
    GATEHOUSE_PUBLIC_HOST: 'localhost',
    GATEHOUSE_ADMIN_TOKEN: TEST_ADMIN_TOKEN,
    GATEHOUSE_LOG_LEVEL: process.env.GATEHOUSE_TEST_LOG_LEVEL ?? 'silent',
    ...options.env,
  }, dataDir);
  const logger = options.log?.logger ?? createLogger(prepared.config.logLevel);
  const gatehouse = await startGatehouse(prepared, logger, {
    ocspTimings: options.ocspTimings, platform: options.platform, connectionEvents: options.connectionEvents, clusterLeaseTimings: options.clusterLeaseTimings,
  });
  return {
    gatehouse,
    dataDir,
    async api<T>(method: string, urlPath: string, body?: unknown, contentType = 'application/json') {
      const res = await fetch(`${gatehouse.url}/api/v1${urlPath}`, {
        method,
        headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}`, ...(body === undefined ? {} : { 'content-type': contentType }) },
        body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
      });
      const text = await res.text();
      return { status: res.status, json: (text.length > 0 ? JSON.parse(text) : undefined) as T };
    },
    query: (sql, params) => queryDatabase({ databaseUrl: prepared.config.databaseUrl, dataDir }, sql, params),
    stop: () => gatehouse.close(),
  };
}

/**
 * What a Gatehouse logged, for a test to check why it did something. In-process its `logger` writes `records`; against
 * workers (GATEHOUSE_TEST_WORKERS) the process runs at `level` and its JSON lines are added to `records` as they are
 * read from its output, so a test waits for a record rather than expect it at once.
 */
export interface CapturedLog {
  readonly logger: Logger;
  readonly records: Record<string, unknown>[];
  readonly level: string;
}

export function capturedLog(level = 'info'): CapturedLog {
  const records: Record<string, unknown>[] = [];
  const logger = pino({ level, base: undefined }, { write: (line: string) => void records.push(JSON.parse(line) as Record<string, unknown>) });
  return { logger, records, level };
}

export async function removeDataDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
  await (await import('./gatehouse-workers.ts')).dropWorkersSchema(dir);
}

/** A TCP port that was free a moment ago on 127.0.0.1. */
/**
 * The loopback addresses tests listen on (cluster nodes on 127.0.0.2 …). A port the kernel hands out as free on
 * 127.0.0.1 may be in use on another of them: in a clean-clone CI run a gateway got the port node A's API held on
 * 127.0.0.2, and A's restart then could not listen its API there.
 */
const TEST_HOSTS = ['127.0.0.1', '127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5', '127.0.0.6'];

function listenOnce(port: number, host: string): Promise<net.Server | null> {
  const server = net.createServer();
  return new Promise((resolve) => {
    server.once('error', () => resolve(null));
    server.listen(port, host, () => resolve(server));
  });
}

/** A port free on every loopback address tests listen on (at this moment: another test may still take it). */
export async function freePort(): Promise<number> {
  for (let attempt = 0; ; attempt++) {
    const first = (await listenOnce(0, TEST_HOSTS[0]!))!;
    const port = (first.address() as net.AddressInfo).port;
    const others = await Promise.all(TEST_HOSTS.slice(1).map((host) => listenOnce(port, host)));
    const open = [first, ...others].filter((server): server is net.Server => server !== null);
    await Promise.all(open.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
    if (others.every((server) => server !== null) || attempt >= 20) return port;
  }
}
