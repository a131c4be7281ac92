/**
 * Webhooks: operator-configured HTTPS endpoints that receive device messages and online/offline
 * events. The registry keeps their configuration and dead letters; the platform delivers.
 */
import { randomBytes, X509Certificate } from 'node:crypto';
import { GatehouseError } from '../core/errors.ts';
import type { RegistryContext } from './context.ts';
import type { DeadLetterRecord, OutboxClaim, OutboxEntry, WebhookEventType, WebhookRecord } from './ports.ts';

export const WEBHOOK_EVENT_TYPES: readonly WebhookEventType[] = ['message', 'online', 'offline'];
const SECRET = /^[\x21-\x7e]{16,128}$/;
const MAX_DEAD_LETTERS_LISTED = 1000;

export interface WebhookInput {
  url?: string;
  description?: string | null;
  gatewayId?: string | null;
  eventTypes?: string[];
  /** Generated when absent on create. */
  secret?: string;
  caCertificate?: string | null;
  enabled?: boolean;
}

/** A webhook as the API shows it; the secret only right after it was set. */
export interface Webhook {
  id: string;
  url: string;
  description: string | null;
  gatewayId: string | null;
  eventTypes: WebhookEventType[];
  caCertificate: string | null;
  enabled: boolean;
  createdAt: string;
  updatedAt: string;
  secret?: string;
}

/** What the platform's dispatcher needs to deliver: the record with the secret in clear. */
export interface WebhookTarget extends Omit<Webhook, 'secret'> {
  secret: string;
}

export class WebhookService {
  readonly #ctx: RegistryContext;

  constructor(ctx: RegistryContext) {
    this.#ctx = ctx;
  }

  async create(input: WebhookInput): Promise<Webhook> {
    const now = this.#ctx.now().toISOString();
    const id = randomBytes(8).toString('hex');
    const secret = input.secret ?? randomBytes(24).toString('base64url');
    const record: WebhookRecord = {
      id,
      url: checkUrl(input.url),
      description: input.description ?? null,
      gatewayId: await this.#checkGateway(input.gatewayId ?? null),
      eventTypes: checkEventTypes(input.eventTypes ?? [...WEBHOOK_EVENT_TYPES]),
      secretEncrypted: this.#seal(id, checkSecret(secret)),
      caCertificate: checkCa(input.caCertificate ?? null),
      enabled: input.enabled ?? true,
      createdAt: now,
      updatedAt: now,
    };
    await this.#ctx.storage.webhooks.insert(record);
    this.#ctx.events.emit('webhook.changed', { webhookId: id });
    return { ...view(record), secret };
  }

