/**
 * The shared API client (src/client/) against the real API on 127.0.0.1: answers as their typed bodies, every
 * failure as one ApiError (the API's code, message and field; a refused token; no answer at all), a caller's
 * abort left as it is, and a paged list walked to its end.
 */
import assert from 'node:assert/strict';
import { createServer, type AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { allItems, ApiError, apiError, createApiClient, ok, type ApiClient, type ApiClientOptions, type GatewayCreate } from '../../src/client/index.ts';
import { getApiCerts, type ApiCerts } from './certs.ts';
import { ADMIN_TOKEN, gatewayBody, startTestApi, type TestApi } from './helpers.ts';

let api: TestApi;
let certs: ApiCerts;
let baseUrl: string;

before(async () => {
  certs = await getApiCerts();
  api = await startTestApi();
  await api.app.listen({ host: '127.0.0.1', port: 0 });
  baseUrl = `http://127.0.0.1:${(api.app.server.address() as AddressInfo).port}`;
}, { timeout: 60_000 });
after(async () => {
  await api.close();
  await certs.dispose();
}, { timeout: 30_000 });

const unreachable: ApiClientOptions['unreachable'] = (cause) => new ApiError(0, 'TEST_UNREACHABLE', `no answer: ${cause}`, null);
const client = (options: Partial<ApiClientOptions> = {}): ApiClient => createApiClient({ baseUrl, token: () => ADMIN_TOKEN, unreachable, ...options });

/** The ApiError a call rejects with (fails when it resolves or throws anything else). */
async function failure(pending: Promise<unknown>): Promise<ApiError> {
  try {
    await pending;
  } catch (error) {
    assert.ok(error instanceof ApiError, `expected an ApiError, got ${String(error)}`);
    return error;
  }
  assert.fail('the call succeeded');
}

describe('answers', () => {
  test('a 2xx answer is its body; path parameters are encoded; the token read at each request goes along', { timeout: 10_000 }, async () => {
    let reads = 0;
    const c = client({ token: () => { reads++; return ADMIN_TOKEN; } });
    const created = await ok(c.PUT('/api/v1/functions/{name}', {
      params: { path: { name: 'verify_client' } },
      body: { source: 'function handler() { return { result: "false" }; }', timeoutMs: 2000 },
    }));
    assert.equal(created.name, 'verify_client');
    assert.equal(created.timeoutMs, 2000);
    const { items } = await ok(c.GET('/api/v1/functions'));
    assert.deepEqual(items.map((f) => f.name), ['verify_client']);
    assert.equal(reads, 2);
    // A name that is not a path segment reaches the server as one parameter (and is not found), not as another route.
    const odd = await failure(ok(c.GET('/api/v1/functions/{name}', { params: { path: { name: '../gateways' } } })));
    assert.equal(odd.code, 'GW_ERR_FUNCTION_NOT_FOUND');
    await ok(c.DELETE('/api/v1/functions/{name}', { params: { path: { name: 'verify_client' } } }));
  });
});

describe('errors', () => {
  test('a refused input is ApiError with the API\'s status, code, message and field', { timeout: 10_000 }, async () => {
    const error = await failure(ok(client().PUT('/api/v1/functions/{name}', {
      params: { path: { name: 'too_slow' } }, body: { source: 'function handler() {}', timeoutMs: 1 },
    })));
    assert.equal(error.status, 400);
    assert.equal(error.field, 'timeoutMs');
    assert.match(error.code, /^GW_ERR_/);
    assert.match(error.message, /timeoutMs/);
  });

  test('an unknown resource is the API\'s 404 code, naming the parameter', { timeout: 10_000 }, async () => {
    const error = await failure(ok(client().GET('/api/v1/gateways/{id}', { params: { path: { id: 'no-such-gateway' } } })));
    assert.deepEqual({ status: error.status, code: error.code, field: error.field }, { status: 404, code: 'GW_ERR_GATEWAY_NOT_FOUND', field: 'id' });
  });

  test('a refused token is 401 GW_ERR_UNAUTHORIZED, and onUnauthorized hears of it first', { timeout: 10_000 }, async () => {
    const heard: string[] = [];
    const c = client({ token: () => 'not-the-token', onUnauthorized: () => heard.push('401') });
    const error = await failure(ok(c.GET('/api/v1/gateways')));
    assert.equal(error.status, 401);
    assert.equal(error.code, 'GW_ERR_UNAUTHORIZED');
    assert.deepEqual(heard, ['401']);
    // No token at all: the same answer.
    const none = await failure(ok(client({ token: () => null }).GET('/api/v1/gateways')));
    assert.equal(none.code, 'GW_ERR_UNAUTHORIZED');
  });

  test('no answer (nothing listens) is the caller\'s unreachable error, with the socket\'s reason', { timeout: 10_000 }, async () => {
    // A port that was just free: nothing listens there now.
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const { port } = probe.address() as AddressInfo;
    await new Promise((resolve) => probe.close(resolve));
    const error = await failure(ok(client({ baseUrl: `http://127.0.0.1:${port}` }).GET('/api/v1/gateways')));
    assert.equal(error.status, 0);
    assert.equal(error.code, 'TEST_UNREACHABLE');
    assert.match(error.message, /^no answer: .*ECONNREFUSED/);
  });

  test('a caller\'s abort stays an abort, not "unreachable"', { timeout: 10_000 }, async () => {
    const abort = new AbortController();
    abort.abort();
    await assert.rejects(ok(client().GET('/api/v1/gateways', { signal: abort.signal })), (error: Error) => {
      assert.ok(!(error instanceof ApiError), `got ${String(error)}`);
      assert.equal(error.name, 'AbortError');
      return true;
    });
  });

  test('an error body that is not the API\'s shape keeps the status, as HTTP_<status> with the text', { timeout: 5_000 }, () => {
    const text = apiError(new Response('upstream down', { status: 502, statusText: 'Bad Gateway' }), 'upstream down');
    assert.deepEqual({ status: text.status, code: text.code, message: text.message, field: text.field }, {
      status: 502, code: 'HTTP_502', message: 'upstream down', field: null,
    });
    const empty = apiError(new Response(null, { status: 503, statusText: 'Service Unavailable' }), undefined);
    assert.equal(empty.message, '503 Service Unavailable');
  });
});

describe('paged lists', () => {
  test('allItems walks a product\'s devices page by page to the last, in order, none twice', { timeout: 60_000 }, async () => {
    const c = client();
    const gateway = await ok(c.POST('/api/v1/gateways', { body: gatewayBody(certs, { name: 'client_pages', port: 8871 }) as GatewayCreate }));
    const rows = Array.from({ length: 7 }, (_, i) => ({ username: `pager-${i}`, password: 'pw' }));
    const imported = await ok(c.POST('/api/v1/products/{productKey}/devices/import', { params: { path: { productKey: gateway.productKey } }, body: rows }));
    assert.equal(imported.created, 7);
    const pages: number[] = [];
    const names: string[] = [];
    for await (const device of allItems(async (cursor) => {
      const page = await ok(c.GET('/api/v1/products/{productKey}/devices', { params: { path: { productKey: gateway.productKey }, query: { limit: 3, cursor } } }));
      pages.push(page.items.length);
      assert.equal(page.total, 7);
      return page;
    })) names.push(device.deviceName);
    assert.deepEqual(pages, [3, 3, 1]);
    assert.deepEqual(names, rows.map((r) => r.username));
  });
});
