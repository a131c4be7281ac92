/**
 * /events: connection events, newest first (issue 14): every CONNECT outcome and disconnect cause with a
 * stable reason code. Paged by an opaque cursor (the last id of a page); a refused device without a
 * record is found by `username` or `clientId`. Live, the same events are on /stream (type `connection`).
 */
import type { FastifyPluginCallbackTypebox } from '@fastify/type-provider-typebox';
import { GatehouseError } from '../../core/errors.ts';
import type { ConnectionEventRecorder } from '../../platform/index.ts';
import {
  CONNECTION_EVENT_TYPES, CONNECTION_REASONS, isConnectionEventType, isConnectionReason, type ConnectionEventQuery,
} from '../../registry/connection-events.ts';
import { errorResponses } from '../common-schemas.ts';
import { DEFAULT_LIMIT, EventList, EventQuery, MAX_LIMIT } from './schemas.ts';

export interface EventRoutesOptions {
  connectionEvents: ConnectionEventRecorder;
}

/** Event ids (platform/ids.ts): 9 + 5 base-36 characters of time and counter, 6 hex of randomness. */
const CURSOR = /^[0-9a-z]{14}[0-9a-f]{6}$/;
export const eventRoutes: FastifyPluginCallbackTypebox<EventRoutesOptions> = (app, { connectionEvents }, done) => {
  app.get('/events', {
    schema: {
      tags: ['events'], summary: 'Connection events: CONNECT outcomes and disconnect causes, newest first',
      querystring: EventQuery, response: { 200: EventList, ...errorResponses },
    },
  }, async (request) => {
    const { limit = DEFAULT_LIMIT, since, cursor, type, reason, gatewayId, deviceName, username, clientId } = request.query;
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT) {
      throw new GatehouseError('GW_ERR_PAGE_LIMIT_INVALID', `limit must be a whole number 1-${MAX_LIMIT}`, 'limit');
    }
    const query: ConnectionEventQuery = { gatewayId, deviceName, username, clientId, limit };
    if (type !== undefined) {
      if (!isConnectionEventType(type)) throw new GatehouseError('GW_ERR_EVENT_TYPE_UNKNOWN', `type must be one of ${CONNECTION_EVENT_TYPES.join(', ')}`, 'type');
      query.type = type;
    }
    if (reason !== undefined) {
      if (!isConnectionReason(reason)) throw new GatehouseError('GW_ERR_EVENT_REASON_UNKNOWN', `reason must be one of ${CONNECTION_REASONS.join(', ')}`, 'reason');
      query.reason = reason;
    }
    if (since !== undefined) {
      const t = Date.parse(since);
      if (Number.isNaN(t)) throw new GatehouseError('GW_ERR_TIME_INVALID', undefined, 'since');
      query.since = new Date(t).toISOString();
    }
    if (cursor !== undefined) {
      if (!CURSOR.test(cursor)) throw new GatehouseError('GW_ERR_CURSOR_INVALID', undefined, 'cursor');
      query.before = cursor;
    }
    const items = await connectionEvents.query(query);
    const last = items[items.length - 1];
    return { items, nextCursor: items.length === limit && last !== undefined ? last.id : null };
  });
  done();
};
