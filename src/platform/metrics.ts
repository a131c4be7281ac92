/** Prometheus gauges of the platform side, copied from its plain counters at scrape time. */
import { Gauge, type Registry } from 'prom-client';
import type { Platform } from './platform.ts';
import type { ConnectionEventRecorder } from './connection-events.ts';

export function registerPlatformMetrics(registry: Registry, platform: Platform): void {
  const refresh = (): void => {
    for (const g of [parsing, store, propertyRefusals, journal, webhooks, webhookQueued]) g.reset();
    for (const { gateway, counters } of platform.allParsingStats()) {
      for (const result of ['parsed', 'failed', 'dropped', 'shed'] as const) parsing.set({ gateway, result }, counters[result]);
    }
    const s = platform.storeStats();
    store.set({ result: 'written' }, s.written);
    store.set({ result: 'dropped' }, s.dropped);
    store.set({ result: 'failed' }, s.failed);
    store.set({ result: 'pending' }, s.pending);
    const refused = platform.propertyRefusals();
    propertyRefusals.set({ reason: 'too_many' }, refused.too_many);
    propertyRefusals.set({ reason: 'too_large' }, refused.too_large);
    const j = platform.journalStats();
    if (j !== null) {
      journal.set({ result: 'journaled' }, j.journaled);
      journal.set({ result: 'failed' }, j.failed);
    }
    for (const webhook of platform.webhookIds()) {
      const w = platform.webhookStats(webhook);
      if (w === undefined) continue;
      webhooks.set({ webhook, result: 'delivered' }, w.delivered);
      webhooks.set({ webhook, result: 'retried' }, w.retried);
      webhooks.set({ webhook, result: 'dead_lettered' }, w.deadLettered);
      webhooks.set({ webhook, result: 'dropped' }, w.dropped);
      webhookQueued.set({ webhook }, w.queued + w.inFlight);
      webhookHeldBytes.set({ webhook }, w.heldBytes);
    }
  };
  // prom-client collects in registration order: the first gauge's collect() refreshes them all.
  const parsing = new Gauge({
    name: 'gatehouse_parsing_messages_total', help: 'Data parsing outcomes per gateway since start (parsed, failed, dropped: its queue full, shed: the event loop saturated)',
    labelNames: ['gateway', 'result'], registers: [registry], collect: refresh,
  });
  const store = new Gauge({
    name: 'gatehouse_message_store_messages', help: 'Message store: written, dropped (buffer full), failed (database error) since start; pending now',
    labelNames: ['result'], registers: [registry],
  });
  const propertyRefusals = new Gauge({
    name: 'gatehouse_device_property_posts_refused', help: 'Property posts refused since start because the device would exceed its property count (too_many) or bytes (too_large)',
    labelNames: ['reason'], registers: [registry],
  });
  const journal = new Gauge({
    name: 'gatehouse_uplink_journal_messages', help: 'QoS 1/2 uplinks journaled before their acknowledgement since start, and journal writes that failed',
    labelNames: ['result'], registers: [registry],
  });
  const webhooks = new Gauge({
    name: 'gatehouse_webhook_deliveries_total', help: 'Webhook deliveries since start by result (delivered, retried, dead_lettered, dropped)',
    labelNames: ['webhook', 'result'], registers: [registry],
  });
  const webhookQueued = new Gauge({
    name: 'gatehouse_webhook_pending', help: 'Webhook deliveries queued, waiting for a retry or in flight', labelNames: ['webhook'], registers: [registry],
  });
  new Gauge({
    name: 'gatehouse_event_loop_saturated', help: 'Whether the event loop is saturated now (1): data parsing of a gateway whose queue overflows is shed until it is free',
    registers: [registry], collect() {
      this.set(platform.loopPressure.saturated ? 1 : 0);
    },
  });
  new Gauge({
    name: 'gatehouse_event_loop_saturations_total', help: 'Times the event loop became saturated since start (a second or more busy at least 90 % of the time)',
    registers: [registry], collect() {
      this.set(platform.loopPressure.episodes);
    },
  });
  const webhookHeldBytes = new Gauge({
    name: 'gatehouse_webhook_held_bytes', help: 'Bytes of webhook delivery bodies held in memory (bounded by webhooks.maxQueuedBytes)',
    labelNames: ['webhook'], registers: [registry],
  });
}

/** Connection events: recorded as rows, folded into rows, dropped (over the byte bound or a failed write), bytes held. */
export function registerConnectionEventMetrics(registry: Registry, recorder: ConnectionEventRecorder): void {
  const events = new Gauge({
    name: 'gatehouse_connection_events_total', help: 'Connection events since start: recorded (a row), folded (counted into a row), dropped',
    labelNames: ['result'], registers: [registry],
    collect() {
      const s = recorder.stats;
      events.set({ result: 'recorded' }, s.recorded);
      events.set({ result: 'folded' }, s.folded);
      events.set({ result: 'dropped' }, s.dropped);
    },
  });
  const held = new Gauge({
    name: 'gatehouse_connection_events_held_bytes', help: 'Approximate bytes of connection events held in memory (folds and rows waiting for their write)',
    registers: [registry],
    collect() {
      held.set(recorder.stats.heldBytes);
    },
  });
}
