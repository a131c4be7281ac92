/**
 * Delivers platform events to the operator's webhooks, at least once: each event is POSTed as JSON
 * with its id (the receiver's deduplication key) and an HMAC-SHA256 signature, retried with
 * exponential backoff and jitter, and recorded as a dead letter after the last attempt. Every
 * webhook has its own bounded queue and connection pool, so a slow or dead endpoint delays only
 * itself and never the MQTT path (which only appends to the queue).
 */
import { createHmac, randomInt } from 'node:crypto';
import tls from 'node:tls';
import { Agent, request } from 'undici';
import type { Logger } from '../core/logger.ts';
import type { DeadLetterRecord, OutboxClaim, OutboxEntry, WebhookEventType, WebhookTarget } from '../registry/index.ts';
import type { EventHub } from './event-hub.ts';
import type { PlatformEvent } from './events.ts';
import { newEventId } from './ids.ts';
import { Outbox, type OutboxStore } from './outbox.ts';

export interface WebhookOptions {
  /** Attempts in all, the first included. */
  maxAttempts: number;
  /** Delay before the second attempt; doubled for each further one. */
  baseDelayMs: number;
  maxDelayMs: number;
  /** Connect, response headers and body, each. */
  timeoutMs: number;
  /** Requests in flight per webhook. */
  concurrency: number;
  /**
   * Deliveries held per webhook (queued, in flight, or waiting for a retry); beyond it the oldest
   * waiting one is dropped (and counted), as it is beyond `maxQueuedBytes` of bodies.
   */
  maxQueued: number;
  maxQueuedBytes: number;
}

export interface WebhookSource extends OutboxStore {
  targets(): Promise<WebhookTarget[]>;
  recordDeadLetter(record: DeadLetterRecord): Promise<void>;
  claimOutbox(webhookId: string, claim: OutboxClaim & { now: string; own: boolean }, limit: number): Promise<OutboxEntry[]>;
  renewOutboxClaims(claim: OutboxClaim): Promise<number>;
}

/**
 * Who sends the outbox's rows (issue 16 item 7). Each row is claimed by the node that sends it, so a node
 * that starts takes only rows nobody holds, never those a live node is sending; in a cluster (`shared`) a
 * node renews its claims and takes the rows whose claim lapsed (their node died) every third of `claimMs`.
 */
export interface OutboxNode {
  nodeId: string;
  /** How long a claim lasts unless renewed (a cluster node's lease). */
  claimMs: number;
  /** Other nodes share the outbox (a cluster); false: one process, which claims at start only and pays nothing after. */
  shared: boolean;
}

export const SIGNATURE_HEADER = 'x-gatehouse-signature';
export const EVENT_ID_HEADER = 'x-gatehouse-event-id';
export const EVENT_TYPE_HEADER = 'x-gatehouse-event-type';

/** `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`: the time is signed so a captured request cannot be replayed later. */
export function signBody(secret: string, body: string, unixSeconds: number): string {
  const mac = createHmac('sha256', secret).update(`${unixSeconds}.${body}`).digest('hex');
  return `t=${unixSeconds},v1=${mac}`;
}

interface Delivery {
  eventId: string;
  type: PlatformEvent['type'];
  body: string;
  attempts: number;
  lastError: string;
}

export interface WebhookStats {
  delivered: number;
  retried: number;
  deadLettered: number;
  dropped: number;
  queued: number;
  inFlight: number;
  /** Bytes of the bodies of every delivery held (queued, in flight, waiting for a retry). */
  heldBytes: number;
}

/** One webhook: its queue, its pool, its retry timers. */
class Endpoint {
  target: WebhookTarget;
  readonly stats = { delivered: 0, retried: 0, deadLettered: 0, dropped: 0 };
  #agent: Agent;
  readonly #queue: Delivery[] = [];
  /** Deliveries waiting for their next attempt, oldest first, with their timers. */
  readonly #waiting = new Map<Delivery, NodeJS.Timeout>();
  /** Every delivery accepted and not yet delivered, dead-lettered or dropped: in count and bytes. */
  #held = 0;
  #heldBytes = 0;
  #inFlight = 0;
  #closed = false;
  readonly #options: WebhookOptions;
  readonly #source: WebhookSource;
  readonly #outbox: Outbox;
  readonly #log: Logger;

