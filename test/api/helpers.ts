/**
 * An API over a real SQLite file in a temporary directory, with a fake gateway runtime, driven through
 * fastify's `inject`.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Registry as MetricsRegistry } from 'prom-client';
import type { Static } from 'typebox';
import type { FunctionList, FunctionView } from '../../src/api/functions/schemas.ts';
import type { GatewayList, GatewaySaved } from '../../src/api/gateways/schemas.ts';
import type { DeviceList, DeviceView, ImportOperationView, ImportResultView, ProductView } from '../../src/api/products/schemas.ts';
import { buildApi, type Api } from '../../src/api/index.ts';
import { silentLogger } from '../../src/core/logger.ts';
import { createRegistry, type Registry, type ScryptCost } from '../../src/registry/index.ts';
import type { GatewayRuntime, GatewayState } from '../../src/registry/ports.ts';
import type { RegistryEventMap, RegistryEventName } from '../../src/registry/events.ts';
import { openStorage, type KyselyStorage } from '../../src/storage/index.ts';
import type { ApiCerts } from './certs.ts';

export const ADMIN_TOKEN = 'test-admin-token-0123456789abcdef';
export const MASTER_KEY = Buffer.alloc(32, 7);

/** Records calls; start answers RUNNING unless the test made a gateway fail. */
export class FakeRuntime implements GatewayRuntime {
  readonly calls: string[] = [];
  readonly states = new Map<string, GatewayState>();
  readonly failures = new Map<string, string>();

  startGateway(id: string): Promise<GatewayState> {
    this.calls.push(`start ${id}`);
    const reason = this.failures.get(id);
    this.states.set(id, reason === undefined
      ? { status: 'RUNNING', reason: null, connectedClients: 0 }
      : { status: 'ERROR', reason, connectedClients: 0 });
    return Promise.resolve(this.gatewayState(id));
  }

  stopGateway(id: string): Promise<GatewayState> {
    this.calls.push(`stop ${id}`);
    this.states.set(id, { status: 'STOPPED', reason: null, connectedClients: 0 });
    return Promise.resolve(this.gatewayState(id));
  }

  gatewayState(id: string): GatewayState {
    return this.states.get(id) ?? { status: 'STOPPED', reason: null, connectedClients: 0 };
  }

  settled(id: string): Promise<GatewayState> {
    return Promise.resolve(this.gatewayState(id));
  }
}

/** An answer; `json` is typed by the caller (`call<GatewayJson>(…)`), unchecked: the tests check it. */
export interface Reply<T = unknown> {
  status: number;
  body: string;
  json: T;
  headers: Record<string, unknown>;
}

export type GatewayJson = Static<typeof GatewaySaved>;
export type GatewayListJson = Static<typeof GatewayList>;
export type ProductJson = Static<typeof ProductView>;
export type DeviceJson = Static<typeof DeviceView>;
export type DeviceListJson = Static<typeof DeviceList>;
export type ImportJson = Static<typeof ImportResultView>;
export type ImportOperationJson = Static<typeof ImportOperationView>;
export type FunctionJson = Static<typeof FunctionView>;
export type FunctionListJson = Static<typeof FunctionList>;
export interface ErrorJson {
  error: { code: string; message: string; field: string | null };
}

interface CallOptions {
  json?: unknown;
  csv?: string;
  /** null: send no Authorization header. */
  token?: string | null;
  headers?: Record<string, string>;
}

export interface TestApi {
  app: Api;
  registry: Registry;
  storage: KyselyStorage;
  runtime: FakeRuntime;
  dataDir: string;
  /** Events in order, as `name` + payload. */
  events: { name: RegistryEventName; payload: unknown }[];
  /** Calls the API with the admin token unless `token` is given (null: no header). */
  call<T = unknown>(method: string, url: string, options?: CallOptions): Promise<Reply<T>>;
  close(): Promise<void>;
}

const EVENT_NAMES: RegistryEventName[] = [
  'gateway.created', 'gateway.updated', 'gateway.deleted', 'gateway.started', 'gateway.stopped', 'device.created',
  'device.updated', 'device.deleted', 'device.connected', 'device.disconnected', 'function.created', 'function.updated',
  'function.deleted',
];

export async function startTestApi(options: { now?: () => Date; publicHost?: string; passwordCost?: ScryptCost } = {}): Promise<TestApi> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'gatehouse-api-'));
  const storage = await openStorage({ dataDir, logger: silentLogger });
  const registry = await createRegistry({
    storage, masterKey: MASTER_KEY, publicHost: options.publicHost ?? 'gw.example.com', logger: silentLogger, now: options.now,
    passwordCost: options.passwordCost,
  });
  const events: TestApi['events'] = [];
  for (const name of EVENT_NAMES) {
    registry.events.on(name, (payload: RegistryEventMap[typeof name]) => events.push({ name, payload }));
  }
  const runtime = new FakeRuntime();
  const app = buildApi({ registry, runtime, logger: silentLogger, metricsRegistry: new MetricsRegistry(), adminToken: ADMIN_TOKEN });
  await app.ready();

  return {
    app, registry, storage, runtime, dataDir, events,
    async call<T>(method: string, url: string, { json, csv, token = ADMIN_TOKEN, headers = {} }: CallOptions = {}): Promise<Reply<T>> {
      const allHeaders: Record<string, string> = { ...headers };
      if (token !== null) allHeaders.authorization = `Bearer ${token}`;
      let payload: string | undefined;
      if (csv !== undefined) {
        allHeaders['content-type'] ??= 'text/csv';
        payload = csv;
      } else if (json !== undefined) {
        allHeaders['content-type'] ??= 'application/json';
        payload = JSON.stringify(json);
      }
      const response = await app.inject({ method: method as 'GET', url, headers: allHeaders, payload });
      let parsed: unknown;
      try {
        parsed = response.body === '' ? undefined : JSON.parse(response.body);
      } catch {
        parsed = undefined;
      }
      return { status: response.statusCode, body: response.body, json: parsed as T, headers: response.headers };
    },
    async close() {
      await app.close();
      await storage.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** A valid one-party gateway body; override what the test is about. */
export function gatewayBody(certs: ApiCerts, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    name: 'legacy_fleet',
    port: 8883,
    certificates: { serverCertificateChain: certs.chain, serverPrivateKey: certs.key },
    ...overrides,
  };
}

/** Asserts the error shape and returns the error. */
export function expectError(reply: Reply<unknown>, status: number, code: string, field?: string | null): ErrorJson['error'] {
  const error = (reply.json as Partial<ErrorJson> | undefined)?.error;
  if (reply.status !== status || error?.code !== code || (field !== undefined && error.field !== field)) {
    throw new Error(`expected ${status} ${code} field=${String(field)}, got ${reply.status} ${reply.body.slice(0, 500)}`);
  }
  return error;
}
