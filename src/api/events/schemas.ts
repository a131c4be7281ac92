/** Schemas of /events (connection events, issue 14). */
import { Type } from 'typebox';
import { CONNECTION_EVENT_TYPES, CONNECTION_REASONS } from '../../registry/connection-events.ts';
import { Nullable } from '../common-schemas.ts';

export const DEFAULT_LIMIT = 100;
export const MAX_LIMIT = 1000;
/** Longer than any stored value (device text is bounded before it is stored): refused, not searched. */
const MAX_FILTER_LENGTH = 1024;

const Filter = (description: string) => Type.Optional(Type.String({ maxLength: MAX_FILTER_LENGTH, description }));

export const EventQuery = Type.Object({
  gatewayId: Filter('Events of one gateway'),
  deviceName: Filter('Events of one device (refusals before the device was known carry none: use username or clientId)'),
  username: Filter('What the device presented: found even without a device record'),
  clientId: Filter('The MQTT client identifier the device presented'),
  type: Type.Optional(Type.String({ description: CONNECTION_EVENT_TYPES.join(' | ') })),
  reason: Type.Optional(Type.String({ description: CONNECTION_REASONS.join(' | ') })),
  since: Type.Optional(Type.String({ description: 'ISO 8601: events whose last occurrence is at or after it' })),
  limit: Type.Optional(Type.Integer({ description: `1-${MAX_LIMIT}, default ${DEFAULT_LIMIT}` })),
  cursor: Type.Optional(Type.String({ description: 'nextCursor of the previous page' })),
});

const Certificate = Nullable(Type.Object({
  cn: Nullable(Type.String()), serial: Type.String(), issuer: Type.String(), fingerprint256: Type.String(),
}, { description: 'The client certificate the device presented' }));

export const ConnectionEvent = Type.Object({
  id: Type.String({ description: 'Time-ordered: a larger id is a later event' }),
  gatewayId: Type.String(),
  type: Type.Enum(CONNECTION_EVENT_TYPES, {
    description: 'CONNECT_ACCEPTED; CONNECT_REFUSED (the server ended the attempt); CONNECT_ABANDONED (the client left before its CONNACK); DISCONNECTED',
  }),
  reason: Type.Enum(CONNECTION_REASONS, { description: 'Stable reason code' }),
  detail: Nullable(Type.String({ description: 'The specific violation, limit, backend answer or TLS error' })),
  mqttReasonCode: Nullable(Type.Integer({
    description: 'What the device was sent: v5 CONNACK/DISCONNECT reason code, or v3.1.1 CONNACK return code; null when nothing was sent',
  })),
  protocolVersion: Nullable(Type.Integer({ description: '3, 4 (MQTT 3.1.1) or 5; null before a CONNECT was read' })),
  clientId: Nullable(Type.String()),
  username: Nullable(Type.String()),
  deviceName: Nullable(Type.String()),
  address: Nullable(Type.String()),
  certificate: Certificate,
  at: Type.String(),
  count: Type.Integer({ description: 'Identical events folded into this one (a device retrying fast)' }),
  lastAt: Type.String({ description: 'When the last folded occurrence happened' }),
}, { description: 'A CONNECT outcome or a disconnect cause (GET /events, /stream type connection)' });

export const EventList = Type.Object({
  items: Type.Array(ConnectionEvent),
  nextCursor: Nullable(Type.String({ description: 'Pass as cursor for the next (older) page; null on the last page' })),
});

