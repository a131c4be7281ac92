/** The OpenAPI document (from the route schemas) at /api/docs/json and Swagger UI at /api/docs. */
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';
import { ConnectionEvent } from './events/schemas.ts';
import { AccessControlView, AclRules, LimitsView, VerificationAnswer } from './gateways/schemas.ts';

export const DOCS_PREFIX = '/api/docs';

/**
 * Registered on the root instance itself (not inside a plugin of ours), so swagger's route hook sees
 * every route registered after it.
 */
export function registerOpenApi(app: FastifyInstance): void {
  void app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'Gatehouse API',
        version: '1',
        description: 'Control plane of Gatehouse, the MQTT access gateway. Every /api/v1 route takes `Authorization: Bearer <admin token>`. '
          + 'Errors are `{ "error": { "code": "GW_ERR_…", "message": "…", "field": "…" } }`.',
      },
      components: {
        securitySchemes: { adminToken: { type: 'http', scheme: 'bearer' } },
        // Shapes a reader looks up by name: the gateway's rules and limits, and the contract a third-party verifier answers in.
        schemas: { AccessControl: AccessControlView, AclRules, GatewayLimits: LimitsView, ThirdPartyVerificationAnswer: VerificationAnswer, ConnectionEvent },
      },
      security: [{ adminToken: [] }],
      tags: [
        { name: 'gateways', description: 'Gateways: listener, TLS, verification settings' },
        { name: 'products', description: 'One product per gateway' },
        { name: 'devices', description: 'Devices of a product; one-party rows' },
        { name: 'functions', description: 'Verification functions for third-party verification' },
        { name: 'operations', description: 'Health and metrics' },
        { name: 'events', description: 'Connection events: why a device could or could not connect, and why it went away' },
      ],
    },
  });
  void app.register(swaggerUi, { routePrefix: DOCS_PREFIX });
}
