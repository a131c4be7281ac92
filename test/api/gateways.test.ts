/** Gateways through the REST API: create with its product, read, edit, start/stop, delete. */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { sql } from 'kysely';
import { getApiCerts, type ApiCerts } from './certs.ts';
import { expectError, gatewayBody, startTestApi, type TestApi, type DeviceJson, type DeviceListJson, type GatewayJson, type GatewayListJson, type ProductJson } from './helpers.ts';

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

/** The body of the key without its armour: if this appears anywhere, the key leaked. */
function keyMaterial(pem: string): string {
  return pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, '').slice(10, 60);
}

describe('create', () => {
  test('creates the gateway, its product Gateway<id>, its URL, defaults, and starts it', { timeout: 20_000 }, async () => {
    const reply = await api.call<GatewayJson>('POST', '/api/v1/gateways', { json: { name: 'create_1', certificates: { serverCertificateChain: certs.chain, serverPrivateKey: certs.key } } });
    assert.equal(reply.status, 201, reply.body);
    const gw = reply.json;
    assert.match(gw.id, /^[a-z0-9]{16}$/);
    assert.equal(gw.name, 'create_1');
    assert.equal(gw.protocol, 'MQTT');
    assert.equal(gw.port, 1883, 'default port');
    assert.equal(gw.url, 'mqtts://gw.example.com:1883');
    assert.equal(gw.authType, 'ONE_PARTY');
    assert.equal(gw.thirdParty, null);
    assert.deepEqual(gw.dataParsing, { enabled: false, script: null });
    assert.deepEqual(gw.x509, { enabled: false });
    assert.deepEqual(gw.ocsp, { mode: 'DISABLED', onResponderFailure: 'REJECT' });
    assert.equal(gw.enabled, true);
    assert.equal(gw.status, 'RUNNING');
    assert.equal(gw.statusReason, null);
    assert.deepEqual(gw.warnings, []);
    assert.equal(gw.certificates.serverCertificateChain, certs.chain);
    assert.equal('serverPrivateKey' in gw.certificates, false);
    assert.ok(api.runtime.calls.includes(`start ${gw.id}`));

    const product = await api.call<ProductJson>('GET', `/api/v1/products/${gw.productKey}`);
    assert.equal(product.status, 200);
    assert.deepEqual(product.json, { productKey: gw.productKey, name: `Gateway${gw.id}`, gatewayId: gw.id, deviceCount: 0,
      deviceCounts: { online: 0, offline: 0, inactive: 0, disabled: 0 }, createdAt: gw.createdAt });
    assert.ok(api.events.some((e) => e.name === 'gateway.created' && (e.payload as { gatewayId: string }).gatewayId === gw.id));
  });

  test('a full third-party HTTPS gateway with X.509 and OCSP round-trips', { timeout: 30_000 }, async () => {
    const body = gatewayBody(certs, {
      name: 'full_https',
      port: 8884,
      dataParsing: { enabled: true, script: 'function transformPayload(topic, bytes) { return { topic }; }' },
      authType: 'THIRD_PARTY',
      thirdParty: {
        provider: 'HTTPS', url: 'https://auth.example.com/verify',
        params: [{ key: 'sn', value: '${clientId}' }, { key: 'cn', value: 'x-${cert.cn}-${userProperties.model}' }],
        caCertificate: certs.root,
      },
      x509: { enabled: true },
      ocsp: { mode: 'SERVER_AND_CLIENT', onResponderFailure: 'ACCEPT' },
      certificates: {
        serverCertificateChain: certs.chain, serverPrivateKey: certs.key,
        deviceRootCertificates: certs.caBundle, trustedCertificate: certs.root,
      },
    });
    const created = await api.call<GatewayJson>('POST', '/api/v1/gateways', { json: body });
    assert.equal(created.status, 201, created.body);
    const got = await api.call<GatewayJson>('GET', `/api/v1/gateways/${created.json.id}`);
    assert.equal(got.status, 200);
    // A read answers what the create did, warnings included (both are the gateway's, as of now).
    assert.deepEqual(got.json, created.json);
    assert.deepEqual(got.json.thirdParty, { ...(body.thirdParty as object), timeoutMs: 5000, acceptCacheTtlSeconds: 60, rejectCacheTtlSeconds: 10, signingSecretSet: false });
    assert.deepEqual(got.json.ocsp, { mode: 'SERVER_AND_CLIENT', onResponderFailure: 'ACCEPT' });
    assert.equal(got.json.certificates.deviceRootCertificates, certs.caBundle);
    assert.equal(got.json.certificates.trustedCertificate, certs.root);
  });

  test('a start failure is reported as status ERROR with the reason, not as a failed create', { timeout: 5_000 }, async () => {
    const original = api.runtime.startGateway.bind(api.runtime);
    api.runtime.startGateway = (id) => {
      api.runtime.failures.set(id, 'port 8885 is in use');
      return original(id);
    };
    try {
      const reply = await api.call<GatewayJson>('POST', '/api/v1/gateways', { json: gatewayBody(certs, { name: 'busy_port', port: 8885 }) });
      assert.equal(reply.status, 201, reply.body);
      assert.equal(reply.json.status, 'ERROR');
      assert.equal(reply.json.statusReason, 'port 8885 is in use');
    } finally {
      api.runtime.startGateway = original;
    }
  });
});

