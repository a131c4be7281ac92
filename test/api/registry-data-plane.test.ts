/**
 * The registry's narrow interface for the data plane (`RegistryForDataPlane`), over real SQLite,
 * with what the API then shows.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { GatehouseError } from '../../src/core/errors.ts';
import { createRegistry } from '../../src/registry/index.ts';
import { silentLogger } from '../../src/core/logger.ts';
import { getApiCerts, type ApiCerts } from './certs.ts';
import { gatewayBody, startTestApi, type TestApi, type DeviceJson, type DeviceListJson, type GatewayJson } from './helpers.ts';

let api: TestApi;
let certs: ApiCerts;
let gateway: { id: string; productKey: string };

before(async () => {
  certs = await getApiCerts();
  api = await startTestApi();
  gateway = (await api.call<GatewayJson>('POST', '/api/v1/gateways', { json: gatewayBody(certs) })).json;
  const device = await api.call<DeviceJson>('POST', `/api/v1/products/${gateway.productKey}/devices`, { json: { username: 'dp-user-1', password: 'right:pw', deviceName: 'dp-device-1' } });
  assert.equal(device.status, 201, device.body);
}, { timeout: 60_000 });
after(async () => {
  await api.close();
  await certs.dispose();
}, { timeout: 30_000 });

describe('registry for the data plane', () => {
  test('runtime config carries the decrypted key, the chain and the settings', { timeout: 5_000 }, async () => {
    const config = await api.registry.getGatewayRuntimeConfig(gateway.id);
    assert.equal(config.id, gateway.id);
    assert.equal(config.productKey, gateway.productKey);
    assert.equal(config.port, 8883);
    assert.equal(config.enabled, true);
    assert.equal(config.certificates.serverCertificateChain, certs.chain);
    // Stored normalised to PKCS#8: compare the key itself, not the text.
    const { createPrivateKey } = await import('node:crypto');
    assert.equal(
      createPrivateKey(config.certificates.serverPrivateKey).export({ format: 'jwk' }).d,
      createPrivateKey(certs.key).export({ format: 'jwk' }).d,
    );
    assert.deepEqual((await api.registry.listGatewayRuntimeConfigs()).map((c) => c.id), [gateway.id]);
    await assert.rejects(api.registry.getGatewayRuntimeConfig('nope'), (e: unknown) => e instanceof GatehouseError && e.code === 'GW_ERR_GATEWAY_NOT_FOUND');
  });

  test('credential lookup and constant-time verification', { timeout: 5_000 }, async () => {
    const credential = await api.registry.findDeviceCredential(gateway.productKey, 'dp-user-1');
    assert.ok(credential);
    assert.equal(credential.deviceName, 'dp-device-1');
    assert.equal(credential.disabled, false);
    assert.match(credential.passwordHash, /^scrypt\$4096\$8\$1\$/);
    assert.equal(await api.registry.verifyPassword(credential.passwordHash, 'right:pw'), true);
    assert.equal(await api.registry.verifyPassword(credential.passwordHash, Buffer.from('right:pw')), true, 'CONNECT passwords arrive as bytes');
    assert.equal(await api.registry.verifyPassword(credential.passwordHash, 'wrong:pw'), false);
    assert.equal(await api.registry.verifyPassword(credential.passwordHash, ''), false);
    assert.equal(await api.registry.findDeviceCredential(gateway.productKey, 'dp-device-1'), undefined, 'by username, not device name');
    assert.equal(await api.registry.findDeviceCredential('other-product', 'dp-user-1'), undefined);
    assert.equal(await api.registry.verifyPassword(undefined, 'anything'), false, 'unknown user: a dummy hash is checked, answer false');
    assert.equal(await api.registry.verifyPassword('garbage', 'anything'), false);
  });

  test('connected and disconnected show in the API as ONLINE / OFFLINE with address and certificate', { timeout: 5_000 }, async () => {
    const at = new Date('2026-03-01T10:00:00.000Z');
    const certificate = { cn: 'device-001', serial: '1003', issuer: 'CN=Gatehouse Test Intermediate CA', fingerprint256: 'AB:CD' };
    api.events.length = 0;
    await api.registry.recordDeviceConnected(gateway.productKey, 'dp-device-1', { clientAddress: '127.0.0.1:50000', at, certificate });
    let shown = (await api.call<DeviceJson>('GET', `/api/v1/products/${gateway.productKey}/devices/dp-device-1`)).json;
    assert.equal(shown.status, 'ONLINE');
    assert.equal(shown.lastOnlineAt, at.toISOString());
    assert.equal(shown.clientAddress, '127.0.0.1:50000');
    assert.deepEqual(shown.certificate, certificate);

    await api.registry.recordDeviceDisconnected(gateway.productKey, 'dp-device-1', { at: new Date('2026-03-01T11:00:00.000Z') });
    shown = (await api.call<DeviceJson>('GET', `/api/v1/products/${gateway.productKey}/devices/dp-device-1`)).json;
    assert.equal(shown.status, 'OFFLINE');
    assert.equal(shown.lastOnlineAt, at.toISOString(), 'last connect is kept');
    assert.deepEqual(api.events.map((e) => e.name), ['device.connected', 'device.disconnected']);
    assert.deepEqual(api.events[0]?.payload, {
      gatewayId: gateway.id, productKey: gateway.productKey, deviceName: 'dp-device-1', username: 'dp-user-1',
      clientAddress: '127.0.0.1:50000', at: at.toISOString(),
    });
  });

  test('a device a third-party service accepted is created on its first connection', { timeout: 5_000 }, async () => {
    api.events.length = 0;
    const device = await api.registry.recordDeviceConnected(gateway.productKey, 'device_TH', { clientAddress: '10.0.0.9:1234', at: new Date() });
    assert.equal(device.origin, 'AUTO_CREATED');
    assert.equal(device.status, 'ONLINE');
    assert.equal(device.username, null);
    assert.deepEqual(api.events.map((e) => e.name), ['device.created', 'device.connected']);
    // The second connection finds it.
    const again = await api.registry.recordDeviceConnected(gateway.productKey, 'device_TH', { clientAddress: '10.0.0.9:1235', at: new Date() });
    assert.equal(again.clientAddress, '10.0.0.9:1235');
    await assert.rejects(api.registry.recordDeviceConnected(gateway.productKey, 'no', { clientAddress: null, at: new Date() }),
      (e: unknown) => e instanceof GatehouseError && e.code === 'GW_ERR_DEVICE_NAME_INVALID');
    await assert.rejects(api.registry.recordDeviceConnected('nope', 'device_TH', { clientAddress: null, at: new Date() }),
      (e: unknown) => e instanceof GatehouseError && e.code === 'GW_ERR_PRODUCT_NOT_FOUND');
    // Disconnects of unknown devices are ignored (deleted while connected).
    await api.registry.recordDeviceDisconnected(gateway.productKey, 'ghost-device', { at: new Date() });
  });

  test('markGatewayDevicesOffline turns the gateway\'s ONLINE devices OFFLINE', { timeout: 5_000 }, async () => {
    await api.registry.recordDeviceConnected(gateway.productKey, 'dp-device-1', { clientAddress: null, at: new Date() });
    const count = await api.registry.markGatewayDevicesOffline(gateway.id, new Date());
    assert.ok(count >= 1);
    const list = (await api.call<DeviceListJson>('GET', `/api/v1/products/${gateway.productKey}/devices`)).json.items as { status: string }[];
    assert.ok(list.every((d) => d.status !== 'ONLINE'));
    assert.equal(await api.registry.markGatewayDevicesOffline('nope', new Date()), 0);
  });

  test('setGatewayStatus records the runtime\'s report', { timeout: 5_000 }, async () => {
    await api.registry.setGatewayStatus(gateway.id, 'ERROR', 'EADDRINUSE');
    const stored = await api.registry.gateways.get(gateway.id);
    assert.equal(stored.status, 'ERROR');
    assert.equal(stored.statusReason, 'EADDRINUSE');
    await api.registry.setGatewayStatus(gateway.id, 'RUNNING', 'ignored when not ERROR');
    assert.equal((await api.registry.gateways.get(gateway.id)).statusReason, null);
    await api.registry.setGatewayStatus('deleted-meanwhile', 'STOPPED', null);
  });

  test('a listener that throws does not break the change or other listeners', { timeout: 5_000 }, async () => {
    const seen: string[] = [];
    const offA = api.registry.events.on('device.updated', () => {
      throw new Error('listener bug');
    });
    const offB = api.registry.events.on('device.updated', (e) => seen.push(e.deviceName));
    try {
      const reply = await api.call<DeviceJson>('PATCH', `/api/v1/products/${gateway.productKey}/devices/dp-device-1`, { json: { sn: 'S-1' } });
      assert.equal(reply.status, 200);
      assert.deepEqual(seen, ['dp-device-1']);
    } finally {
      offA();
      offB();
    }
  });

  test('a different master key is refused at start', { timeout: 5_000 }, async () => {
    await assert.rejects(
      createRegistry({ storage: api.storage, masterKey: Buffer.alloc(32, 9), publicHost: 'x', logger: silentLogger }),
      (e: unknown) => e instanceof GatehouseError && e.code === 'GW_ERR_CONFIG_INVALID' && e.field === 'GATEHOUSE_MASTER_KEY',
    );
  });
});