  async list(): Promise<Webhook[]> {
    return (await this.#ctx.storage.webhooks.list()).map(view);
  }

  async get(id: string): Promise<Webhook> {
    return view(await this.#record(id));
  }

  async update(id: string, input: WebhookInput): Promise<Webhook> {
    const current = await this.#record(id);
    const next: WebhookRecord = {
      ...current,
      url: input.url === undefined ? current.url : checkUrl(input.url),
      description: input.description === undefined ? current.description : input.description,
      gatewayId: input.gatewayId === undefined ? current.gatewayId : await this.#checkGateway(input.gatewayId),
      eventTypes: input.eventTypes === undefined ? current.eventTypes : checkEventTypes(input.eventTypes),
      secretEncrypted: input.secret === undefined ? current.secretEncrypted : this.#seal(id, checkSecret(input.secret)),
      caCertificate: input.caCertificate === undefined ? current.caCertificate : checkCa(input.caCertificate),
      enabled: input.enabled ?? current.enabled,
      updatedAt: this.#ctx.now().toISOString(),
    };
    if (!(await this.#ctx.storage.webhooks.update(next))) throw new GatehouseError('GW_ERR_WEBHOOK_NOT_FOUND');
    this.#ctx.events.emit('webhook.changed', { webhookId: id });
    return input.secret === undefined ? view(next) : { ...view(next), secret: input.secret };
  }

  async delete(id: string): Promise<void> {
    if (!(await this.#ctx.storage.webhooks.delete(id))) throw new GatehouseError('GW_ERR_WEBHOOK_NOT_FOUND');
    this.#ctx.events.emit('webhook.changed', { webhookId: id });
  }

  /** Enabled webhooks with their secrets, for delivery. Server side only. */
  async targets(): Promise<WebhookTarget[]> {
    const records = await this.#ctx.storage.webhooks.list();
    return records.filter((r) => r.enabled).map((r) => ({ ...view(r), secret: this.#open(r) }));
  }

  async recordDeadLetter(record: DeadLetterRecord): Promise<void> {
    await this.#ctx.storage.webhooks.insertDeadLetter(record);
  }

  /** Pending deliveries, kept so that a restart does not lose them (the platform's dispatcher writes them). */
  addToOutbox(entries: OutboxEntry[], claim?: OutboxClaim): Promise<void> {
    return this.#ctx.storage.webhooks.addToOutbox(entries, claim);
  }

  removeFromOutbox(keys: { webhookId: string; eventId: string }[]): Promise<void> {
    return this.#ctx.storage.webhooks.removeFromOutbox(keys);
  }

  listOutbox(webhookId: string, limit: number): Promise<OutboxEntry[]> {
    return this.#ctx.storage.webhooks.listOutbox(webhookId, limit);
  }

  /** Deliveries this node is to send (issue 16: one node sends each; repositories explain which rows). */
  claimOutbox(webhookId: string, claim: OutboxClaim & { now: string; own: boolean }, limit: number): Promise<OutboxEntry[]> {
    return this.#ctx.storage.webhooks.claimOutbox(webhookId, claim, limit);
  }

  renewOutboxClaims(claim: OutboxClaim): Promise<number> {
    return this.#ctx.storage.webhooks.renewOutboxClaims(claim);
  }

  async deadLetters(id: string, limit = 100): Promise<DeadLetterRecord[]> {
    await this.#record(id);
    return this.#ctx.storage.webhooks.listDeadLetters(id, Math.min(Math.max(limit, 1), MAX_DEAD_LETTERS_LISTED));
  }

  async deleteDeadLetter(id: string, deadLetterId: string): Promise<void> {
    await this.#record(id);
    if (!(await this.#ctx.storage.webhooks.deleteDeadLetter(id, deadLetterId))) throw new GatehouseError('GW_ERR_DEAD_LETTER_NOT_FOUND');
  }

  async #record(id: string): Promise<WebhookRecord> {
    const record = await this.#ctx.storage.webhooks.get(id);
    if (record === undefined) throw new GatehouseError('GW_ERR_WEBHOOK_NOT_FOUND');
    return record;
  }

  async #checkGateway(gatewayId: string | null): Promise<string | null> {
    if (gatewayId === null) return null;
    if ((await this.#ctx.storage.gateways.get(gatewayId)) === undefined) throw new GatehouseError('GW_ERR_GATEWAY_NOT_FOUND', undefined, 'gatewayId');
    return gatewayId;
  }

  #seal(id: string, secret: string): string {
    return this.#ctx.secrets.encrypt(secret, `webhooks.${id}.secret`);
  }

  #open(record: WebhookRecord): string {
    return this.#ctx.secrets.decrypt(record.secretEncrypted, `webhooks.${record.id}.secret`);
  }
}

function view(r: WebhookRecord): Webhook {
  return {
    id: r.id, url: r.url, description: r.description, gatewayId: r.gatewayId, eventTypes: r.eventTypes,
    caCertificate: r.caCertificate, enabled: r.enabled, createdAt: r.createdAt, updatedAt: r.updatedAt,
  };
}

function checkUrl(url: string | undefined): string {
  if (typeof url !== 'string' || url.length > 2048) throw new GatehouseError('GW_ERR_URL_INVALID', undefined, 'url');
  if (!/^https:\/\//i.test(url)) throw new GatehouseError('GW_ERR_URL_NOT_HTTPS', 'A webhook URL must start with https://', 'url');
  try {
    new URL(url);
  } catch {
    throw new GatehouseError('GW_ERR_URL_INVALID', undefined, 'url');
  }
  return url;
}

function checkEventTypes(types: string[]): WebhookEventType[] {
  const unique = [...new Set(types)];
  if (unique.length === 0 || !unique.every((t) => (WEBHOOK_EVENT_TYPES as readonly string[]).includes(t))) {
    throw new GatehouseError('GW_ERR_WEBHOOK_EVENTS_INVALID', undefined, 'eventTypes');
  }
  return unique as WebhookEventType[];
}

function checkSecret(secret: string): string {
  if (!SECRET.test(secret)) throw new GatehouseError('GW_ERR_WEBHOOK_SECRET_INVALID', undefined, 'secret');
  return secret;
}

function checkCa(pem: string | null): string | null {
  if (pem === null || pem.trim() === '') return null;
  try {
    new X509Certificate(pem);
  } catch {
    throw new GatehouseError('GW_ERR_CERT_INVALID', undefined, 'caCertificate');
  }
  return pem;
}