describe('read, edit, start, stop, delete', () => {
  test('list carries id, name, url, status, productKey', { timeout: 5_000 }, async () => {
    const reply = await api.call<GatewayListJson>('GET', '/api/v1/gateways');
    assert.equal(reply.status, 200);
    assert.ok(reply.json.items.length >= 1);
    for (const item of reply.json.items) {
      for (const key of ['id', 'name', 'url', 'status', 'productKey']) assert.ok(key in item, `${key} in list item`);
      assert.equal('certificates' in item, false);
    }
  });

  test('unknown ID answers 404 GW_ERR_GATEWAY_NOT_FOUND', { timeout: 5_000 }, async () => {
    expectError(await api.call('GET', '/api/v1/gateways/nope'), 404, 'GW_ERR_GATEWAY_NOT_FOUND', 'id');
    expectError(await api.call('PATCH', '/api/v1/gateways/nope', { json: { name: 'whatever' } }), 404, 'GW_ERR_GATEWAY_NOT_FOUND', 'id');
    expectError(await api.call('DELETE', '/api/v1/gateways/nope'), 404, 'GW_ERR_GATEWAY_NOT_FOUND', 'id');
    expectError(await api.call('POST', '/api/v1/gateways/nope/start'), 404, 'GW_ERR_GATEWAY_NOT_FOUND', 'id');
    expectError(await api.call('POST', '/api/v1/gateways/nope/stop'), 404, 'GW_ERR_GATEWAY_NOT_FOUND', 'id');
  });

  test('PATCH changes what is given, keeps the rest, moves the URL with the port, and says what changed', { timeout: 5_000 }, async () => {
    const created = (await api.call<GatewayJson>('POST', '/api/v1/gateways', { json: gatewayBody(certs, { name: 'edit_me', port: 9001 }) })).json;
    api.events.length = 0;
    const reply = await api.call<GatewayJson>('PATCH', `/api/v1/gateways/${created.id}`, {
      json: { name: 'edited', port: 9002, certificates: { serverCertificateChain: certs.rotatedChain, serverPrivateKey: certs.rotatedKey } },
    });
    assert.equal(reply.status, 200, reply.body);
    assert.equal(reply.json.name, 'edited');
    assert.equal(reply.json.port, 9002);
    assert.equal(reply.json.url, 'mqtts://gw.example.com:9002');
    assert.equal(reply.json.certificates.serverCertificateChain, certs.rotatedChain);
    assert.equal(reply.json.authType, 'ONE_PARTY');
    assert.equal(reply.json.createdAt, created.createdAt);
    assert.deepEqual(api.events, [{ name: 'gateway.updated', payload: { gatewayId: created.id, productKey: created.productKey, changed: ['name', 'port', 'certificates'] } }]);

    const config = await api.registry.getGatewayRuntimeConfig(created.id);
    assert.equal(config.certificates.serverPrivateKey.includes('PRIVATE KEY'), true);
    assert.equal(config.certificates.serverCertificateChain, certs.rotatedChain);

    // The same values again change nothing and emit nothing.
    api.events.length = 0;
    const again = await api.call<GatewayJson>('PATCH', `/api/v1/gateways/${created.id}`, { json: { name: 'edited', port: 9002 } });
    assert.equal(again.status, 200);
    assert.deepEqual(api.events, []);
  });

  test('PATCH can switch to third party and back; switching back drops the provider', { timeout: 5_000 }, async () => {
    const created = (await api.call<GatewayJson>('POST', '/api/v1/gateways', { json: gatewayBody(certs, { name: 'switcher', port: 9003 }) })).json;
    const third = await api.call<GatewayJson>('PATCH', `/api/v1/gateways/${created.id}`, {
      json: { authType: 'THIRD_PARTY', thirdParty: { provider: 'HTTPS', url: 'https://verify.example.com/' } },
    });
    assert.equal(third.status, 200, third.body);
    // The HTTPS provider's optional settings come back with their defaults (issue 5).
    assert.deepEqual(third.json.thirdParty, { provider: 'HTTPS', url: 'https://verify.example.com/', params: [], caCertificate: null, timeoutMs: 5000, acceptCacheTtlSeconds: 60, rejectCacheTtlSeconds: 10, signingSecretSet: false });
    const back = await api.call<GatewayJson>('PATCH', `/api/v1/gateways/${created.id}`, { json: { authType: 'ONE_PARTY' } });
    assert.equal(back.status, 200, back.body);
    assert.equal(back.json.thirdParty, null);
  });

  test('stop and start record the wish and drive the runtime', { timeout: 10_000 }, async () => {
    const created = (await api.call<GatewayJson>('POST', '/api/v1/gateways', { json: gatewayBody(certs, { name: 'toggle', port: 9004 }) })).json;
    api.events.length = 0;
    const stopped = await api.call<GatewayJson>('POST', `/api/v1/gateways/${created.id}/stop`);
    assert.equal(stopped.status, 200);
    assert.equal(stopped.json.status, 'STOPPED');
    assert.equal(stopped.json.enabled, false);
    const started = await api.call<GatewayJson>('POST', `/api/v1/gateways/${created.id}/start`);
    assert.equal(started.json.status, 'RUNNING');
    assert.equal(started.json.enabled, true);
    assert.deepEqual(api.runtime.calls.slice(-2), [`stop ${created.id}`, `start ${created.id}`]);
    assert.deepEqual(api.events.map((e) => e.name), ['gateway.stopped', 'gateway.started']);
    assert.equal((await api.registry.getGatewayRuntimeConfig(created.id)).enabled, true);
    // A start of a gateway already on: a retry, told to the other nodes too (one left in ERROR there tries again).
    const again = await api.call<GatewayJson>('POST', `/api/v1/gateways/${created.id}/start`);
    assert.equal(again.json.status, 'RUNNING');
    assert.deepEqual(api.events.map((e) => e.name), ['gateway.stopped', 'gateway.started', 'gateway.started']);
  });

  test('DELETE stops it, removes product and devices, frees name and port', { timeout: 5_000 }, async () => {
    const created = (await api.call<GatewayJson>('POST', '/api/v1/gateways', { json: gatewayBody(certs, { name: 'doomed', port: 9005 }) })).json;
    const device = await api.call<DeviceJson>('POST', `/api/v1/products/${created.productKey}/devices`, { json: { username: 'dev-0001', password: 'pw' } });
    assert.equal(device.status, 201);
    const deleted = await api.call('DELETE', `/api/v1/gateways/${created.id}`);
    assert.equal(deleted.status, 204);
    assert.equal(deleted.body, '');
    assert.ok(api.runtime.calls.includes(`stop ${created.id}`));
    expectError(await api.call<GatewayJson>('GET', `/api/v1/gateways/${created.id}`), 404, 'GW_ERR_GATEWAY_NOT_FOUND');
    expectError(await api.call<ProductJson>('GET', `/api/v1/products/${created.productKey}`), 404, 'GW_ERR_PRODUCT_NOT_FOUND');
    expectError(await api.call<DeviceListJson>('GET', `/api/v1/products/${created.productKey}/devices`), 404, 'GW_ERR_PRODUCT_NOT_FOUND');
    assert.ok(api.events.some((e) => e.name === 'gateway.deleted'));
    const reuse = await api.call<GatewayJson>('POST', '/api/v1/gateways', { json: gatewayBody(certs, { name: 'doomed', port: 9005 }) });
    assert.equal(reuse.status, 201, reuse.body);
  });
});

