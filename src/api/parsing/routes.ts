/** A gateway's data parsing: its counters, and a dry run of its saved script or a draft on a sample. */
import type { FastifyPluginCallbackTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { ParsingStats, Platform } from '../../platform/index.ts';
import type { Registry } from '../../registry/registry.ts';
import { errorResponses, Nullable } from '../common-schemas.ts';
import { decodePayload } from '../payload.ts';

export interface ParsingRoutesOptions {
  registry: Registry;
  platform: Platform;
  /** A gateway's counters: this process's, or under GATEHOUSE_WORKERS the machine's. */
  stats: (gatewayId: string) => Promise<ParsingStats>;
}

const tags = ['gateways'];

const GatewayParams = Type.Object({ id: Type.String() });

const ParsingTestBody = Type.Object({
  script: Type.Optional(Type.String({ description: 'A draft; the saved script when absent' })),
  topic: Type.String(),
  payload: Type.String({ description: 'Sample payload bytes' }),
  encoding: Type.Optional(Type.Enum(['hex', 'base64'], { description: 'Of payload; default hex' })),
}, { additionalProperties: false });

const ParsingTestView = Type.Object({
  output: Nullable(Type.Record(Type.String(), Type.Unknown())),
  error: Nullable(Type.Object({ kind: Type.String(), message: Type.String(), line: Type.Optional(Type.Integer()) })),
  propertyPost: Type.Boolean({ description: 'The output is an Alink property post' }),
  logs: Type.Array(Type.Object({ level: Type.String(), message: Type.String() })),
  durationMs: Type.Number(),
});

const ParsingStatsView = Type.Object({
  enabled: Type.Boolean({ description: 'A script is compiled and runs on this gateway\'s messages' }),
  parsed: Type.Integer(),
  failed: Type.Integer({ description: 'Threw, timed out, ran out of memory or returned no object' }),
  dropped: Type.Integer({ description: 'Not parsed because the script could not keep up (its queue was full)' }),
  shed: Type.Integer({ description: 'Not parsed because the event loop was saturated: MQTT traffic went first' }),
});

export const parsingRoutes: FastifyPluginCallbackTypebox<ParsingRoutesOptions> = (app, { registry, platform, stats }, done) => {
  app.get('/gateways/:id/parsing', {
    schema: { tags, summary: 'Data parsing counters since start', params: GatewayParams, response: { 200: ParsingStatsView, ...errorResponses } },
  }, async (request) => {
    await registry.getGatewayRuntimeConfig(request.params.id); // 404 for an unknown gateway
    return stats(request.params.id);
  });

  app.post('/gateways/:id/parsing/test', {
    schema: {
      tags, summary: 'Run transformPayload (saved or draft) on a sample topic and payload',
      params: GatewayParams, body: ParsingTestBody, response: { 200: ParsingTestView, ...errorResponses },
    },
  }, async (request) => {
    const { script, topic, payload, encoding = 'hex' } = request.body;
    return platform.testParsing(request.params.id, { script, topic, payload: decodePayload(payload, encoding) });
  });

  done();
};
