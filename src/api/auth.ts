/** The admin bearer token on every /api/v1 route, compared in constant time. */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify';
import { ERRORS } from '../core/errors.ts';
import { errorBody } from './errors.ts';

/**
 * Hashing both sides first gives equal-length buffers, so `timingSafeEqual` applies and the comparison
 * time says nothing about the token's length or prefix.
 */
function digest(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest();
}

export function bearerAuth(adminToken: string): (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) => void {
  const expected = digest(adminToken);
  return (request, reply, done) => {
    const header = request.headers.authorization ?? '';
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (match?.[1] !== undefined && timingSafeEqual(digest(match[1]), expected)) {
      done();
      return;
    }
    // Answering without calling done() ends the request here.
    void reply.status(401).header('www-authenticate', 'Bearer realm="gatehouse"')
      .send(errorBody('GW_ERR_UNAUTHORIZED', ERRORS.GW_ERR_UNAUTHORIZED.message, 'authorization'));
  };
}
