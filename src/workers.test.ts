import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Counter, Gauge, Registry } from 'prom-client';
import { aggregateWorkerMetrics, mergeCountersById, mergeLimitsUsage, mergeOcspStates, mergeReadiness } from './workers.ts';

/** One worker's registry as the primary receives it (getMetricsAsJSON). */
async function worker(figures: { accepted: number; connected: number; limitUse: Record<string, number>; cluster: number }): Promise<Awaited<ReturnType<Registry['getMetricsAsJSON']>>> {
  const registry = new Registry();
  new Counter({ name: 'gatehouse_gateway_connections_accepted_total', help: 'h', labelNames: ['gateway'], registers: [registry] }).inc({ gateway: 'g' }, figures.accepted);
  new Gauge({ name: 'gatehouse_gateway_connected_clients', help: 'h', labelNames: ['gateway'], registers: [registry] }).set({ gateway: 'g' }, figures.connected);
  const use = new Gauge({ name: 'gatehouse_gateway_limit_use', help: 'h', labelNames: ['gateway', 'limit'], registers: [registry] });
  for (const [limit, value] of Object.entries(figures.limitUse)) use.set({ gateway: 'g', limit }, value);
  new Gauge({ name: 'gatehouse_cluster_connected', help: 'h', registers: [registry] }).set(figures.cluster);
  new Gauge({ name: 'gatehouse_gateway_limit', help: 'h', labelNames: ['gateway', 'limit'], registers: [registry], aggregator: 'first' }).set({ gateway: 'g', limit: 'maxConnections' }, 10);
  new Gauge({ name: 'gatehouse_gateway_info', help: 'h', labelNames: ['gateway', 'gateway_id'], registers: [registry], aggregator: 'first' }).set({ gateway: 'g', gateway_id: 'id-g' }, 1);
  return registry.getMetricsAsJSON();
}

test('a machine-wide scrape: counters and connections summed, per-worker state labelled, a limit once, use against a per-device limit the highest, per address the primary\'s count', { timeout: 5_000 }, async () => {
  const byAddress = { mostOpenFromOneAddress: (id: string) => (id === 'id-g' ? 6 : 0) };
  const text = await aggregateWorkerMetrics([
    { nodeId: 'n-w1', metrics: await worker({ accepted: 3, connected: 2, limitUse: { maxConnections: 2, maxSubscriptionsPerDevice: 7, maxConnectionsPerAddress: 3 }, cluster: 1 }) },
    { nodeId: 'n-w2', metrics: await worker({ accepted: 4, connected: 1, limitUse: { maxConnections: 1, maxSubscriptionsPerDevice: 5, maxConnectionsPerAddress: 3 }, cluster: 0 }) },
  ], byAddress);
  const line = (prefix: string): string | undefined => text.split('\n').find((l) => l.startsWith(prefix));
  assert.equal(line('gatehouse_gateway_connections_accepted_total{gateway="g"}'), 'gatehouse_gateway_connections_accepted_total{gateway="g"} 7');
  assert.equal(line('gatehouse_gateway_connected_clients{gateway="g"}'), 'gatehouse_gateway_connected_clients{gateway="g"} 3');
  assert.equal(line('gatehouse_gateway_limit_use{gateway="g",limit="maxConnections"}'), 'gatehouse_gateway_limit_use{gateway="g",limit="maxConnections"} 3');
  assert.equal(line('gatehouse_gateway_limit_use{gateway="g",limit="maxSubscriptionsPerDevice"}'), 'gatehouse_gateway_limit_use{gateway="g",limit="maxSubscriptionsPerDevice"} 7');
  assert.equal(line('gatehouse_gateway_limit{gateway="g",limit="maxConnections"}'), 'gatehouse_gateway_limit{gateway="g",limit="maxConnections"} 10');
  // One address's 3 sockets on each worker are 6 on the machine (the highest of the workers' would say 3).
  assert.equal(line('gatehouse_gateway_limit_use{gateway="g",limit="maxConnectionsPerAddress"}'), 'gatehouse_gateway_limit_use{gateway="g",limit="maxConnectionsPerAddress"} 6');
  assert.equal(line('gatehouse_gateway_info{gateway="g",gateway_id="id-g"}'), 'gatehouse_gateway_info{gateway="g",gateway_id="id-g"} 1');
  assert.equal(line('gatehouse_cluster_connected{node_id="n-w1"}'), 'gatehouse_cluster_connected{node_id="n-w1"} 1');
  assert.equal(line('gatehouse_cluster_connected{node_id="n-w2"}'), 'gatehouse_cluster_connected{node_id="n-w2"} 0');
});

