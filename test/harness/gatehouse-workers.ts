/**
 * `GATEHOUSE_TEST_WORKERS=N` (docs/testing.md): the in-process Gatehouse of the end-to-end suite replaced by
 * `npm start` (dist/main.mjs) with GATEHOUSE_WORKERS=N on the nats-server and PostgreSQL of GATEHOUSE_TEST_NATS_URL
 * and GATEHOUSE_TEST_DATABASE_URL, so the same test files run against a node of N worker processes. Each data
 * directory gets a PostgreSQL schema of its own (a restart on the directory finds its database again; removing
 * the directory drops it, and the installation's streams on the nats-server). The test's overrides reach the workers as
 * GATEHOUSE_TEST_OVERRIDES, and a captured log gets the JSON lines every worker prints. What only a process's memory
 * holds (the registry, runtime and platform objects) cannot reach the test: using it fails with a message saying so.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import type { Gatehouse, GatehouseOverrides } from '../../src/app.ts';
import { TEST_OVERRIDES_ENV } from '../../src/config/test-overrides.ts';
import { startGatehouseProcess, tail, type GatehouseProcess } from './gatehouse-process.ts';
import { deleteInstallationStreams, TEST_STREAM_MAX_MB } from './nats-streams.ts';
import type { CapturedLog, TestGatehouse } from './gatehouse.ts';
import { queryDatabase } from './database-query.ts';

/** The worker count the suite runs against, or undefined for the usual in-process Gatehouse. */
export function testWorkers(): number | undefined {
  const raw = process.env.GATEHOUSE_TEST_WORKERS;
  if (raw === undefined || raw === '') return undefined;
  if (!/^[1-9]\d?$/.test(raw)) throw new Error(`GATEHOUSE_TEST_WORKERS must be a worker count 1-99, got "${raw}"`);
  return Number(raw);
}

/**
 * A test's `skip` where it needs what only the test's process can hold (calls into its registry object, a counter
 * read in the same turn as an event): the reason under GATEHOUSE_TEST_WORKERS, false in-process. docs/testing.md
 * lists these tests.
 */
export function inProcessOnly(why: string): string | false {
  return testWorkers() === undefined ? false : `in-process only: ${why}`;
}

const schemas = new Map<string, string>();

function databaseUrl(schema: string): string {
  const url = new URL(process.env.GATEHOUSE_TEST_DATABASE_URL!);
  url.searchParams.set('options', `-c search_path=${schema}`);
  return url.toString();
}

async function admin<T>(work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: process.env.GATEHOUSE_TEST_DATABASE_URL });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/** The schema of a data directory's node, created on its first start. */
async function schemaFor(dataDir: string): Promise<string> {
  let schema = schemas.get(dataDir);
  if (schema === undefined) {
    schema = `workers_${randomBytes(6).toString('hex')}`;
    const name = schema;
    await admin((client) => client.query(`create schema ${name}`));
    schemas.set(dataDir, schema);
  }
  return schema;
}

/**
 * Drops the schema of a data directory's node, if it had one (removeDataDir calls it), and its installation's
 * streams on the nats-server (each run is an installation of its own: left there, their reservations add up).
 */
export async function dropWorkersSchema(dataDir: string): Promise<void> {
  const schema = schemas.get(dataDir);
  if (schema === undefined) return;
  schemas.delete(dataDir);
  const installationId = await admin(async (client) => {
    const found = await client.query<{ value: string }>(`select value from ${schema}.settings where key = 'installation_id'`).catch(() => null);
    await client.query(`drop schema if exists ${schema} cascade`);
    return found?.rows[0]?.value;
  });
  if (installationId !== undefined) await deleteInstallationStreams(process.env.GATEHOUSE_TEST_NATS_URL!, installationId);
}

const IN_MEMORY = ['registry', 'runtime', 'platform', 'api', 'cluster'] as const;

/** Adds each JSON line the process prints (every worker's log; not its "Gatehouse is running" text) to `records`. */
function followLog(node: GatehouseProcess, records: Record<string, unknown>[]): void {
  let read = 0;
  const take = (): void => {
    const text = node.stdout();
    const end = text.lastIndexOf('\n');
    if (end < read) return;
    for (const line of text.slice(read, end).split('\n')) {
      if (!line.startsWith('{')) continue;
      try {
        records.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        // not a log record
      }
    }
    read = end + 1;
  };
  take();
  node.child.stdout!.on('data', take);
}

export async function startWorkersGatehouse(
  workers: number, dataDir: string, env: Record<string, string>, options: { log?: CapturedLog } & GatehouseOverrides,
): Promise<TestGatehouse> {
  const natsUrl = process.env.GATEHOUSE_TEST_NATS_URL;
  if (natsUrl === undefined || process.env.GATEHOUSE_TEST_DATABASE_URL === undefined) {
    throw new Error('GATEHOUSE_TEST_WORKERS needs GATEHOUSE_TEST_NATS_URL and GATEHOUSE_TEST_DATABASE_URL (docs/testing.md)');
  }
  const { log, ...overrides } = options;
  const nodeDatabase = env.GATEHOUSE_DATABASE_URL ?? databaseUrl(await schemaFor(dataDir));
  const given = Object.values(overrides).some((value) => value !== undefined);
  const node = await startGatehouseProcess(dataDir, {
    GATEHOUSE_WORKERS: String(workers), GATEHOUSE_NATS_URL: natsUrl, GATEHOUSE_DATABASE_URL: nodeDatabase,
    GATEHOUSE_LOG_LEVEL: log?.level ?? process.env.GATEHOUSE_TEST_LOG_LEVEL ?? 'warn', GATEHOUSE_CLUSTER_STREAM_MAX_MB: String(TEST_STREAM_MAX_MB),
    ...(given ? { [TEST_OVERRIDES_ENV]: JSON.stringify(overrides) } : {}), ...env,
  });
  if (log !== undefined) followLog(node, log.records);
  const surface: Record<string, unknown> = { url: node.url, adminToken: (await import('./gatehouse.ts')).TEST_ADMIN_TOKEN };
  for (const key of IN_MEMORY) {
    Object.defineProperty(surface, key, {
      get() {
        throw new Error(`GATEHOUSE_TEST_WORKERS: gatehouse.${key} lives in the worker processes, not in the test's (docs/testing.md)`);
      },
    });
  }
  return {
    gatehouse: surface as unknown as Gatehouse,
    dataDir,
    api: (method, urlPath, body, contentType) => node.api(method, urlPath, body, contentType),
    query: (sql, params) => queryDatabase({ databaseUrl: nodeDatabase, dataDir }, sql, params),
    async stop() {
      await node.stop();
      const code = await node.exited;
      if (code !== 0) throw new Error(`GATEHOUSE_WORKERS node exited ${code} at its stop (null: killed, its stop took too long): ${tail(node.stderr())}\n--- stdout (tail) ---\n${tail(node.stdout())}`);
    },
  };
}