describe('the private key', () => {
  test('is never in any response', { timeout: 5_000 }, async () => {
    const created = await api.call<GatewayJson>('POST', '/api/v1/gateways', { json: gatewayBody(certs, { name: 'secretive', port: 9006 }) });
    const id = created.json.id;
    const material = keyMaterial(certs.key);
    const replies = [
      created,
      await api.call<GatewayListJson>('GET', '/api/v1/gateways'),
      await api.call<GatewayJson>('GET', `/api/v1/gateways/${id}`),
      await api.call<GatewayJson>('PATCH', `/api/v1/gateways/${id}`, { json: { name: 'secretive2' } }),
      await api.call<GatewayJson>('POST', `/api/v1/gateways/${id}/stop`),
      await api.call<GatewayJson>('POST', `/api/v1/gateways/${id}/start`),
      await api.call('GET', '/api/v1/products'),
    ];
    for (const reply of replies) {
      assert.ok(!reply.body.includes('PRIVATE KEY'), `no PEM key in ${reply.body.slice(0, 80)}`);
      assert.ok(!reply.body.includes(material), 'no key material');
      assert.ok(!reply.body.includes('serverPrivateKey'), 'no key field');
    }
  });

  test('is encrypted at rest, bound to its gateway', { timeout: 5_000 }, async () => {
    const rows = await sql<{ id: string; server_private_key_encrypted: string }>`select id, server_private_key_encrypted from gateways`.execute(api.storage.db);
    assert.ok(rows.rows.length > 0);
    for (const row of rows.rows) {
      assert.match(row.server_private_key_encrypted, /^v1:/);
      assert.ok(!row.server_private_key_encrypted.includes('PRIVATE KEY'));
    }
    // A ciphertext moved to another gateway's row does not decrypt there.
    const [a, b] = rows.rows;
    assert.ok(a && b);
    await sql`update gateways set server_private_key_encrypted = ${a.server_private_key_encrypted} where id = ${b.id}`.execute(api.storage.db);
    await assert.rejects(api.registry.getGatewayRuntimeConfig(b.id), /does not decrypt/);
  });
});
