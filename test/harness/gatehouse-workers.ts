/**
 * `GATEHOUSE_TEST_WORKERS=N` (docs/testing.md): the in-process Gatehouse of the end-to-end suite replaced by
 * `npm start` (dist/main.mjs) with GATEHOUSE_WORKERS=N on the nats-server and PostgreSQL of GATEHOUSE_TEST_NATS_URL
 * and GATEHOUSE_TEST_DATABASE_URL, so the same test files run against a node of N worker processes. Each data
 * directory gets a PostgreSQL schema of its own (a restart on the directory finds its database again; removing
 * the directory drops it, and the installation's streams on the nats-server). What only a process's memory holds (the registry, runtime and platform objects, a
 * captured log, shortened internal timings) cannot reach the workers: using it fails with a message saying so.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import type { Gatehouse, GatehouseOverrides } from '../../src/app.ts';
import type { Logger } from '../../src/core/logger.ts';
import { startGatehouseProcess } from './gatehouse-process.ts';
import { deleteInstallationStreams, TEST_STREAM_MAX_MB } from './nats-streams.ts';
import type { TestGatehouse } from './gatehouse.ts';

/** The worker count the suite runs against, or undefined for the usual in-process Gatehouse. */
export function testWorkers(): number | undefined {
  const raw = process.env.GATEHOUSE_TEST_WORKERS;
  if (raw === undefined || raw === '') return undefined;
  if (!/^[1-9]\d?$/.test(raw)) throw new Error(`GATEHOUSE_TEST_WORKERS must be a worker count 1-99, got "${raw}"`);
  return Number(raw);
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

export async function startWorkersGatehouse(
  workers: number, dataDir: string, env: Record<string, string>, options: { logger?: Logger } & GatehouseOverrides,
): Promise<TestGatehouse> {
  const natsUrl = process.env.GATEHOUSE_TEST_NATS_URL;
  if (natsUrl === undefined || process.env.GATEHOUSE_TEST_DATABASE_URL === undefined) {
    throw new Error('GATEHOUSE_TEST_WORKERS needs GATEHOUSE_TEST_NATS_URL and GATEHOUSE_TEST_DATABASE_URL (docs/testing.md)');
  }
  const given = (Object.keys(options) as (keyof typeof options)[]).filter((key) => options[key] !== undefined);
  if (given.length > 0) {
    throw new Error(`GATEHOUSE_TEST_WORKERS: ${given.join(', ')} cannot reach worker processes (in-process overrides); `
      + 'this test runs only in-process (docs/testing.md lists it)');
  }
  const node = await startGatehouseProcess(dataDir, {
    GATEHOUSE_WORKERS: String(workers), GATEHOUSE_NATS_URL: natsUrl, GATEHOUSE_DATABASE_URL: databaseUrl(await schemaFor(dataDir)),
    GATEHOUSE_LOG_LEVEL: process.env.GATEHOUSE_TEST_LOG_LEVEL ?? 'warn', GATEHOUSE_CLUSTER_STREAM_MAX_MB: String(TEST_STREAM_MAX_MB), ...env,
  });
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
    async stop() {
      await node.stop();
      const code = await node.exited;
      if (code !== 0) throw new Error(`GATEHOUSE_WORKERS node exited ${code} at its stop: ${node.stderr()}`);
    },
  };
}
