/** /health and /metrics: for load balancers, orchestrators and Prometheus. */
import type { FastifyPluginCallbackTypebox } from '@fastify/type-provider-typebox';
import type { Registry as MetricsRegistry } from 'prom-client';
import { Type } from 'typebox';
import type { Registry } from '../../registry/registry.ts';
import { errorResponses } from '../common-schemas.ts';

export interface OperationsRoutesOptions {
  registry: Registry;
  metricsRegistry: MetricsRegistry;
  /** The exposition: this process's registry, or the machine's under GATEHOUSE_WORKERS. */
  scrape: () => Promise<string>;
}

const Health = Type.Object({
  status: Type.Enum(['ok', 'degraded']),
  checks: Type.Object({ storage: Type.Enum(['ok', 'error']) }),
  uptimeSeconds: Type.Number(),
});

const tags = ['operations'];

export const operationsRoutes: FastifyPluginCallbackTypebox<OperationsRoutesOptions> = (app, { registry, metricsRegistry, scrape }, done) => {
  const startedAt = Date.now();

  app.get('/health', {
    schema: { tags, summary: 'Liveness and storage reachability', response: { 200: Health, 503: Health, ...errorResponses } },
  }, async (_request, reply) => {
    const uptimeSeconds = Math.round((Date.now() - startedAt) / 1000);
    try {
      await registry.ping();
      return { status: 'ok' as const, checks: { storage: 'ok' as const }, uptimeSeconds };
    } catch (error) {
      app.log.error({ err: error }, 'health_storage_failed');
      return reply.status(503).send({ status: 'degraded', checks: { storage: 'error' }, uptimeSeconds });
    }
  });

  app.get('/metrics', {
    schema: {
      tags, summary: 'Prometheus metrics (text exposition format)',
      response: { 200: Type.String({ description: 'text/plain; version=0.0.4' }), ...errorResponses },
    },
  }, async (_request, reply) => {
    const body = await scrape();
    return reply.header('content-type', metricsRegistry.contentType).send(body);
  });

  done();
};
