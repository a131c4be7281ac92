/** Verification functions: CRUD and their rules. */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { getApiCerts, type ApiCerts } from './certs.ts';
import { expectError, gatewayBody, startTestApi, type TestApi, type FunctionJson, type FunctionListJson, type GatewayJson } from './helpers.ts';

let api: TestApi;
let certs: ApiCerts;

before(async () => {
  certs = await getApiCerts();
  api = await startTestApi();
}, { timeout: 60_000 });
after(async () => {
  await api.close();
  await certs.dispose();
}, { timeout: 30_000 });

const SOURCE = 'async function handler(event) {\n  return { result: event.password === "ok" ? "true" : "false", deviceName: event.userName };\n}\n';
const create = (json: unknown) => api.call<FunctionJson>('POST', '/api/v1/functions', { json });

describe('functions', () => {
  test('create with defaults, get, list, replace, delete', { timeout: 60_000 }, async () => {
    const created = await create({ name: 'verify_a', source: SOURCE });
    assert.equal(created.status, 201, created.body);
    assert.equal(created.json.name, 'verify_a');
    assert.equal(created.json.source, SOURCE);
    assert.equal(created.json.timeoutMs, 5000);
    assert.equal(created.json.memoryMb, 64);

    assert.deepEqual((await api.call<FunctionJson>('GET', '/api/v1/functions/verify_a')).json, created.json);
    assert.equal((await create({ name: 'verify-b', source: SOURCE, timeoutMs: 10, memoryMb: 256 })).status, 201);
    assert.deepEqual((await api.call<FunctionListJson>('GET', '/api/v1/functions')).json.items.map((f: { name: string }) => f.name), ['verify-b', 'verify_a']);

    api.events.length = 0;
    const replaced = await api.call<FunctionJson>('PUT', '/api/v1/functions/verify_a', { json: { source: 'function handler() { return { result: "false" }; }', timeoutMs: 100 } });
    assert.equal(replaced.status, 200, replaced.body);
    assert.equal(replaced.json.timeoutMs, 100);
    assert.equal(replaced.json.memoryMb, 64);
    assert.equal(replaced.json.createdAt, created.json.createdAt);
    // What is stored is the new version, not only what the answer says.
    const reread = await api.call<FunctionJson>('GET', '/api/v1/functions/verify_a');
    assert.equal(reread.json.source, 'function handler() { return { result: "false" }; }');
    assert.equal(reread.json.timeoutMs, 100);
    const upserted = await api.call<FunctionJson>('PUT', '/api/v1/functions/verify_c', { json: { source: SOURCE } });
    assert.equal(upserted.status, 201);
    assert.equal((await api.call<FunctionJson>('GET', '/api/v1/functions/verify_c')).json.source, SOURCE);

    assert.equal((await api.call('DELETE', '/api/v1/functions/verify_c')).status, 204);
    expectError(await api.call<FunctionJson>('GET', '/api/v1/functions/verify_c'), 404, 'GW_ERR_FUNCTION_NOT_FOUND', 'name');
    assert.deepEqual(api.events.map((e) => e.name), ['function.updated', 'function.created', 'function.deleted']);
  });

  for (const [why, name] of [['empty', ''], ['a space', 'my fn'], ['a dot', 'fn.js'], ['65 characters', 'f'.repeat(65)]]) {
    test(`name with ${why} → GW_ERR_FUNCTION_NAME_INVALID`, { timeout: 5_000 }, async () => {
      expectError(await create({ name, source: SOURCE }), 400, 'GW_ERR_FUNCTION_NAME_INVALID', 'name');
    });
  }

  test('a taken name → GW_ERR_FUNCTION_NAME_TAKEN', { timeout: 5_000 }, async () => {
    assert.equal((await create({ name: 'taken_fn', source: SOURCE })).status, 201);
    expectError(await create({ name: 'taken_fn', source: SOURCE }), 409, 'GW_ERR_FUNCTION_NAME_TAKEN', 'name');
  });

  test('limits out of range → GW_ERR_FUNCTION_LIMIT_OUT_OF_RANGE naming which', { timeout: 5_000 }, async () => {
    expectError(await create({ name: 'lim_1', source: SOURCE, timeoutMs: 9 }), 400, 'GW_ERR_FUNCTION_LIMIT_OUT_OF_RANGE', 'timeoutMs');
    expectError(await create({ name: 'lim_1', source: SOURCE, timeoutMs: 30_001 }), 400, 'GW_ERR_FUNCTION_LIMIT_OUT_OF_RANGE', 'timeoutMs');
    expectError(await create({ name: 'lim_1', source: SOURCE, memoryMb: 4 }), 400, 'GW_ERR_FUNCTION_LIMIT_OUT_OF_RANGE', 'memoryMb');
    expectError(await create({ name: 'lim_1', source: SOURCE, memoryMb: 1024 }), 400, 'GW_ERR_FUNCTION_LIMIT_OUT_OF_RANGE', 'memoryMb');
    expectError(await api.call('PUT', '/api/v1/functions/lim_1', { json: { source: SOURCE, memoryMb: 1 } }), 400, 'GW_ERR_FUNCTION_LIMIT_OUT_OF_RANGE', 'memoryMb');
  });

  test('empty source → GW_ERR_SCRIPT_REQUIRED; a syntax error → GW_ERR_SCRIPT_SYNTAX', { timeout: 5_000 }, async () => {
    expectError(await create({ name: 'src_1', source: '  ' }), 400, 'GW_ERR_SCRIPT_REQUIRED', 'source');
    expectError(await create({ name: 'src_1', source: 'function handler( {' }), 400, 'GW_ERR_SCRIPT_SYNTAX', 'source');
    expectError(await create({ name: 'src_1' }), 400, 'GW_ERR_VALIDATION', 'source');
  });

  test('a function a gateway uses cannot be deleted → GW_ERR_FUNCTION_IN_USE', { timeout: 10_000 }, async () => {
    assert.equal((await create({ name: 'in_use', source: SOURCE })).status, 201);
    const gw = await api.call<GatewayJson>('POST', '/api/v1/gateways', {
      json: gatewayBody(certs, { name: 'fn_user', authType: 'THIRD_PARTY', thirdParty: { provider: 'FUNCTION', functionName: 'in_use' } }),
    });
    assert.equal(gw.status, 201, gw.body);
    const error = expectError(await api.call('DELETE', '/api/v1/functions/in_use'), 409, 'GW_ERR_FUNCTION_IN_USE', 'name');
    assert.match(error.message, /fn_user/);
    const unhooked = await api.call<GatewayJson>('PATCH', `/api/v1/gateways/${gw.json.id}`, { json: { authType: 'ONE_PARTY' } });
    assert.equal(unhooked.status, 200);
    assert.equal(unhooked.json.authType, 'ONE_PARTY');
    assert.equal((await api.call('DELETE', '/api/v1/functions/in_use')).status, 204);
    expectError(await api.call('GET', '/api/v1/functions/in_use'), 404, 'GW_ERR_FUNCTION_NOT_FOUND', 'name');
  });

  test('unknown function → GW_ERR_FUNCTION_NOT_FOUND', { timeout: 5_000 }, async () => {
    expectError(await api.call<FunctionJson>('GET', '/api/v1/functions/nope'), 404, 'GW_ERR_FUNCTION_NOT_FOUND', 'name');
    expectError(await api.call('DELETE', '/api/v1/functions/nope'), 404, 'GW_ERR_FUNCTION_NOT_FOUND', 'name');
  });
});
