/**
 * POST /certificates/self-signed: a throwaway server certificate and key for trying a gateway
 * without one's own PKI. Clearly marked as a test certificate; never stored.
 */
import type { FastifyPluginCallbackTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { createSelfSignedCertificate } from '../../core/self-signed.ts';
import { errorResponses } from '../common-schemas.ts';

const SelfSignedRequest = Type.Object({
  hosts: Type.Array(Type.String({ minLength: 1, maxLength: 253 }), {
    minItems: 1, maxItems: 20, description: 'Host names and IP addresses the devices connect to (the first is the CN)',
  }),
  days: Type.Optional(Type.Integer({ minimum: 1, maximum: 825, description: 'Validity in days (default 365)' })),
}, { additionalProperties: false });

const SelfSignedResponse = Type.Object({
  certificatePem: Type.String({ description: 'Use as serverCertificateChain; devices trust this certificate itself' }),
  privateKeyPem: Type.String({ description: 'Use as serverPrivateKey (not stored by Gatehouse)' }),
  fingerprint256: Type.String(),
  notAfter: Type.String(),
  warning: Type.String(),
});

export const certificateRoutes: FastifyPluginCallbackTypebox = (app, _options, done) => {
  app.post('/certificates/self-signed', {
    schema: {
      tags: ['certificates'],
      summary: 'Generate a self-signed test server certificate (for trying a gateway; not for production)',
      body: SelfSignedRequest,
      response: { 201: SelfSignedResponse, ...errorResponses },
    },
  }, async (request, reply) => {
    const cert = await createSelfSignedCertificate({ hosts: request.body.hosts, days: request.body.days });
    return reply.status(201).send({
      ...cert,
      warning: 'Self-signed test certificate: devices must trust it explicitly. Use your own CA-issued chain in production.',
    });
  });
  done();
};
