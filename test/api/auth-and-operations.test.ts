/** The admin token on every /api/v1 route, the OpenAPI document, /health and /metrics. */
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { after, before, describe, test } from 'node:test';
import { expectError, startTestApi, type TestApi, ADMIN_TOKEN, type GatewayListJson } from './helpers.ts';

let api: TestApi;

/** The parts of the OpenAPI document the tests read. */
interface OpenApiDocument {
  openapi: string;
  components: { securitySchemes: Record<string, unknown>; schemas?: Record<string, { properties?: Record<string, unknown>; items?: unknown }> };
  paths: Record<string, Record<string, {
    requestBody?: { content: Record<string, unknown> };
    responses?: Record<string, unknown>;
  } | undefined>>;
}

interface HealthJson {
  status: string;
  checks: Record<string, string>;
  uptimeSeconds: number;
}

before(async () => {
  api = await startTestApi();
}, { timeout: 60_000 });
after(() => api.close(), { timeout: 30_000 });

const V1_ROUTES: [string, string][] = [
  ['GET', '/api/v1/gateways'], ['POST', '/api/v1/gateways'], ['GET', '/api/v1/gateways/x'], ['PATCH', '/api/v1/gateways/x'],
  ['DELETE', '/api/v1/gateways/x'], ['POST', '/api/v1/gateways/x/start'], ['POST', '/api/v1/gateways/x/stop'],
  ['GET', '/api/v1/products'], ['GET', '/api/v1/products/p'], ['POST', '/api/v1/products/p/devices'],
  ['POST', '/api/v1/products/p/devices/import'], ['GET', '/api/v1/products/p/devices'], ['GET', '/api/v1/products/p/devices/d'],
  ['PATCH', '/api/v1/products/p/devices/d'], ['DELETE', '/api/v1/products/p/devices/d'], ['POST', '/api/v1/functions'],
  ['GET', '/api/v1/functions'], ['GET', '/api/v1/functions/f'], ['PUT', '/api/v1/functions/f'], ['DELETE', '/api/v1/functions/f'],
  ['GET', '/api/v1/health'], ['GET', '/api/v1/metrics'], ['GET', '/api/v1/no-such-route'],
];

describe('admin token', () => {
  for (const [method, url] of V1_ROUTES) {
    test(`${method} ${url} without a token → 401 GW_ERR_UNAUTHORIZED`, { timeout: 5_000 }, async () => {
      const reply = await api.call(method, url, { token: null, json: method === 'GET' || method === 'DELETE' ? undefined : {} });
      expectError(reply, 401, 'GW_ERR_UNAUTHORIZED', 'authorization');
      assert.match(String(reply.headers['www-authenticate']), /^Bearer/);
    });
  }

  test('a wrong token, a prefix of it, or another scheme → 401', { timeout: 5_000 }, async () => {
    expectError(await api.call('GET', '/api/v1/gateways', { token: 'wrong-token-0123456789abcdef' }), 401, 'GW_ERR_UNAUTHORIZED');
    expectError(await api.call('GET', '/api/v1/gateways', { token: ADMIN_TOKEN.slice(0, -1) }), 401, 'GW_ERR_UNAUTHORIZED');
    expectError(await api.call('GET', '/api/v1/gateways', { token: `${ADMIN_TOKEN}x` }), 401, 'GW_ERR_UNAUTHORIZED');
    // The token is compared byte for byte: the same letters in another case are another token (issue 18).
    assert.notEqual(ADMIN_TOKEN.toUpperCase(), ADMIN_TOKEN, 'the test token must have letters');
    expectError(await api.call('GET', '/api/v1/gateways', { token: ADMIN_TOKEN.toUpperCase() }), 401, 'GW_ERR_UNAUTHORIZED');
    expectError(await api.call('GET', '/api/v1/gateways', { token: ADMIN_TOKEN.replace(/[a-z]/, (c) => c.toUpperCase()) }), 401, 'GW_ERR_UNAUTHORIZED');
    expectError(await api.call('GET', '/api/v1/gateways', { token: null, headers: { authorization: `Basic ${ADMIN_TOKEN}` } }), 401, 'GW_ERR_UNAUTHORIZED');
    expectError(await api.call('GET', '/api/v1/gateways', { token: null, headers: { authorization: 'Bearer' } }), 401, 'GW_ERR_UNAUTHORIZED');
  });

  test('the right token passes, scheme case-insensitive', { timeout: 5_000 }, async () => {
    assert.equal((await api.call<GatewayListJson>('GET', '/api/v1/gateways')).status, 200);
    assert.equal((await api.call('GET', '/api/v1/gateways', { token: null, headers: { authorization: `bearer ${ADMIN_TOKEN}` } })).status, 200);
  });

  test('an unknown route with the token → 404 GW_ERR_NOT_FOUND', { timeout: 5_000 }, async () => {
    expectError(await api.call('GET', '/api/v1/no-such-route'), 404, 'GW_ERR_NOT_FOUND');
    expectError(await api.call('GET', '/nothing-here', { token: null }), 404, 'GW_ERR_NOT_FOUND');
  });
});

