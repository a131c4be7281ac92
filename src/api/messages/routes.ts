/** /messages (stored device messages) and the downlink to one device. */
import type { FastifyPluginCallbackTypebox } from '@fastify/type-provider-typebox';
import { GatehouseError } from '../../core/errors.ts';
import { isValidTopicName, TOPIC_LEVELS_CEILING, topicWithinLimits } from '../../mqtt/topics.ts';
import { MQTT_MAX_STRING_BYTES } from '../../registry/gateway-limits.ts';
import type { Platform } from '../../platform/index.ts';
import type { Registry } from '../../registry/registry.ts';
import { errorResponses } from '../common-schemas.ts';
import { decodePayload } from '../payload.ts';
import { DownlinkBody, DownlinkParams, DownlinkView, MessageList, MessageQuery } from './schemas.ts';

export interface MessageRoutesOptions {
  registry: Registry;
  platform: Platform;
}

const tags = ['messages'];
const DEFAULT_LIMIT = 100;
const MAX_LIMIT = 1000;

export const messageRoutes: FastifyPluginCallbackTypebox<MessageRoutesOptions> = (app, { registry, platform }, done) => {
  app.get('/messages', {
    schema: { tags, summary: 'Stored device messages, raw and parsed, newest first', querystring: MessageQuery, response: { 200: MessageList, ...errorResponses } },
  }, async (request) => {
    const { limit = DEFAULT_LIMIT, since, ...filter } = request.query;
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT) throw new GatehouseError('GW_ERR_VALIDATION', `limit must be 1-${MAX_LIMIT}`, 'limit');
    let sinceIso: string | undefined;
    if (since !== undefined) {
      const t = Date.parse(since);
      if (Number.isNaN(t)) throw new GatehouseError('GW_ERR_TIME_INVALID', undefined, 'since');
      sinceIso = new Date(t).toISOString();
    }
    return { items: await platform.queryMessages({ ...filter, since: sinceIso, limit }) };
  });

  app.post('/products/:productKey/devices/:deviceName/messages', {
    schema: {
      tags, summary: 'Send a message down to a device (it must be connected and subscribed to the topic)',
      params: DownlinkParams, body: DownlinkBody, response: { 200: DownlinkView, ...errorResponses },
    },
  }, async (request) => {
    const { productKey, deviceName } = request.params;
    const { topic, payload, encoding = 'base64', qos = 0 } = request.body;
    await registry.devices.get(productKey, deviceName); // 404 for an unknown product or device
    if (!isValidTopicName(topic) || topic.startsWith('$')) throw new GatehouseError('GW_ERR_TOPIC_INVALID', undefined, 'topic');
    // The gateway's own topic limits, as for its devices' PUBLISHes: firmware was promised no deeper or longer topic.
    const { limits } = await registry.gateways.get((await registry.products.require(productKey)).gatewayId);
    const maxLevels = limits.maxTopicLevels ?? TOPIC_LEVELS_CEILING;
    const maxBytes = limits.maxTopicLength ?? MQTT_MAX_STRING_BYTES;
    if (!topicWithinLimits(topic, maxLevels, maxBytes)) {
      throw new GatehouseError('GW_ERR_TOPIC_OVER_LIMIT', `the gateway allows ${maxLevels} topic levels and ${maxBytes} bytes (maxTopicLevels, maxTopicLength)`, 'topic');
    }
    return platform.downlink(productKey, deviceName, { topic, payload: decodePayload(payload, encoding), qos });
  });

  done();
};