type Part = Parameters<typeof mergeReadiness>[0][number];
const ready: Part = { status: 'ready', checks: { storage: 'ok', gateways: 'ok', cluster: 'ok' }, gatewaysNotReady: [] };

test('/ready for the machine: every worker ready and every worker answered is ready, with workers ok', { timeout: 5_000 }, () => {
  assert.deepEqual(mergeReadiness([ready, ready], 0), {
    status: 'ready', checks: { storage: 'ok', gateways: 'ok', cluster: 'ok', workers: 'ok' }, gatewaysNotReady: [],
  });
});

test('/ready for the machine: one worker not ready makes it not ready; each check the worst, gateways the union by id (ERROR over STOPPED)', { timeout: 5_000 }, () => {
  const one: Part = {
    status: 'not_ready', checks: { storage: 'ok', gateways: 'error', cluster: 'unreachable' },
    gatewaysNotReady: [{ id: 'g2', status: 'STOPPED' }, { id: 'g1', status: 'STOPPED' }],
  };
  const other: Part = { status: 'not_ready', checks: { storage: 'error', gateways: 'unknown', cluster: 'ok' }, gatewaysNotReady: [] };
  const third: Part = { status: 'not_ready', checks: { storage: 'ok', gateways: 'error', cluster: 'ok' }, gatewaysNotReady: [{ id: 'g2', status: 'ERROR' }] };
  assert.deepEqual(mergeReadiness([one, other, third], 0), {
    status: 'not_ready', checks: { storage: 'error', gateways: 'error', cluster: 'unreachable', workers: 'ok' },
    gatewaysNotReady: [{ id: 'g1', status: 'STOPPED' }, { id: 'g2', status: 'ERROR' }],
  });
  // The same parts in another order: the same answer (ERROR is kept whichever worker said it first).
  assert.deepEqual(mergeReadiness([third, other, one], 0), mergeReadiness([one, other, third], 0));
  // unknown is worse than ok, error worse than unknown.
  assert.equal(mergeReadiness([ready, other], 0).checks.gateways, 'unknown');
  assert.equal(mergeReadiness([ready, { ...ready, checks: { ...ready.checks, cluster: 'unreachable' } }], 0).checks.cluster, 'unreachable');
});

test('/ready for the machine: a worker that gave no answer (late, missing, starting) makes it not ready even when every answer is ready', { timeout: 5_000 }, () => {
  assert.deepEqual(mergeReadiness([ready], 1), {
    status: 'not_ready', checks: { storage: 'ok', gateways: 'ok', cluster: 'ok', workers: 'error' }, gatewaysNotReady: [],
  });
  // No answer at all: nothing confirmed that storage answers or which gateways run.
  assert.deepEqual(mergeReadiness([], 2), { status: 'not_ready', checks: { storage: 'error', gateways: 'unknown', workers: 'error' }, gatewaysNotReady: [] });
});

test('/ready for the machine: a cluster check only when the workers gave one', { timeout: 5_000 }, () => {
  const single: Part = { status: 'ready', checks: { storage: 'ok', gateways: 'ok' }, gatewaysNotReady: [] };
  assert.deepEqual(mergeReadiness([single], 0).checks, { storage: 'ok', gateways: 'ok', workers: 'ok' });
});

test('counters by id over the workers: each id\'s numbers summed, a flag true where any worker\'s is, an id one worker lacks kept', { timeout: 5_000 }, () => {
  const merged = mergeCountersById([
    { g1: { parsed: 2, failed: 1, dropped: 0, enabled: false }, g2: { parsed: 5, failed: 0, dropped: 1, enabled: true } },
    { g1: { parsed: 3, failed: 4, dropped: 2, enabled: true } },
    {},
  ]);
  assert.deepEqual(merged, {
    g1: { parsed: 5, failed: 5, dropped: 2, enabled: true },
    g2: { parsed: 5, failed: 0, dropped: 1, enabled: true },
  });
  assert.deepEqual(mergeCountersById([]), {});
});

