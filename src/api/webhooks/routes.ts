/**
 * /webhooks: HTTPS endpoints that receive device messages and online/offline events (JSON POST,
 * `x-gatehouse-event-id` to deduplicate on, `x-gatehouse-signature: t=<unix>,v1=<hex HMAC-SHA256
 * of "<t>.<body>">`), and the dead letters of each after its last retry.
 */
import type { FastifyPluginCallbackTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { WebhookStats } from '../../platform/index.ts';
import type { Webhook } from '../../registry/index.ts';
import type { Registry } from '../../registry/registry.ts';
import { errorResponses } from '../common-schemas.ts';
import {
  DeadLetterList, DeadLetterParams, DeadLetterQuery, WebhookCreateBody, WebhookList, WebhookParams, WebhookUpdateBody, WebhookView,
} from './schemas.ts';

export interface WebhookRoutesOptions {
  registry: Registry;
  /** Every webhook's delivery counters by id: this process's, or under GATEHOUSE_WORKERS the machine's. */
  stats: () => Promise<Record<string, WebhookStats>>;
}

const tags = ['webhooks'];

export const webhookRoutes: FastifyPluginCallbackTypebox<WebhookRoutesOptions> = (app, { registry, stats }, done) => {
  const withStats = async <W extends Webhook>(webhooks: W[]) => {
    const all = await stats();
    return webhooks.map((w) => {
      const delivery = all[w.id];
      return delivery === undefined ? w : { ...w, delivery };
    });
  };

  app.post('/webhooks', {
    schema: { tags, summary: 'Add a webhook (the answer shows its signing secret, once)', body: WebhookCreateBody, response: { 201: WebhookView, ...errorResponses } },
  }, async (request, reply) => {
    const created = await registry.webhooks.create(request.body);
    return reply.status(201).send(created);
  });

  app.get('/webhooks', {
    schema: { tags, summary: 'List webhooks', response: { 200: WebhookList, ...errorResponses } },
  }, async () => ({ items: await withStats(await registry.webhooks.list()) }));

  app.get('/webhooks/:id', {
    schema: { tags, summary: 'Get a webhook with its delivery counters', params: WebhookParams, response: { 200: WebhookView, ...errorResponses } },
  }, async (request) => (await withStats([await registry.webhooks.get(request.params.id)]))[0]);

  app.patch('/webhooks/:id', {
    schema: { tags, summary: 'Edit a webhook', params: WebhookParams, body: WebhookUpdateBody, response: { 200: WebhookView, ...errorResponses } },
  }, async (request) => {
    const updated = await registry.webhooks.update(request.params.id, request.body);
    return updated;
  });

  app.delete('/webhooks/:id', {
    schema: { tags, summary: 'Delete a webhook and its dead letters', params: WebhookParams, response: { 204: Type.Null({ description: 'Deleted' }), ...errorResponses } },
  }, async (request, reply) => {
    await registry.webhooks.delete(request.params.id);
    return reply.status(204).send(null);
  });

  app.get('/webhooks/:id/dead-letters', {
    schema: {
      tags, summary: 'Deliveries that failed every attempt', params: WebhookParams, querystring: DeadLetterQuery,
      response: { 200: DeadLetterList, ...errorResponses },
    },
  }, async (request) => ({ items: await registry.webhooks.deadLetters(request.params.id, request.query.limit) }));

  app.delete('/webhooks/:id/dead-letters/:deadLetterId', {
    schema: { tags, summary: 'Forget a dead letter', params: DeadLetterParams, response: { 204: Type.Null({ description: 'Deleted' }), ...errorResponses } },
  }, async (request, reply) => {
    await registry.webhooks.deleteDeadLetter(request.params.id, request.params.deadLetterId);
    return reply.status(204).send(null);
  });

  done();
};
