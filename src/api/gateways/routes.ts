/**
 * /gateways: CRUD, start and stop. The registry owns the data and the rules; the runtime owns the
 * listeners. Create and start ask the runtime to start and answer with what actually happened
 * (RUNNING, or ERROR with the reason), so a script learns at once that a port is in use.
 */
import type { FastifyPluginCallbackTypebox } from '@fastify/type-provider-typebox';
import { Type, type Static } from 'typebox';
import { GatehouseError } from '../../core/errors.ts';
import type { GatewayOcspState, GatewayRuntime, GatewayState } from '../../registry/ports.ts';
import type { GatewayLimitsUsage } from '../../registry/gateway-limits.ts';
import type { Registry } from '../../registry/registry.ts';
import type { Gateway, GatewayCreateInput, ThirdPartyInput, Warning } from '../../registry/types.ts';
import { ocspStateWarnings, uniqueWarnings } from '../../registry/index.ts';
import { errorResponses } from '../common-schemas.ts';
import {
  GatewayCreateBody, GatewayIdParams, GatewayList, GatewaySaved, GatewayUpdateBody, GatewayView,
} from './schemas.ts';

export interface GatewayRoutesOptions {
  registry: Registry;
  runtime: GatewayRuntime;
  /** Every running gateway's certificate checks by id: under GATEHOUSE_WORKERS the machine's (workers.ts); absent: this process's. */
  ocspStates?: () => Promise<Record<string, GatewayOcspState>>;
  /** Every running gateway's use of its limits by id: under GATEHOUSE_WORKERS the machine's (workers.ts); absent: this process's. */
  limitsUsages?: () => Promise<Record<string, GatewayLimitsUsage>>;
}

const tags = ['gateways'];

type ThirdPartyBody = NonNullable<Static<typeof GatewayCreateBody>['thirdParty']>;

/** The API takes one flat thirdParty object; the registry takes one shape per provider. */
function thirdPartyInput(body: ThirdPartyBody | null | undefined): ThirdPartyInput | null | undefined {
  if (body === undefined || body === null) return body;
  const foreign = body.provider === 'FUNCTION'
    ? (['url', 'params', 'caCertificate', 'timeoutMs', 'acceptCacheTtlSeconds', 'rejectCacheTtlSeconds', 'signingSecret'] as const)
      .find((k) => body[k] !== undefined)
    : body.functionName !== undefined ? 'functionName' : undefined;
  if (foreign !== undefined) {
    throw new GatehouseError('GW_ERR_VALIDATION', `thirdParty.${foreign} does not apply to provider ${body.provider}`, `thirdParty.${foreign}`);
  }
  return body.provider === 'FUNCTION'
    ? { provider: 'FUNCTION', functionName: body.functionName ?? '' }
    : {
      provider: 'HTTPS', url: body.url ?? '', params: body.params, caCertificate: body.caCertificate,
      timeoutMs: body.timeoutMs, acceptCacheTtlSeconds: body.acceptCacheTtlSeconds, rejectCacheTtlSeconds: body.rejectCacheTtlSeconds,
      signingSecret: body.signingSecret,
    };
}

