/** Prometheus gauges and counters of the running gateways, read from engine counters at scrape time. */
import { Gauge, type Registry } from 'prom-client';
import type { BrokerStats } from '../broker/index.ts';
import type { GatewayRuntime } from './runtime.ts';

const COUNTERS: readonly (keyof BrokerStats)[] = [
  'connectionsAccepted', 'connectsRefused', 'messagesReceived', 'messagesDelivered', 'droppedOffline',
  'droppedSlowConsumer', 'droppedQueueFull', 'droppedExpired', 'droppedTooLarge', 'droppedUnauthorized', 'protocolErrors',
];

function snake(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

export function registerGatewayMetrics(registry: Registry, runtime: GatewayRuntime): void {
  // Values are copied from the engines when Prometheus scrapes, so the message path only bumps plain fields.
  const refresh = (): void => {
    for (const g of [connected, sessions, retained, auth, ...counters.values()]) g.reset();
    for (const instance of runtime.instances()) {
      const gateway = instance.config.name;
      const broker = instance.broker;
      connected.set({ gateway }, instance.connectedClients);
      sessions.set({ gateway }, broker.sessionCount);
      retained.set({ gateway }, broker.retained.size);
      for (const [result, n] of Object.entries(instance.authStats)) auth.set({ gateway, result }, n);
      for (const [name, gauge] of counters) gauge.set({ gateway }, broker.stats[name]);
    }
  };
  const connected = new Gauge({
    name: 'gatehouse_gateway_connected_clients', help: 'Connected MQTT clients per gateway', labelNames: ['gateway'], registers: [registry],
    collect: refresh,
  });
  const sessions = new Gauge({ name: 'gatehouse_gateway_sessions', help: 'MQTT sessions (connected and persistent) per gateway', labelNames: ['gateway'], registers: [registry] });
  const retained = new Gauge({ name: 'gatehouse_gateway_retained_messages', help: 'Retained messages per gateway', labelNames: ['gateway'], registers: [registry] });
  const auth = new Gauge({ name: 'gatehouse_gateway_auth_total', help: 'CONNECT verification outcomes per gateway (since the listener started)', labelNames: ['gateway', 'result'], registers: [registry] });
  const counters = new Map(COUNTERS.map((c) => [c, new Gauge({
    name: `gatehouse_gateway_${snake(c)}_total`,
    help: `Engine counter ${c} per gateway (since the listener started)`,
    labelNames: ['gateway'],
    registers: [registry],
  })]));
}
