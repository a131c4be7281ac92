/** /functions: stored verification functions for the third-party FUNCTION provider. */
import type { FastifyPluginCallbackTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { Registry } from '../../registry/registry.ts';
import { errorResponses } from '../common-schemas.ts';
import {
  FunctionCreateBody, FunctionInvokeBody, FunctionInvokeResult, FunctionList, FunctionParams, FunctionPutBody, FunctionView,
} from './schemas.ts';

export interface FunctionRoutesOptions {
  registry: Registry;
}

const tags = ['functions'];

export const functionRoutes: FastifyPluginCallbackTypebox<FunctionRoutesOptions> = (app, { registry }, done) => {
  app.post('/functions', {
    schema: { tags, summary: 'Create a verification function', body: FunctionCreateBody, response: { 201: FunctionView, ...errorResponses } },
  }, async (request, reply) => {
    const { name, ...input } = request.body;
    return reply.status(201).send(await registry.functions.create(name, input));
  });

  app.get('/functions', {
    schema: { tags, summary: 'List verification functions', response: { 200: FunctionList, ...errorResponses } },
  }, async () => ({ items: await registry.functions.list() }));

  app.get('/functions/:name', {
    schema: { tags, summary: 'Get a verification function', params: FunctionParams, response: { 200: FunctionView, ...errorResponses } },
  }, (request) => registry.functions.get(request.params.name));

  app.put('/functions/:name', {
    schema: {
      tags, summary: 'Create or replace a verification function', params: FunctionParams, body: FunctionPutBody,
      response: { 200: FunctionView, 201: FunctionView, ...errorResponses },
    },
  }, async (request, reply) => {
    const { fn, created } = await registry.functions.put(request.params.name, request.body);
    return reply.status(created ? 201 : 200).send(fn);
  });

  app.post('/functions/:name/invoke', {
    schema: {
      tags, summary: 'Dry run: call the function once with a verification input; shows its answer, console output and time',
      params: FunctionParams, body: FunctionInvokeBody, response: { 200: FunctionInvokeResult, ...errorResponses },
    },
  }, (request) => registry.functions.invoke(request.params.name, {
    userName: request.body.userName ?? null,
    password: request.body.password ?? null,
    clientId: request.body.clientId ?? '',
    certificateCommonName: request.body.certificateCommonName ?? null,
  }));

  app.delete('/functions/:name', {
    schema: {
      tags, summary: 'Delete a verification function (refused while a gateway uses it)', params: FunctionParams,
      response: { 204: Type.Null({ description: 'Deleted' }), ...errorResponses },
    },
  }, async (request, reply) => {
    await registry.functions.delete(request.params.name);
    return reply.status(204).send(null);
  });

  done();
};