  constructor(target: WebhookTarget, options: WebhookOptions, source: WebhookSource, outbox: Outbox, log: Logger) {
    this.target = target;
    this.#options = options;
    this.#source = source;
    this.#outbox = outbox;
    this.#log = log.child({ webhookId: target.id });
    this.#agent = this.#newAgent();
  }

  /** Deliveries waiting: for a free request slot or for their next attempt. */
  get queued(): number {
    return this.#queue.length + this.#waiting.size;
  }

  get heldBytes(): number {
    return this.#heldBytes;
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  /** Deliveries accepted and not yet delivered, dead-lettered or dropped. */
  get held(): number {
    return this.#held;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** A changed URL, secret or CA applies to the next request. */
  retarget(target: WebhookTarget): void {
    const caChanged = target.caCertificate !== this.target.caCertificate;
    this.target = target;
    if (caChanged) {
      void this.#agent.close();
      this.#agent = this.#newAgent();
    }
  }

  /** Webhooks carry device data and presence; connection events stay on /stream and /events. */
  wants(event: PlatformEvent): event is PlatformEvent & { type: WebhookEventType } {
    return event.type !== 'connection' && this.target.eventTypes.includes(event.type)
      && (this.target.gatewayId === null || this.target.gatewayId === event.gatewayId);
  }

  enqueue(event: PlatformEvent & { type: WebhookEventType }, body: string): void {
    this.#outbox.add({ webhookId: this.target.id, eventId: event.id, eventType: event.type, body, createdAt: new Date().toISOString() });
    this.#accept({ eventId: event.id, type: event.type, body, attempts: 0, lastError: '' });
  }

  /** Deliveries a previous run left unacknowledged (already in the outbox). */
  resume(entries: OutboxEntry[]): void {
    for (const e of entries) this.#accept({ eventId: e.eventId, type: e.eventType, body: e.body, attempts: 0, lastError: '' });
  }

  close(): void {
    this.#closed = true;
    for (const t of this.#waiting.values()) clearTimeout(t);
    this.#waiting.clear();
    this.#queue.length = 0;
    void this.#agent.close();
  }

  /**
   * A new delivery. What an endpoint holds is bounded in count and bytes whatever state its deliveries
   * are in: an endpoint that is down keeps its deliveries waiting for retries, not queued, and those
   * were once outside every bound (300 × 1 MB messages held 420 MB for an unreachable URL).
   */
  #accept(delivery: Delivery): void {
    if (this.#closed) return;
    this.#held++;
    this.#heldBytes += delivery.body.length;
    while ((this.#held > this.#options.maxQueued || this.#heldBytes > this.#options.maxQueuedBytes) && this.#dropOldestWaiting()) {
      this.stats.dropped++;
    }
    this.#queue.push(delivery);
    this.#pump();
  }

  /** Drops the oldest delivery not in flight (queued first, then waiting for a retry); false if none. */
  #dropOldestWaiting(): boolean {
    let victim = this.#queue.shift();
    if (victim === undefined) {
      const oldest = this.#waiting.entries().next();
      if (oldest.done === true) return false;
      const [delivery, timer] = oldest.value;
      clearTimeout(timer);
      this.#waiting.delete(delivery);
      victim = delivery;
    }
    this.#outbox.remove(this.target.id, victim.eventId);
    this.#release(victim);
    return true;
  }

  /** A delivery leaves the endpoint: delivered, dead-lettered or dropped. */
  #release(delivery: Delivery): void {
    this.#held--;
    this.#heldBytes -= delivery.body.length;
  }

  #pump(): void {
    while (!this.#closed && this.#inFlight < this.#options.concurrency && this.#queue.length > 0) {
      const delivery = this.#queue.shift()!;
      this.#inFlight++;
      void this.#attempt(delivery).finally(() => {
        this.#inFlight--;
        this.#pump();
      });
    }
  }

  async #attempt(delivery: Delivery): Promise<void> {
    delivery.attempts++;
    const error = await this.#post(delivery);
    if (this.#closed) return;
    if (error === null) {
      this.stats.delivered++;
      this.#outbox.remove(this.target.id, delivery.eventId);
      this.#release(delivery);
      return;
    }
    delivery.lastError = error;
    if (delivery.attempts >= this.#options.maxAttempts) {
      await this.#deadLetter(delivery);
      return;
    }
    this.stats.retried++;
    const exponential = Math.min(this.#options.maxDelayMs, this.#options.baseDelayMs * 2 ** (delivery.attempts - 1));
    // Up to 20 % jitter so a recovering endpoint is not hit by every retry at the same instant.
    const delay = Math.round(exponential * (0.8 + randomInt(0, 401) / 1000));
    const timer = setTimeout(() => {
      this.#waiting.delete(delivery);
      this.#queue.push(delivery);
      this.#pump();
    }, delay);
    timer.unref();
    this.#waiting.set(delivery, timer);
  }

  /** Null when the endpoint took it (2xx); otherwise why not. */
  async #post(delivery: Delivery): Promise<string | null> {
    const now = Math.floor(Date.now() / 1000);
    try {
      const res = await request(this.target.url, {
        method: 'POST',
        dispatcher: this.#agent,
        headers: {
          'content-type': 'application/json',
          'user-agent': 'gatehouse-webhooks',
          [EVENT_ID_HEADER]: delivery.eventId,
          [EVENT_TYPE_HEADER]: delivery.type,
          [SIGNATURE_HEADER]: signBody(this.target.secret, delivery.body, now),
        },
        body: delivery.body,
        headersTimeout: this.#options.timeoutMs,
        bodyTimeout: this.#options.timeoutMs,
      });
      await res.body.dump();
      return res.statusCode >= 200 && res.statusCode < 300 ? null : `HTTP ${res.statusCode}`;
    } catch (err) {
      const e = err as Error & { code?: string };
      return e.code === undefined ? e.message : `${e.code}: ${e.message}`;
    }
  }

  async #deadLetter(delivery: Delivery): Promise<void> {
    this.stats.deadLettered++;
    this.#release(delivery);
    this.#outbox.remove(this.target.id, delivery.eventId);
    this.#log.warn({ eventId: delivery.eventId, attempts: delivery.attempts, reason: delivery.lastError }, 'webhook_dead_letter');
    try {
      await this.#source.recordDeadLetter({
        id: newEventId(), webhookId: this.target.id, eventId: delivery.eventId, body: delivery.body,
        attempts: delivery.attempts, lastError: delivery.lastError, failedAt: new Date().toISOString(),
      });
    } catch (err) {
      this.#log.error({ err, eventId: delivery.eventId }, 'webhook_dead_letter_write_failed');
    }
  }

  #newAgent(): Agent {
    const ca = this.target.caCertificate === null ? undefined : [...tls.rootCertificates, this.target.caCertificate];
    return new Agent({
      connect: { timeout: this.#options.timeoutMs, ...(ca === undefined ? {} : { ca }) },
      headersTimeout: this.#options.timeoutMs,
      bodyTimeout: this.#options.timeoutMs,
      connections: this.#options.concurrency,
    });
  }
}

