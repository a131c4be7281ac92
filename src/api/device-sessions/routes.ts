/**
 * A device's live side (issue 14, item 2): its MQTT sessions as the engine holds them (subscriptions,
 * messages in flight and queued), and the operator's "disconnect now". Read from the running gateway; a
 * stopped gateway holds no sessions in memory.
 */
import type { FastifyPluginCallbackTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { PENDING_LISTED, type Platform } from '../../platform/index.ts';
import type { Registry } from '../../registry/registry.ts';
import { errorResponses, Nullable } from '../common-schemas.ts';

export interface DeviceSessionRoutesOptions {
  registry: Registry;
  platform: Platform;
}

const Params = Type.Object({ productKey: Type.String(), deviceName: Type.String() });

const SessionView = Type.Object({
  gatewayId: Type.String(),
  clientId: Type.String(),
  connected: Type.Boolean(),
  address: Nullable(Type.String({ description: 'Of the connection holding the session now' })),
  protocolVersion: Nullable(Type.Integer({ description: '4 (MQTT 3.1.1) or 5; null while offline' })),
  expiryIntervalSeconds: Type.Integer({ description: 'How long the session outlives its connection; 4294967295 = never expires' }),
  disconnectedAt: Nullable(Type.String({ description: 'When its last connection closed; null while connected' })),
  subscriptions: Type.Array(Type.Object({
    filter: Type.String({ description: 'As the device sent it ($share/… included)' }),
    qos: Type.Integer(), noLocal: Type.Boolean(), retainAsPublished: Type.Boolean(), retainHandling: Type.Integer(),
  })),
  inflight: Type.Integer({ description: 'QoS 1/2 messages sent and not yet acknowledged' }),
  queued: Type.Integer({ description: 'QoS 1/2 messages waiting for room or for the device' }),
  queuedBytes: Type.Integer(),
  pending: Type.Array(Type.Object({
    topic: Type.String(), qos: Type.Integer(), bytes: Type.Integer({ description: 'Payload size' }),
    state: Type.Enum(['IN_FLIGHT', 'QUEUED']), packetId: Nullable(Type.Integer()),
  }), { description: `In flight first, then queued, oldest first; at most ${PENDING_LISTED}` }),
});

const SessionList = Type.Object({ items: Type.Array(SessionView, { description: 'Connected first' }) });
const DisconnectView = Type.Object({ disconnected: Type.Integer({ description: 'Connections ended (0: it was not connected)' }) });

const tags = ['devices'];

export const deviceSessionRoutes: FastifyPluginCallbackTypebox<DeviceSessionRoutesOptions> = (app, { registry, platform }, done) => {
  app.get('/products/:productKey/devices/:deviceName/sessions', {
    schema: {
      tags, summary: 'The device\'s MQTT sessions: subscriptions, messages in flight and queued', params: Params,
      response: { 200: SessionList, ...errorResponses },
    },
  }, async (request) => {
    const { productKey, deviceName } = request.params;
    await registry.devices.get(productKey, deviceName); // 404 for an unknown product or device
    return { items: await platform.deviceSessions(productKey, deviceName) };
  });

  app.post('/products/:productKey/devices/:deviceName/disconnect', {
    schema: {
      tags, summary: 'Disconnect the device now (v5: 0x98 administrative action); it may connect again',
      params: Params, response: { 200: DisconnectView, ...errorResponses },
    },
  }, async (request) => {
    const { productKey, deviceName } = request.params;
    await registry.devices.get(productKey, deviceName);
    return { disconnected: await platform.disconnectDevice(productKey, deviceName) };
  });

  done();
};
