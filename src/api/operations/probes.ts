/**
 * Probes at the root, without the admin token, for load balancers and orchestrators: `/health` says the
 * process answers (liveness), `/ready` says it can do its job (storage answers, every gateway the operator
 * left on is listening, and a cluster node reaches NATS). They answer states and gateway ids only: nothing an unauthenticated caller could
 * use (no names, ports, reasons, counts of devices; under GATEHOUSE_WORKERS no node ids, pids or worker numbers).
 */
import type { FastifyPluginCallbackTypebox } from '@fastify/type-provider-typebox';
import { Type, type Static } from 'typebox';
import type { GatewayRuntime } from '../../registry/ports.ts';
import type { Registry } from '../../registry/registry.ts';

export interface ReadinessCheckOptions {
  registry: Registry;
  runtime: GatewayRuntime;
  /** A cluster node: whether it reaches the other nodes (NATS); absent for a single process. */
  clusterReachable?: () => boolean;
}

export interface ProbeRoutesOptions extends ReadinessCheckOptions {
  /** The /ready answer when it is not this process's own checks: under GATEHOUSE_WORKERS the machine's (workers.ts). */
  readiness?: () => Promise<Readiness>;
}

const Alive = Type.Object({ status: Type.Literal('ok'), uptimeSeconds: Type.Number() });

const ReadinessSchema = Type.Object({
  status: Type.Enum(['ready', 'not_ready']),
  checks: Type.Object({
    storage: Type.Enum(['ok', 'error']),
    /** `unknown` when storage cannot say which gateways should run. */
    gateways: Type.Enum(['ok', 'error', 'unknown']),
    /**
     * A cluster node only: `unreachable` while it cannot reach NATS; it then refuses new CONNECTs and QoS 1/2
     * PUBLISHes (it fails closed), so a load balancer should send devices to another node.
     */
    cluster: Type.Optional(Type.Enum(['ok', 'unreachable'])),
    /**
     * Under GATEHOUSE_WORKERS only (the answer is the machine's, every worker's checks merged, worst first):
     * `error` while a worker is missing (dead, being restarted, still starting) or did not answer within 2 s.
     * Which worker is not said here; the primary's log says (`gather_workers_missing`).
     */
    workers: Type.Optional(Type.Enum(['ok', 'error'])),
  }),
  /** Gateways the operator left on whose listener is not up, by id, with their status. */
  gatewaysNotReady: Type.Array(Type.Object({ id: Type.String(), status: Type.Enum(['STOPPED', 'ERROR']) })),
});

/** A /ready answer: one process's checks, or under GATEHOUSE_WORKERS the machine's. */
export type Readiness = Static<typeof ReadinessSchema>;

/** This process's readiness: the checks /ready makes (a storage query, each enabled gateway's state, NATS). */
export function readinessCheck({ registry, runtime, clusterReachable }: ReadinessCheckOptions, log: { error(details: object, msg: string): void }): () => Promise<Readiness> {
  const clusterCheck = (): { cluster?: 'ok' | 'unreachable' } =>
    (clusterReachable === undefined ? {} : { cluster: clusterReachable() ? 'ok' : 'unreachable' });
  return async () => {
    let gateways;
    try {
      gateways = await registry.gateways.list(); // a query: also the storage check
    } catch (error) {
      log.error({ err: error }, 'ready_storage_failed');
      return { status: 'not_ready', checks: { storage: 'error', gateways: 'unknown', ...clusterCheck() }, gatewaysNotReady: [] };
    }
    const gatewaysNotReady: Readiness['gatewaysNotReady'] = [];
    for (const gateway of gateways) {
      if (!gateway.enabled) continue; // stopped on purpose: not a fault
      const { status } = runtime.gatewayState(gateway.id);
      if (status !== 'RUNNING') gatewaysNotReady.push({ id: gateway.id, status });
    }
    const cluster = clusterCheck();
    const ready = gatewaysNotReady.length === 0 && cluster.cluster !== 'unreachable';
    return {
      status: ready ? 'ready' : 'not_ready', checks: { storage: 'ok', gateways: gatewaysNotReady.length === 0 ? 'ok' : 'error', ...cluster }, gatewaysNotReady,
    };
  };
}

const tags = ['operations'];

export const probeRoutes: FastifyPluginCallbackTypebox<ProbeRoutesOptions> = (app, options, done) => {
  const startedAt = Date.now();
  const readiness = options.readiness ?? readinessCheck(options, app.log);

  // `security: []`: the one place of the API without the bearer token (OpenAPI says so too).
  app.get('/health', {
    schema: { tags, summary: 'Liveness probe (no token): the process answers', security: [], response: { 200: Alive } },
  }, () => ({ status: 'ok' as const, uptimeSeconds: Math.round((Date.now() - startedAt) / 1000) }));

  app.get('/ready', {
    schema: {
      tags, summary: 'Readiness probe (no token): storage answers, every enabled gateway is listening, and a cluster node reaches NATS',
      security: [], response: { 200: ReadinessSchema, 503: ReadinessSchema },
    },
  }, async (_request, reply) => {
    const answer = await readiness();
    return reply.status(answer.status === 'ready' ? 200 : 503).send(answer);
  });

  done();
};