export class WebhookDispatcher {
  readonly #endpoints = new Map<string, Endpoint>();
  readonly #source: WebhookSource;
  readonly #options: WebhookOptions;
  readonly #log: Logger;
  readonly #unsubscribe: () => void;
  readonly #outbox: Outbox;
  readonly #node: OutboxNode;
  #reloading: Promise<void> = Promise.resolve();
  #sweepTimer: NodeJS.Timeout | null = null;
  #sweeping: Promise<void> | null = null;

  constructor(source: WebhookSource, hub: EventHub, options: WebhookOptions, log: Logger, node: OutboxNode) {
    this.#source = source;
    this.#options = options;
    this.#log = log;
    this.#node = node;
    this.#outbox = new Outbox(source, log, () => this.#claim());
    if (node.shared) {
      this.#sweepTimer = setInterval(() => void this.sweep(), Math.max(50, Math.floor(node.claimMs / 3)));
      this.#sweepTimer.unref();
    }
    this.#unsubscribe = hub.subscribe((event, remote) => {
      // Another node's device: that node calls the webhooks for it (once per event, not once per node).
      if (remote) return;
      let body: string | undefined; // serialized once, for the first webhook that wants it
      for (const endpoint of this.#endpoints.values()) {
        if (endpoint.wants(event)) endpoint.enqueue(event, body ??= JSON.stringify({ id: event.id, type: event.type, data: event.data }));
      }
    });
  }

  /** Re-reads the webhooks (at start and after each change); queues of kept webhooks stay. */
  reload(): Promise<void> {
    this.#reloading = this.#reloading.then(() => this.#load(), () => this.#load());
    return this.#reloading;
  }

  ids(): string[] {
    return [...this.#endpoints.keys()];
  }

  stats(webhookId: string): WebhookStats | undefined {
    const e = this.#endpoints.get(webhookId);
    return e && { ...e.stats, queued: e.queued, inFlight: e.inFlight, heldBytes: e.heldBytes };
  }

  /** Resolves once the outbox entries of every event published so far are written. */
  flushOutbox(): Promise<void> {
    return this.#outbox.flush();
  }

  /**
   * Renews this node's claims, then takes rows whose claim lapsed (a dead node's) for the endpoints with room.
   * Run by the timer in a cluster; one sweep at a time.
   */
  sweep(): Promise<void> {
    this.#sweeping ??= this.#sweep().finally(() => {
      this.#sweeping = null;
    });
    return this.#sweeping;
  }

  async #sweep(): Promise<void> {
    try {
      await this.#source.renewOutboxClaims(this.#claim());
    } catch (err) {
      // Past claimMs without a renewal another node may send these rows too (at least once, then twice).
      this.#log.warn({ err }, 'webhook_outbox_claims_renew_failed');
      return;
    }
    await this.#reloading;
    for (const [id, endpoint] of [...this.#endpoints]) {
      const room = this.#options.maxQueued - endpoint.held;
      if (room <= 0 || endpoint.closed) continue;
      try {
        const entries = await this.#source.claimOutbox(id, { ...this.#claim(), now: new Date().toISOString(), own: false }, room);
        if (entries.length > 0) this.#log.info({ webhookId: id, deliveries: entries.length }, 'webhook_outbox_taken_over');
        // An endpoint closed meanwhile (webhook disabled): the rows stay ours, taken again when it is enabled.
        endpoint.resume(entries);
      } catch (err) {
        this.#log.error({ err, webhookId: id }, 'webhook_outbox_claim_failed');
      }
    }
  }

  #claim(): OutboxClaim {
    return { nodeId: this.#node.nodeId, until: new Date(Date.now() + this.#node.claimMs).toISOString() };
  }

  /** Stops delivering; what is still pending stays in the outbox for the next start (or, in a cluster, another node). */
  async close(): Promise<void> {
    if (this.#sweepTimer !== null) clearInterval(this.#sweepTimer);
    this.#sweepTimer = null;
    await this.#sweeping;
    this.#unsubscribe();
    for (const e of this.#endpoints.values()) e.close();
    this.#endpoints.clear();
    await this.#outbox.close();
  }

  async #load(): Promise<void> {
    let targets: WebhookTarget[];
    try {
      targets = await this.#source.targets();
    } catch (err) {
      this.#log.error({ err }, 'webhook_reload_failed');
      return;
    }
    const ids = new Set(targets.map((t) => t.id));
    for (const [id, endpoint] of this.#endpoints) {
      if (!ids.has(id)) {
        endpoint.close();
        this.#endpoints.delete(id);
      }
    }
    for (const target of targets) {
      const existing = this.#endpoints.get(target.id);
      if (existing !== undefined) {
        existing.retarget(target);
        continue;
      }
      const endpoint = new Endpoint(target, this.#options, this.#source, this.#outbox, this.#log);
      this.#endpoints.set(target.id, endpoint);
      try {
        // Rows nobody sends: unclaimed, lapsed, or this node's own (its previous life, or a closed endpoint's).
        // Never rows another live node claims: it is sending them (a node's start once sent them twice).
        endpoint.resume(await this.#source.claimOutbox(target.id, { ...this.#claim(), now: new Date().toISOString(), own: true }, this.#options.maxQueued));
      } catch (err) {
        this.#log.error({ err, webhookId: target.id }, 'webhook_outbox_read_failed');
      }
    }
  }
}
