import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Counter, Gauge, Registry } from 'prom-client';
import { aggregateWorkerMetrics } from './workers.ts';

/** One worker's registry as the primary receives it (getMetricsAsJSON). */
async function worker(figures: { accepted: number; connected: number; limitUse: Record<string, number>; cluster: number }): Promise<Awaited<ReturnType<Registry['getMetricsAsJSON']>>> {
  const registry = new Registry();
  new Counter({ name: 'gatehouse_gateway_connections_accepted_total', help: 'h', labelNames: ['gateway'], registers: [registry] }).inc({ gateway: 'g' }, figures.accepted);
  new Gauge({ name: 'gatehouse_gateway_connected_clients', help: 'h', labelNames: ['gateway'], registers: [registry] }).set({ gateway: 'g' }, figures.connected);
  const use = new Gauge({ name: 'gatehouse_gateway_limit_use', help: 'h', labelNames: ['gateway', 'limit'], registers: [registry] });
  for (const [limit, value] of Object.entries(figures.limitUse)) use.set({ gateway: 'g', limit }, value);
  new Gauge({ name: 'gatehouse_cluster_connected', help: 'h', registers: [registry] }).set(figures.cluster);
  new Gauge({ name: 'gatehouse_gateway_limit', help: 'h', labelNames: ['gateway', 'limit'], registers: [registry], aggregator: 'first' }).set({ gateway: 'g', limit: 'maxConnections' }, 10);
  return registry.getMetricsAsJSON();
}

test('a machine-wide scrape: counters and connections summed, per-worker state labelled, a limit once, use against a per-device limit the highest', { timeout: 5_000 }, async () => {
  const text = await aggregateWorkerMetrics([
    { nodeId: 'n-w1', metrics: await worker({ accepted: 3, connected: 2, limitUse: { maxConnections: 2, maxSubscriptionsPerDevice: 7 }, cluster: 1 }) },
    { nodeId: 'n-w2', metrics: await worker({ accepted: 4, connected: 1, limitUse: { maxConnections: 1, maxSubscriptionsPerDevice: 5 }, cluster: 0 }) },
  ]);
  const line = (prefix: string): string | undefined => text.split('\n').find((l) => l.startsWith(prefix));
  assert.equal(line('gatehouse_gateway_connections_accepted_total{gateway="g"}'), 'gatehouse_gateway_connections_accepted_total{gateway="g"} 7');
  assert.equal(line('gatehouse_gateway_connected_clients{gateway="g"}'), 'gatehouse_gateway_connected_clients{gateway="g"} 3');
  assert.equal(line('gatehouse_gateway_limit_use{gateway="g",limit="maxConnections"}'), 'gatehouse_gateway_limit_use{gateway="g",limit="maxConnections"} 3');
  assert.equal(line('gatehouse_gateway_limit_use{gateway="g",limit="maxSubscriptionsPerDevice"}'), 'gatehouse_gateway_limit_use{gateway="g",limit="maxSubscriptionsPerDevice"} 7');
  assert.equal(line('gatehouse_gateway_limit{gateway="g",limit="maxConnections"}'), 'gatehouse_gateway_limit{gateway="g",limit="maxConnections"} 10');
  assert.equal(line('gatehouse_cluster_connected{node_id="n-w1"}'), 'gatehouse_cluster_connected{node_id="n-w1"} 1');
  assert.equal(line('gatehouse_cluster_connected{node_id="n-w2"}'), 'gatehouse_cluster_connected{node_id="n-w2"} 0');
});
