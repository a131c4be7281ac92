/**
 * The REST API (DESIGN.md "REST API (v1)"): one plugin per resource under /api/v1 behind the admin
 * token, OpenAPI at /api/docs. Returns the fastify instance unstarted; `main` adds what else it serves
 * and calls `listen`.
 */
import { TypeBoxValidatorCompiler, type TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Registry as MetricsRegistry } from 'prom-client';
import type { Logger } from '../core/logger.ts';
import type { GatewayOcspState, GatewayRuntime } from '../registry/ports.ts';
import type { GatewayLimitsUsage } from '../registry/gateway-limits.ts';
import type { Registry } from '../registry/registry.ts';
import type { RegistryEvents } from '../registry/events.ts';
import type { ConnectionEventRecorder, ParsingStats, Platform, WebhookStats } from '../platform/index.ts';
import { deviceSessionRoutes } from './device-sessions/routes.ts';
import { eventRoutes } from './events/routes.ts';
import { bearerAuth } from './auth.ts';
import { installErrorHandling, notFound } from './errors.ts';
import { certificateRoutes } from './certificates/routes.ts';
import { registerConsole, type ConsoleOptions } from './console.ts';
import { functionRoutes } from './functions/routes.ts';
import { gatewayRoutes } from './gateways/routes.ts';
import { messageRoutes } from './messages/routes.ts';
import { registerOpenApi } from './openapi.ts';
import { operationsRoutes } from './operations/routes.ts';
import { probeRoutes, type Readiness } from './operations/probes.ts';
import { parsingRoutes } from './parsing/routes.ts';
import { productRoutes } from './products/routes.ts';
import { streamRoutes } from './stream/routes.ts';
import { webhookRoutes } from './webhooks/routes.ts';

export const API_PREFIX = '/api/v1';
export { readinessCheck, type Readiness } from './operations/probes.ts';

export interface ApiDependencies {
  registry: Registry;
  runtime: GatewayRuntime;
  logger: Logger;
  metricsRegistry: MetricsRegistry;
  /** The /metrics body: the registry's text, or under GATEHOUSE_WORKERS every worker's aggregated (workers.ts). */
  scrapeMetrics?: () => Promise<string>;
  /** Every /api/v1 request must carry `Authorization: Bearer <adminToken>`. */
  adminToken: string;
  /** Messages, stream, downlink, webhooks and parsing; absent in API tests that run without a data plane. */
  platform?: Platform;
  /** Connection events (/events); absent in API tests that run without a data plane. */
  connectionEvents?: ConnectionEventRecorder;
  /** Serve the web console (console/dist) at / with index.html for its routes; absent in API tests. */
  console?: ConsoleOptions;
  /** A cluster node: whether it reaches the other nodes, for `/ready`; absent for a single process. */
  clusterReachable?: () => boolean;
  /** The /ready answer: this process's checks, or under GATEHOUSE_WORKERS the machine's (workers.ts). */
  readiness?: () => Promise<Readiness>;
  /** `GET /gateways/:id/parsing`: the platform's counters, or under GATEHOUSE_WORKERS the machine's (workers.ts). */
  parsingStats?: (gatewayId: string) => Promise<ParsingStats>;
  /** Every webhook's delivery counters by id: the platform's, or under GATEHOUSE_WORKERS the machine's (workers.ts). */
  webhookStats?: () => Promise<Record<string, WebhookStats>>;
  /** A gateway's `ocspStatus` in `GET /gateways/:id`: under GATEHOUSE_WORKERS the machine's (workers.ts); absent: the runtime's. */
  ocspStates?: () => Promise<Record<string, GatewayOcspState>>;
  /** A gateway's `limitsUsage` in `GET /gateways/:id`: under GATEHOUSE_WORKERS the machine's (workers.ts); absent: the runtime's. */
  limitsUsages?: () => Promise<Record<string, GatewayLimitsUsage>>;
}

export type Api = FastifyInstance;