test('a gateway\'s certificate checks over the workers: counters summed, the latest error, stapling only if every worker staples, the weakest staple shown', { timeout: 5_000 }, () => {
  const server = (stapling: boolean, thisUpdate: string | null, served: number, lastError: { at: string; reason: string } | null) => ({
    stapling, certStatus: thisUpdate === null ? null : 'good' as const, thisUpdate, nextUpdate: null, fetchedAt: thisUpdate, ageSeconds: thisUpdate === null ? null : 1,
    expiresAt: null, nextRefreshAt: null, staplesServed: served, responderErrors: { network: 1 }, lastError,
  });
  const client = (good: number, lastError: { at: string; reason: string } | null) => ({
    onResponderFailure: 'REJECT' as const, checks: { good, revoked: 1, unknown: 0, responder_error: 0 }, cacheHits: good - 1, cacheSize: 1,
    responderErrors: { timeout: 2 }, lastError, revokedWhileConnected: 0,
  });
  const early = { at: '2026-12-06T01:00:00.000Z', reason: 'network: refused' };
  const late = { at: '2026-12-06T02:00:00.000Z', reason: 'timeout' };
  const w1 = { mode: 'SERVER_AND_CLIENT' as const, server: server(true, '2026-12-06T00:10:00Z', 3, late), client: client(2, early), x509Refusals: { cert_has_expired: 1 } };
  const w2 = { mode: 'SERVER_AND_CLIENT' as const, server: server(true, '2026-12-06T00:05:00Z', 4, null), client: client(3, late), x509Refusals: { cert_has_expired: 2, unable_to_verify_leaf_signature: 1 } };
  const both = mergeOcspStates([w1, w2]);
  assert.deepEqual(both.client, {
    onResponderFailure: 'REJECT', checks: { good: 5, revoked: 2, unknown: 0, responder_error: 0 }, cacheHits: 3, cacheSize: 2,
    responderErrors: { timeout: 4 }, lastError: late, revokedWhileConnected: 0,
  });
  assert.deepEqual(both.server, { ...w2.server, staplesServed: 7, responderErrors: { network: 2 }, lastError: late }); // the older response
  assert.deepEqual(both.x509Refusals, { cert_has_expired: 3, unable_to_verify_leaf_signature: 1 });
  // One worker without a staple (its response expired, or not fetched yet): the machine does not staple, and shows that one.
  const paused = mergeOcspStates([w1, { ...w2, server: server(false, null, 4, null) }]);
  assert.equal(paused.server?.stapling, false);
  assert.equal(paused.server?.thisUpdate, null);
  assert.equal(mergeOcspStates([{ ...w1, server: null, client: null }]).server, null);
});

test('a gateway\'s use of its limits over the workers: refusals summed, the level the highest, maxConnections (each worker\'s is the cluster\'s) the highest of both', { timeout: 5_000 }, () => {
  const use = (current: number | null, hits: number): { current: number | null; hits: number } => ({ current, hits });
  const merged = mergeLimitsUsage([
    { maxConnections: use(3, 1), maxQueuedBytesPerDevice: use(0, 0), maxPacketSize: use(null, 2), maxRetainedMessages: use(4, 1) },
    { maxConnections: use(3, 1), maxQueuedBytesPerDevice: use(2100, 2), maxPacketSize: use(null, 1), maxRetainedMessages: use(4, 0) },
    { maxConnections: use(2, 0), maxQueuedBytesPerDevice: use(null, 0), maxPacketSize: use(null, 0), maxRetainedMessages: use(null, 0) },
  ] as never[]) as unknown as Record<string, { current: number | null; hits: number }>;
  assert.deepEqual(merged, {
    maxConnections: use(3, 1),
    maxQueuedBytesPerDevice: use(2100, 2),
    maxPacketSize: use(null, 3),
    maxRetainedMessages: use(4, 1),
  });
});