export const gatewayRoutes: FastifyPluginCallbackTypebox<GatewayRoutesOptions> = (app, { registry, runtime, ocspStates, limitsUsages }, done) => {
  /** The stored gateway with the runtime's live status. */
  const view = (gateway: Gateway, state: GatewayState = runtime.gatewayState(gateway.id), found: Warning[] = []): Static<typeof GatewayView> => ({
    ...gateway,
    status: state.status,
    statusReason: state.reason,
    connectedClients: state.connectedClients,
    ocspStatus: state.ocsp ?? null,
    limitsUsage: state.limitsUsage ?? null,
    // Stored certificates, what the save found, and what the running listener saw.
    warnings: uniqueWarnings([...found, ...gateway.warnings, ...(state.warnings ?? [])]),
  });

  /** A runtime failure must not turn a saved change into a 500: report it as the gateway's state. */
  const settle = async (id: string, action: 'start' | 'stop'): Promise<GatewayState> => {
    try {
      return await (action === 'start' ? runtime.startGateway(id) : runtime.stopGateway(id));
    } catch (error) {
      app.log.error({ err: error, gatewayId: id, action }, 'gateway_runtime_failed');
      return { ...runtime.gatewayState(id), status: 'ERROR', reason: (error as Error).message };
    }
  };

  app.post('/gateways', {
    schema: { tags, summary: 'Create a gateway (and its product), and start it', body: GatewayCreateBody, response: { 201: GatewaySaved, ...errorResponses } },
  }, async (request, reply) => {
    const input: GatewayCreateInput = { ...request.body, thirdParty: thirdPartyInput(request.body.thirdParty) };
    const { gateway, warnings } = await registry.gateways.create(input);
    const state = await settle(gateway.id, 'start');
    return reply.status(201).send(view(gateway, state, warnings));
  });

  app.get('/gateways', {
    schema: { tags, summary: 'List gateways', response: { 200: GatewayList, ...errorResponses } },
  }, async () => ({ items: (await registry.gateways.list()).map((g) => view(g)) }));

  app.get('/gateways/:id', {
    schema: { tags, summary: 'Get a gateway', params: GatewayIdParams, response: { 200: GatewayView, ...errorResponses } },
  }, async (request) => {
    const gateway = await registry.gateways.get(request.params.id);
    let state = runtime.gatewayState(gateway.id);
    // The machine's use: a device's session, queue and refusals are on the worker its connection reached.
    if (limitsUsages !== undefined && state.limitsUsage !== undefined) state = { ...state, limitsUsage: (await limitsUsages())[gateway.id] ?? state.limitsUsage };
    if (ocspStates === undefined || state.ocsp === undefined) return view(gateway, state);
    // The machine's checks, and what they reveal (a warning another worker's traffic raised included).
    const ocsp = (await ocspStates())[gateway.id] ?? state.ocsp;
    return view(gateway, { ...state, ocsp, warnings: ocspStateWarnings(ocsp) });
  });

  app.patch('/gateways/:id', {
    schema: {
      tags, summary: 'Edit a gateway; applies live', params: GatewayIdParams, body: GatewayUpdateBody,
      response: { 200: GatewaySaved, ...errorResponses },
    },
  }, async (request) => {
    const patch = { ...request.body, thirdParty: thirdPartyInput(request.body.thirdParty) };
    const { gateway, warnings } = await registry.gateways.update(request.params.id, patch);
    // The edit is applied by the runtime (live, or a retry of a gateway in ERROR): answer what came of it.
    return view(gateway, await runtime.settled(gateway.id), warnings);
  });

  app.delete('/gateways/:id', {
    schema: {
      tags, summary: 'Delete a gateway with its product and devices', params: GatewayIdParams,
      response: { 204: Type.Null({ description: 'Deleted' }), ...errorResponses },
    },
  }, async (request, reply) => {
    await registry.gateways.get(request.params.id);
    await settle(request.params.id, 'stop');
    await registry.gateways.delete(request.params.id);
    return reply.status(204).send(null);
  });

  app.post('/gateways/:id/start', {
    schema: { tags, summary: 'Turn the listener on', params: GatewayIdParams, response: { 200: GatewayView, ...errorResponses } },
  }, async (request) => {
    const gateway = await registry.gateways.start(request.params.id);
    return view(gateway, await settle(gateway.id, 'start'));
  });

  app.post('/gateways/:id/stop', {
    schema: { tags, summary: 'Turn the listener off (connected devices are disconnected)', params: GatewayIdParams, response: { 200: GatewayView, ...errorResponses } },
  }, async (request) => {
    const gateway = await registry.gateways.stop(request.params.id);
    return view(gateway, await settle(gateway.id, 'stop'));
  });

  done();
};