export function buildApi(deps: ApiDependencies): Api {
  // pino 10's Logger is wider than the pino 9 type fastify 5 declares; it is the same logger at run time.
  const logger: FastifyBaseLogger = deps.logger.child({ component: 'api' });
  const app = Fastify({
    loggerInstance: logger,
    // One line per request from our own hook below instead of fastify's two.
    logController: new LogController({ disableRequestLogging: true }),
    // Operator code (scripts, functions) and certificate chains fit; imports raise it per route.
    bodyLimit: 1024 * 1024,
  });

  // TypeBox's compiler does not coerce bodies: "8883" is not a port.
  app.setValidatorCompiler(TypeBoxValidatorCompiler);
  installErrorHandling(app);
  app.setNotFoundHandler(deps.console === undefined ? notFound : registerConsole(app, notFound, deps.console));

  app.addHook('onResponse', (request, reply, done) => {
    request.log.info({
      method: request.method, url: request.url.split('?')[0], status: reply.statusCode, ms: Math.round(reply.elapsedTime),
    }, 'api_request');
    done();
  });

  registerOpenApi(app);
  // Outside /api/v1 and its token: probes must answer a load balancer that holds no secret.
  void app.withTypeProvider<TypeBoxTypeProvider>().register(probeRoutes, {
    registry: deps.registry, runtime: deps.runtime, ...(deps.clusterReachable === undefined ? {} : { clusterReachable: deps.clusterReachable }),
    ...(deps.readiness === undefined ? {} : { readiness: deps.readiness }),
  });
  void app.withTypeProvider<TypeBoxTypeProvider>().register((v1, _options, done) => {
    v1.addHook('onRequest', bearerAuth(deps.adminToken));
    answerOnceApplied(v1, () => deps.registry.events);
    // Unknown /api/v1 paths also need the token: without it, 401 rather than a map of what exists.
    v1.setNotFoundHandler(notFound);
    void v1.register(gatewayRoutes, {
      registry: deps.registry, runtime: deps.runtime, ...(deps.ocspStates === undefined ? {} : { ocspStates: deps.ocspStates }),
      ...(deps.limitsUsages === undefined ? {} : { limitsUsages: deps.limitsUsages }),
    });
    void v1.register(productRoutes, { registry: deps.registry });
    void v1.register(functionRoutes, { registry: deps.registry });
    void v1.register(certificateRoutes);
    void v1.register(operationsRoutes, {
      registry: deps.registry, metricsRegistry: deps.metricsRegistry, scrape: deps.scrapeMetrics ?? (() => deps.metricsRegistry.metrics()),
    });
    if (deps.connectionEvents !== undefined) void v1.register(eventRoutes, { connectionEvents: deps.connectionEvents });
    if (deps.platform !== undefined) {
      const platform = deps.platform;
      void v1.register(messageRoutes, { registry: deps.registry, platform });
      void v1.register(deviceSessionRoutes, { registry: deps.registry, platform });
      void v1.register(streamRoutes, { platform });
      void v1.register(webhookRoutes, {
        registry: deps.registry, stats: deps.webhookStats ?? (() => Promise.resolve(platform.webhookStatsById())),
      });
      void v1.register(parsingRoutes, {
        registry: deps.registry, platform, stats: deps.parsingStats ?? ((gatewayId) => Promise.resolve(platform.parsingStats(gatewayId))),
      });
    }
    done();
  }, { prefix: API_PREFIX });

  return app;
}

/**
 * A change made through the API is answered once it is applied: by this node's runtime and platform, and on a cluster
 * by every other live node (registry events.ts `applied`, bounded). A caller that reads or connects anywhere right
 * after the answer finds the change in force there: a gateway created listens on every node, narrowed rules are what
 * every node enforces, a deleted device is refused everywhere.
 */
function answerOnceApplied(api: FastifyInstance, events: () => RegistryEvents): void {
  // `events` is read in the hooks, never while routes register (the OpenAPI document is built without a registry).
  const since = new WeakMap<object, number>();
  api.addHook('onRequest', (request, _reply, done) => {
    if (request.method !== 'GET' && request.method !== 'HEAD') since.set(request, events().emitted);
    done();
  });
  api.addHook('onSend', async (request, _reply, payload) => {
    const from = since.get(request);
    if (from !== undefined) await events().applied(from);
    return payload;
  });
}

