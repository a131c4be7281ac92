/** Webhook schemas. */
import { Type } from 'typebox';
import { Nullable } from '../common-schemas.ts';

const eventTypes = Type.Array(Type.Enum(['message', 'online', 'offline']), { description: 'Default: all three' });

export const WebhookCreateBody = Type.Object({
  url: Type.String({ description: 'https:// only' }),
  description: Type.Optional(Nullable(Type.String({ maxLength: 200 }))),
  gatewayId: Type.Optional(Nullable(Type.String({ description: 'Only this gateway\'s events; default every gateway' }))),
  eventTypes: Type.Optional(eventTypes),
  secret: Type.Optional(Type.String({ description: 'HMAC key, 16-128 printable characters; generated when absent' })),
  caCertificate: Type.Optional(Nullable(Type.String({ description: 'PEM trusted besides the system roots (a private CA)' }))),
  enabled: Type.Optional(Type.Boolean()),
}, { additionalProperties: false });

export const WebhookUpdateBody = Type.Partial(WebhookCreateBody, { additionalProperties: false });

export const WebhookView = Type.Object({
  id: Type.String(),
  url: Type.String(),
  description: Nullable(Type.String()),
  gatewayId: Nullable(Type.String()),
  eventTypes,
  caCertificate: Nullable(Type.String()),
  enabled: Type.Boolean(),
  createdAt: Type.String(),
  updatedAt: Type.String(),
  secret: Type.Optional(Type.String({ description: 'Only in the answer that set it' })),
  delivery: Type.Optional(Type.Object({
    delivered: Type.Integer(), retried: Type.Integer(), deadLettered: Type.Integer(), dropped: Type.Integer(),
    queued: Type.Integer({ description: 'Waiting for a request slot or for their next attempt' }), inFlight: Type.Integer(),
    heldBytes: Type.Integer({ description: 'Bytes of the bodies held (queued, waiting, in flight); bounded per webhook' }),
  }, { description: 'Since the process started' })),
});

export const WebhookList = Type.Object({ items: Type.Array(WebhookView) });
export const WebhookParams = Type.Object({ id: Type.String() });
export const DeadLetterParams = Type.Object({ id: Type.String(), deadLetterId: Type.String() });
export const DeadLetterQuery = Type.Object({ limit: Type.Optional(Type.Integer({ description: '1-1000, default 100' })) });

export const DeadLetterView = Type.Object({
  id: Type.String(),
  webhookId: Type.String(),
  eventId: Type.String({ description: 'The x-gatehouse-event-id of the delivery' }),
  body: Type.String({ description: 'The JSON that was POSTed' }),
  attempts: Type.Integer(),
  lastError: Type.String(),
  failedAt: Type.String(),
});

export const DeadLetterList = Type.Object({ items: Type.Array(DeadLetterView, { description: 'Newest first' }) });