describe('OpenAPI', () => {
  test('/api/docs/json is public and lists every v1 path with the bearer scheme', { timeout: 10_000 }, async () => {
    const reply = await api.call<OpenApiDocument>('GET', '/api/docs/json', { token: null });
    assert.equal(reply.status, 200);
    const doc = reply.json;
    assert.equal(doc.openapi, '3.0.3');
    assert.deepEqual(doc.components.securitySchemes.adminToken, { type: 'http', scheme: 'bearer' });
    for (const path of [
      '/api/v1/gateways', '/api/v1/gateways/{id}', '/api/v1/gateways/{id}/start', '/api/v1/gateways/{id}/stop',
      '/api/v1/products', '/api/v1/products/{productKey}', '/api/v1/products/{productKey}/devices',
      '/api/v1/products/{productKey}/devices/import', '/api/v1/products/{productKey}/devices/{deviceName}',
      '/api/v1/functions', '/api/v1/functions/{name}', '/api/v1/health', '/api/v1/metrics',
    ]) {
      assert.ok(doc.paths[path], `${path} documented`);
    }
    const importBody = doc.paths['/api/v1/products/{productKey}/devices/import']?.post?.requestBody?.content ?? {};
    assert.ok(importBody['application/json'] && importBody['text/csv'], 'import documents JSON and CSV bodies');
    // Issue 13: the rules, the limits and a third-party verifier's answer (with its acl) are named schemas.
    const schemas = doc.components.schemas ?? {};
    assert.deepEqual(Object.keys(schemas.AccessControl?.properties ?? {}), ['defaultAction', 'rules']);
    assert.ok(schemas.AclRules?.items, 'AclRules is a list of rules');
    assert.ok(schemas.GatewayLimits?.properties?.maxConnections && schemas.GatewayLimits.properties.maxSessionsPerDevice, 'every limit is documented');
    assert.ok(schemas.ThirdPartyVerificationAnswer?.properties?.acl && schemas.ThirdPartyVerificationAnswer.properties.deviceName);
    const created = doc.paths['/api/v1/gateways']?.post?.responses?.['201'];
    assert.ok(!JSON.stringify(created).includes('serverPrivateKey'), 'the response schema has no private key');
  });

  test('/api/docs serves Swagger UI', { timeout: 5_000 }, async () => {
    const reply = await api.app.inject({ method: 'GET', url: '/api/docs/' });
    assert.equal(reply.statusCode, 200);
    assert.match(reply.body, /swagger/i);
  });
});

describe('operations', () => {
  test('/health answers ok with storage reachable', { timeout: 5_000 }, async () => {
    const reply = await api.call<HealthJson>('GET', '/api/v1/health');
    assert.equal(reply.status, 200);
    assert.equal(reply.json.status, 'ok');
    assert.deepEqual(reply.json.checks, { storage: 'ok' });
    assert.equal(typeof reply.json.uptimeSeconds, 'number');
  });

  test('/metrics answers the Prometheus text format of the registry passed in', { timeout: 15_000 }, async () => {
    const { Registry, Counter } = await import('prom-client');
    const { buildApi } = await import('../../src/api/index.ts');
    const { silentLogger } = await import('../../src/core/logger.ts');
    const metrics = new Registry();
    new Counter({ name: 'gatehouse_test_total', help: 'a test counter', registers: [metrics] }).inc(3);
    const app = buildApi({ registry: api.registry, runtime: api.runtime, logger: silentLogger, metricsRegistry: metrics, adminToken: ADMIN_TOKEN });
    try {
      const reply = await app.inject({ method: 'GET', url: '/api/v1/metrics', headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
      assert.equal(reply.statusCode, 200);
      assert.match(String(reply.headers['content-type']), /^text\/plain/);
      assert.match(reply.body, /gatehouse_test_total 3/);
    } finally {
      await app.close();
    }
  });

  test('/health answers 503 when storage does not', { timeout: 5_000 }, async () => {
    const original = api.registry.ping.bind(api.registry);
    api.registry.ping = () => Promise.reject(new Error('database is gone'));
    try {
      const reply = await api.call<HealthJson>('GET', '/api/v1/health');
      assert.equal(reply.status, 503);
      assert.deepEqual(reply.json.checks, { storage: 'error' });
    } finally {
      api.registry.ping = original;
    }
  });
});

describe('probes at the root', () => {
  test('/ready is 503 with storage "error" once the database is closed; /health stays 200; neither needs a token', { timeout: 15_000 }, async () => {
    const own = await startTestApi();
    try {
      const ready = await own.call<{ status: string; checks: Record<string, string> }>('GET', '/ready', { token: null });
      assert.equal(ready.status, 200);
      assert.deepEqual(ready.json.checks, { storage: 'ok', gateways: 'ok' });
      await own.storage.close(); // the real database goes away, not a stub
      const down = await own.call<{ status: string; checks: Record<string, string> }>('GET', '/ready', { token: null });
      assert.equal(down.status, 503);
      assert.deepEqual(down.json, { status: 'not_ready', checks: { storage: 'error', gateways: 'unknown' }, gatewaysNotReady: [] });
      assert.equal((await own.call('GET', '/health', { token: null })).status, 200);
    } finally {
      await own.app.close();
      await rm(own.dataDir, { recursive: true, force: true });
    }
  });

  test('OpenAPI documents /health and /ready without the bearer requirement', { timeout: 5_000 }, async () => {
    const doc = (await api.call<{ paths: Record<string, Record<string, { security?: unknown[] }>> }>('GET', '/api/docs/json', { token: null })).json;
    assert.deepEqual(doc.paths['/health']?.get?.security, []);
    assert.deepEqual(doc.paths['/ready']?.get?.security, []);
  });
});
