/**
 * The OpenAPI document without a running Gatehouse: the API built by `buildApi` itself, so every route and
 * schema is the one the server registers, against stand-in dependencies that refuse every use. Registering a
 * route reads none of them (only its handler would, and no request is ever made). `npm run api:generate`
 * turns the document into the client's types (src/client/api-types.ts).
 */
import { silentLogger } from '../core/logger.ts';
import type { ConnectionEventRecorder, Platform } from '../platform/index.ts';
import { buildApi, type ApiDependencies } from './index.ts';

/** An object whose every use throws, naming what was touched: a route that reads a dependency at registration shows up here. */
function refusing<T extends object>(name: string): T {
  return new Proxy({} as T, {
    get(_target, key) {
      throw new Error(`${name}.${String(key)} was used while the OpenAPI document was being built: routes may use their dependencies in handlers only`);
    },
  });
}

/** The document as /api/docs/json serves it. */
export async function openApiDocument(): Promise<object> {
  const deps: ApiDependencies = {
    registry: refusing('registry'),
    runtime: refusing('runtime'),
    logger: silentLogger,
    metricsRegistry: refusing('metricsRegistry'),
    adminToken: 'not-used',
    // Present, so that the routes registered only with a data plane (messages, stream, webhooks …) are documented too.
    platform: refusing<Platform>('platform'),
    connectionEvents: refusing<ConnectionEventRecorder>('connectionEvents'),
  };
  const app = buildApi(deps);
  try {
    await app.ready();
    return app.swagger();
  } finally {
    await app.close();
  }
}
