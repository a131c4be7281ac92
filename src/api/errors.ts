/**
 * One error shape for every failure: `{ error: { code, message, field } }`. Registry errors keep their
 * code and field; fastify's own (schema validation, content type, body size) are mapped so a client
 * never has to parse two formats.
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ERRORS, GatehouseError, type ErrorCode } from '../core/errors.ts';

export interface ErrorBodyValue {
  error: { code: string; message: string; field: string | null };
}

export function errorBody(code: string, message: string, field: string | null | undefined): ErrorBodyValue {
  return { error: { code, message, field: field ?? null } };
}

interface SchemaError {
  keyword?: string;
  instancePath?: string;
  message?: string;
  params?: Record<string, unknown>;
}

/** `/thirdParty/params/0/key` → `thirdParty.params[0].key`. */
export function fieldPath(instancePath: string, child?: string): string {
  const segments = instancePath.split('/').filter((s) => s !== '').map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
  if (child !== undefined) segments.push(child);
  return segments.reduce((path, segment) => (/^\d+$/.test(segment) ? `${path}[${segment}]` : path === '' ? segment : `${path}.${segment}`), '');
}

/** The most useful of a validation's errors, as a field and a sentence. */
export function describeValidation(errors: readonly SchemaError[], context: string | undefined): { field: string | null; message: string } {
  // Union errors come as one error per branch plus an umbrella; prefer a concrete one.
  const first = errors.find((e) => e.keyword !== 'anyOf' && e.keyword !== 'boolean') ?? errors[0];
  if (!first) return { field: null, message: 'invalid input' };
  const path = first.instancePath ?? '';
  const params = first.params ?? {};
  let field: string;
  let message: string;
  if (first.keyword === 'required') {
    const missing = (params.requiredProperties as string[] | undefined)?.[0] ?? (params.missingProperty as string | undefined) ?? '';
    field = fieldPath(path, missing);
    message = `${field} is required`;
  } else if (first.keyword === 'additionalProperties') {
    const extra = (params.additionalProperties as string[] | undefined)?.[0] ?? (params.additionalProperty as string | undefined) ?? '';
    field = fieldPath(path, extra);
    message = `${field} is not a known field`;
  } else if (first.keyword === 'enum') {
    field = fieldPath(path);
    const allowed = (params.allowedValues as unknown[] | undefined)?.join(', ');
    message = `${field || context || 'value'} must be one of ${allowed ?? 'the allowed values'}`;
  } else {
    field = fieldPath(path);
    message = `${field || context || 'value'} ${first.message ?? 'is invalid'}`;
  }
  return { field: field === '' ? context ?? null : field, message };
}

const FASTIFY_CODES: Record<string, ErrorCode> = {
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'GW_ERR_UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_BODY_TOO_LARGE: 'GW_ERR_BODY_TOO_LARGE',
};

export function installErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((error: FastifyError | GatehouseError | Error, request: FastifyRequest, reply: FastifyReply) => {
    if (error instanceof GatehouseError) {
      if (error.status >= 500) request.log.error({ err: error }, 'api_request_failed');
      return reply.status(error.status).send(errorBody(error.code, error.message, error.field));
    }
    const fastifyError = error as FastifyError;
    if (fastifyError.validation) {
      const { field, message } = describeValidation(fastifyError.validation, fastifyError.validationContext);
      return reply.status(400).send(errorBody('GW_ERR_VALIDATION', message, field));
    }
    const mapped = fastifyError.code !== undefined ? FASTIFY_CODES[fastifyError.code] : undefined;
    if (mapped) return reply.status(ERRORS[mapped].status).send(errorBody(mapped, fastifyError.message, null));
    const status = fastifyError.statusCode;
    if (status !== undefined && status >= 400 && status < 500) {
      // Malformed JSON, empty body with a JSON content type, and the like.
      return reply.status(400).send(errorBody('GW_ERR_VALIDATION', fastifyError.message, 'body'));
    }
    request.log.error({ err: error }, 'api_request_failed');
    return reply.status(500).send(errorBody('GW_ERR_INTERNAL', ERRORS.GW_ERR_INTERNAL.message, null));
  });
}

export function notFound(request: FastifyRequest, reply: FastifyReply): FastifyReply {
  return reply.status(404).send(errorBody('GW_ERR_NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0] ?? ''}`, null));
}
