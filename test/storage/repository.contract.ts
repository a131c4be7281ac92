/**
 * The contract every `Storage` implementation must pass. `sqlite.test.ts` and `postgres.test.ts` run
 * it, each with a factory that opens a fresh, migrated, empty database per test.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  DuplicateKeyError, type DeviceRecord, type GatewayRecord, type Storage, type UniqueKey,
} from '../../src/registry/ports.ts';
import { DEFAULT_GATEWAY_LIMITS } from '../../src/registry/gateway-limits.ts';

export type OpenFreshStorage = () => Promise<Storage>;

const T0 = '2026-01-01T00:00:00.000Z';
const T1 = '2026-01-02T00:00:00.000Z';

function gateway(id: string, overrides: Partial<GatewayRecord> = {}): GatewayRecord {
  return {
    id,
    name: `gw_${id}`,
    protocol: 'MQTT',
    port: 10_000 + Number.parseInt(id.replace(/\D/g, '') || '0', 10),
    productKey: `pk_${id}`,
    dataParsing: { enabled: false, script: null },
    authType: 'THIRD_PARTY',
    thirdParty: { provider: 'HTTPS', url: 'https://auth.example.com/verify', params: [{ key: 'sn', value: '${clientId}' }], caCertificate: null },
    x509Enabled: true,
    ocsp: { mode: 'SERVER_AND_CLIENT', onResponderFailure: 'REJECT' },
    accessControl: { defaultAction: 'ALLOW', rules: [] },
    limits: { ...DEFAULT_GATEWAY_LIMITS },
    serverCertificateChain: 'CHAIN',
    serverPrivateKeyEncrypted: 'v1:sealed',
    deviceRootCertificates: 'ROOTS',
    trustedCertificate: null,
    enabled: true,
    status: 'STOPPED',
    statusReason: null,
    createdAt: T0,
    updatedAt: T0,
    ...overrides,
  };
}

export function device(productKey: string, deviceName: string, overrides: Partial<DeviceRecord> = {}): DeviceRecord {
  return {
    productKey,
    deviceName,
    username: deviceName,
    passwordHash: 'scrypt$hash',
    sn: null,
    origin: 'IMPORTED',
    connectionState: 'INACTIVE',
    disabled: false,
    lastOnlineAt: null,
    clientAddress: null,
    certificate: null,
    createdAt: T0,
    updatedAt: T0,
    ...overrides,
  };
}

/** A gateway with its product, as the registry creates them. */
export async function seedGateway(storage: Storage, id: string, overrides: Partial<GatewayRecord> = {}): Promise<GatewayRecord> {
  const record = gateway(id, overrides);
  await storage.transaction(async (tx) => {
    await tx.gateways.insert(record);
    await tx.products.insert({ productKey: record.productKey, name: `Gateway${id}`, gatewayId: id, createdAt: record.createdAt });
  });
  return record;
}

async function assertDuplicate(write: Promise<unknown>, key: UniqueKey): Promise<void> {
  await assert.rejects(write, (error: unknown) => {
    assert.ok(error instanceof DuplicateKeyError, `expected DuplicateKeyError, got ${String(error)}`);
    assert.equal(error.key, key);
    return true;
  });
}

export function repositoryContract(name: string, open: OpenFreshStorage): void {
  /** Runs `body` with a fresh storage and closes it whatever happens. */
  const withStorage = (body: (storage: Storage) => Promise<void>) => async () => {
    const storage = await open();
    try {
      await body(storage);
    } finally {
      await storage.close();
    }
  };

  describe(`repository contract: ${name}`, () => {
    test('ping answers', { timeout: 5_000 }, withStorage(async (storage) => {
      await storage.ping();
    }));

    describe('gateways', () => {
      test('insert, get, find by name and port, list oldest first', { timeout: 5_000 }, withStorage(async (storage) => {
        const a = await seedGateway(storage, 'a1', { createdAt: T1 });
        const b = await seedGateway(storage, 'b2', { authType: 'ONE_PARTY', thirdParty: null, x509Enabled: false });
        assert.deepEqual(await storage.gateways.get('a1'), a);
        assert.deepEqual(await storage.gateways.findByName('gw_b2'), b);
        assert.deepEqual(await storage.gateways.findByPort(a.port), a);
        assert.equal(await storage.gateways.get('nope'), undefined);
        assert.equal(await storage.gateways.findByName('nope'), undefined);
        assert.equal(await storage.gateways.findByPort(1), undefined);
        assert.deepEqual((await storage.gateways.list()).map((g) => g.id), ['b2', 'a1']);
      }));

      test('update replaces every field; setEnabled and setStatus change only theirs', { timeout: 5_000 }, withStorage(async (storage) => {
        const original = await seedGateway(storage, 'g1');
        const edited = gateway('g1', {
          name: 'renamed', port: 20_000, dataParsing: { enabled: true, script: 'function transformPayload() {}' },
          thirdParty: { provider: 'FUNCTION', functionName: 'verify' }, trustedCertificate: 'TRUSTED', updatedAt: T1,
          accessControl: {
            defaultAction: 'DENY',
            rules: [{ action: 'ALLOW', access: 'ALL', topic: 'devices/${deviceName}/#' }, { action: 'DENY', access: 'SUBSCRIBE', topic: '#' }],
          },
          limits: { ...DEFAULT_GATEWAY_LIMITS, maxConnections: 10, messagesPerSecondPerDevice: null, maxPacketSize: 4096 },
        });
        await storage.gateways.update(edited);
        assert.deepEqual(await storage.gateways.get('g1'), edited);

        assert.equal(await storage.gateways.setEnabled('g1', false, '2026-01-03T00:00:00.000Z'), true);
        assert.equal(await storage.gateways.setStatus('g1', 'ERROR', 'port in use'), true);
        const after = await storage.gateways.get('g1');
        assert.deepEqual(after, { ...edited, enabled: false, status: 'ERROR', statusReason: 'port in use', updatedAt: '2026-01-03T00:00:00.000Z' });
        assert.equal(await storage.gateways.setStatus('missing', 'RUNNING', null), false);
        assert.equal(original.createdAt, after?.createdAt);
      }));

      test('name and port are unique', { timeout: 5_000 }, withStorage(async (storage) => {
        const a = await seedGateway(storage, 'a1');
        await assertDuplicate(storage.gateways.insert(gateway('x1', { name: a.name, port: 30_001, productKey: 'pk_x1' })), 'gateways.name');
        await assertDuplicate(storage.gateways.insert(gateway('x2', { name: 'gw_x2', port: a.port, productKey: 'pk_x2' })), 'gateways.port');
        await assertDuplicate(storage.gateways.insert(gateway('a1', { name: 'other', port: 30_000 })), 'gateways.id');
        const b = await seedGateway(storage, 'b2');
        await assertDuplicate(storage.gateways.update({ ...b, name: a.name }), 'gateways.name');
        await assertDuplicate(storage.gateways.update({ ...b, port: a.port }), 'gateways.port');
      }));

      test('delete takes the product and devices with it', { timeout: 5_000 }, withStorage(async (storage) => {
        const g = await seedGateway(storage, 'g1');
        const other = await seedGateway(storage, 'g2');
        await storage.devices.insert(device(g.productKey, 'dev-1'));
        await storage.devices.insert(device(other.productKey, 'dev-1'));

        assert.equal(await storage.gateways.delete('g1'), true);
        assert.equal(await storage.gateways.delete('g1'), false);
        assert.equal(await storage.products.get(g.productKey), undefined);
        assert.equal(await storage.devices.get(g.productKey, 'dev-1'), undefined);
        // The other gateway is untouched.
        assert.ok(await storage.devices.get(other.productKey, 'dev-1'));
      }));
    });

    describe('products', () => {
      test('get, by gateway, list with device counts', { timeout: 5_000 }, withStorage(async (storage) => {
        const a = await seedGateway(storage, 'a1');
        const b = await seedGateway(storage, 'b2', { createdAt: T1 });
        await storage.devices.insertMany([device(a.productKey, 'dev-1'), device(a.productKey, 'dev-2')]);
        assert.deepEqual(await storage.products.get(a.productKey), { productKey: a.productKey, name: 'Gatewaya1', gatewayId: 'a1', createdAt: T0 });
        assert.equal((await storage.products.getByGatewayId('b2'))?.productKey, b.productKey);
        assert.equal(await storage.products.get('missing'), undefined);
        assert.deepEqual((await storage.products.listWithDeviceCounts()).map((p) => [p.productKey, p.deviceCount]), [
          [a.productKey, 2], [b.productKey, 0],
        ]);
        await storage.gateways.insert(gateway('c3'));
        await assertDuplicate(storage.products.insert({ productKey: a.productKey, name: 'x', gatewayId: 'c3', createdAt: T0 }), 'products.product_key');
      }));
    });

    describe('devices', () => {
      test('insert, get, find by username, update, delete', { timeout: 5_000 }, withStorage(async (storage) => {
        const g = await seedGateway(storage, 'g1');
        const record = device(g.productKey, 'dev-1', {
          username: 'user-1', sn: 'SN 1',
          certificate: { cn: 'dev-1', serial: '1003', issuer: 'CN=CA', fingerprint256: 'AA:BB' },
        });
        await storage.devices.insert(record);
        assert.deepEqual(await storage.devices.get(g.productKey, 'dev-1'), record);
        assert.deepEqual(await storage.devices.findByUsername(g.productKey, 'user-1'), record);
        assert.equal(await storage.devices.findByUsername(g.productKey, 'dev-1'), undefined);
        assert.equal(await storage.devices.get('other', 'dev-1'), undefined);

        assert.equal(await storage.devices.update(g.productKey, 'dev-1', {
          passwordHash: 'new', disabled: true, connectionState: 'ONLINE', lastOnlineAt: T1, clientAddress: '127.0.0.1:5000',
          certificate: null, sn: null, updatedAt: T1,
        }), true);
        assert.deepEqual(await storage.devices.get(g.productKey, 'dev-1'), {
          ...record, passwordHash: 'new', disabled: true, connectionState: 'ONLINE', lastOnlineAt: T1,
          clientAddress: '127.0.0.1:5000', certificate: null, sn: null, updatedAt: T1,
        });
        assert.equal(await storage.devices.update(g.productKey, 'missing', { disabled: true }), false);
        assert.equal(await storage.devices.delete(g.productKey, 'dev-1'), true);
        assert.equal(await storage.devices.delete(g.productKey, 'dev-1'), false);
      }));

      test('device name and username are unique per product; NULL usernames never collide', { timeout: 5_000 }, withStorage(async (storage) => {
        const a = await seedGateway(storage, 'a1');
        const b = await seedGateway(storage, 'b2');
        await storage.devices.insert(device(a.productKey, 'dev-1', { username: 'user-1' }));
        await assertDuplicate(storage.devices.insert(device(a.productKey, 'dev-1', { username: 'user-2' })), 'devices.device_name');
        await assertDuplicate(storage.devices.insert(device(a.productKey, 'dev-2', { username: 'user-1' })), 'devices.username');
        // The same name and username in another product is fine.
        await storage.devices.insert(device(b.productKey, 'dev-1', { username: 'user-1' }));
        await storage.devices.insert(device(a.productKey, 'auto-1', { username: null, passwordHash: null, origin: 'AUTO_CREATED' }));
        await storage.devices.insert(device(a.productKey, 'auto-2', { username: null, passwordHash: null, origin: 'AUTO_CREATED' }));
        assert.equal(await storage.devices.count(a.productKey), 3);
      }));

      test('a device needs an existing product', { timeout: 5_000 }, withStorage(async (storage) => {
        await assert.rejects(storage.devices.insert(device('no-such-product', 'dev-1')));
      }));

      test('insertMany is all or nothing', { timeout: 5_000 }, withStorage(async (storage) => {
        const g = await seedGateway(storage, 'g1');
        await storage.devices.insert(device(g.productKey, 'dev-3'));
        await assertDuplicate(storage.devices.insertMany([device(g.productKey, 'dev-1'), device(g.productKey, 'dev-2'), device(g.productKey, 'dev-3', { username: 'fresh' })]), 'devices.device_name');
        assert.equal(await storage.devices.count(g.productKey), 1);
        await storage.devices.insertMany([]);
      }));

      test('list pages by device name after a cursor (keyset), stable under inserts; identities; count', { timeout: 5_000 }, withStorage(async (storage) => {
        const g = await seedGateway(storage, 'g1');
        const names = ['dev-c', 'dev-a', 'dev-e', 'dev-b', 'dev-d'];
        await storage.devices.insertMany(names.map((n) => device(g.productKey, n, { username: n === 'dev-e' ? null : `u-${n}` })));
        const page1 = await storage.devices.list(g.productKey, { limit: 2 });
        assert.deepEqual(page1.map((d) => d.deviceName), ['dev-a', 'dev-b']);
        // A device added before the cursor neither repeats nor skips a row of the next pages.
        await storage.devices.insert(device(g.productKey, 'dev-0', { username: 'u-dev-0' }));
        const page2 = await storage.devices.list(g.productKey, { limit: 2, after: 'dev-b' });
        const page3 = await storage.devices.list(g.productKey, { limit: 2, after: 'dev-d' });
        assert.deepEqual([...page2, ...page3].map((d) => d.deviceName), ['dev-c', 'dev-d', 'dev-e']);
        assert.equal(await storage.devices.count(g.productKey), 6);
        assert.equal(await storage.devices.count('missing'), 0);
        const identities = (await storage.devices.listIdentities(g.productKey)).sort((x, y) => x.deviceName.localeCompare(y.deviceName));
        assert.deepEqual(identities[5], { deviceName: 'dev-e', username: null });
        assert.deepEqual(identities[1], { deviceName: 'dev-a', username: 'u-dev-a' });
        const found = await storage.devices.findIdentities(g.productKey, ['dev-a', 'nobody'], ['u-dev-c', 'u-nobody']);
        assert.deepEqual(found.sort((x, y) => x.deviceName.localeCompare(y.deviceName)), [
          { deviceName: 'dev-a', username: 'u-dev-a' }, { deviceName: 'dev-c', username: 'u-dev-c' },
        ]);
        assert.deepEqual(await storage.devices.findIdentities(g.productKey, [], []), []);
      }));

      test('one order on both backends: code points (upper case before lower, "-" before digits), whatever the locale', { timeout: 5_000 }, withStorage(async (storage) => {
        const g = await seedGateway(storage, 'g1');
        const names = ['dev_1', 'Dev-2', 'dev-10', 'dev-9', 'dev.3', 'dev:4', 'dev@5', 'DEV-6'];
        await storage.devices.insertMany(names.map((n) => device(g.productKey, n)));
        const order = (await storage.devices.list(g.productKey, { limit: 100 })).map((d) => d.deviceName);
        assert.deepEqual(order, [...names].sort());
        const after = (await storage.devices.list(g.productKey, { limit: 100, after: 'dev-9' })).map((d) => d.deviceName);
        assert.deepEqual(after, [...names].sort().filter((n) => n > 'dev-9'));
      }));

      test('search: a prefix of the name, username or SN, case-sensitive; status; both with the cursor and the count', { timeout: 5_000 }, withStorage(async (storage) => {
        const g = await seedGateway(storage, 'g1');
        const other = await seedGateway(storage, 'o2');
        await storage.devices.insertMany([
          device(g.productKey, 'meter-001', { username: 'acme-001', sn: 'SN-9001', connectionState: 'ONLINE' }),
          device(g.productKey, 'meter-002', { username: 'acme-002', sn: 'SN-9002', connectionState: 'OFFLINE' }),
          device(g.productKey, 'meter-010', { username: 'acme-010', sn: 'ZZ-1', disabled: true, connectionState: 'ONLINE' }),
          device(g.productKey, 'pump-001', { username: 'meter-x', sn: 'SN-7001' }),
          device(g.productKey, 'pump-002', { username: null, passwordHash: null, sn: null, origin: 'AUTO_CREATED', connectionState: 'ONLINE' }),
          device(g.productKey, 'valve-ü', { username: 'valve-u', sn: 'Grüße-1' }),
          device(other.productKey, 'meter-003', { username: 'acme-003' }),
        ]);
        const names = async (query: Parameters<Storage['devices']['list']>[1]) => (await storage.devices.list(g.productKey, query)).map((d) => d.deviceName);
        // "meter-" is a device name prefix of three and the username prefix of pump-001; another product's meter is not found.
        assert.deepEqual(await names({ limit: 10, search: 'meter-' }), ['meter-001', 'meter-002', 'meter-010', 'pump-001']);
        assert.equal(await storage.devices.count(g.productKey, { search: 'meter-' }), 4);
        assert.deepEqual(await names({ limit: 2, search: 'meter-', after: 'meter-002' }), ['meter-010', 'pump-001']);
        assert.deepEqual(await names({ limit: 10, search: 'meter-00' }), ['meter-001', 'meter-002']);
        assert.deepEqual(await names({ limit: 10, search: 'acme-01' }), ['meter-010']);
        assert.deepEqual(await names({ limit: 10, search: 'SN-9' }), ['meter-001', 'meter-002']);
        assert.deepEqual(await names({ limit: 10, search: 'SN-' }), ['meter-001', 'meter-002', 'pump-001']);
        assert.deepEqual(await names({ limit: 10, search: 'Grü' }), ['valve-ü']);
        assert.deepEqual(await names({ limit: 10, search: 'valve-ü' }), ['valve-ü']);
        // A prefix, not a substring; and case-sensitive.
        assert.deepEqual(await names({ limit: 10, search: 'eter' }), []);
        assert.deepEqual(await names({ limit: 10, search: 'METER' }), []);
        // The status a device shows: DISABLED wins over its connection.
        assert.deepEqual(await names({ limit: 10, status: 'ONLINE' }), ['meter-001', 'pump-002']);
        assert.deepEqual(await names({ limit: 10, status: 'OFFLINE' }), ['meter-002']);
        assert.deepEqual(await names({ limit: 10, status: 'INACTIVE' }), ['pump-001', 'valve-ü']);
        assert.deepEqual(await names({ limit: 10, status: 'DISABLED' }), ['meter-010']);
        assert.deepEqual(await names({ limit: 10, status: 'ONLINE', search: 'meter' }), ['meter-001']);
        assert.equal(await storage.devices.count(g.productKey, { status: 'INACTIVE' }), 2);
        assert.deepEqual(await storage.devices.statusCounts(g.productKey), new Map([[g.productKey, { online: 2, offline: 1, inactive: 2, disabled: 1 }]]));
        const all = await storage.devices.statusCounts();
        assert.deepEqual(all.get(other.productKey), { online: 0, offline: 0, inactive: 1, disabled: 0 });
        assert.equal(all.size, 2);
      }));

      test('markProductOffline turns ONLINE devices of that product OFFLINE', { timeout: 5_000 }, withStorage(async (storage) => {
        const a = await seedGateway(storage, 'a1');
        const b = await seedGateway(storage, 'b2');
        await storage.devices.insertMany([
          device(a.productKey, 'on-1', { connectionState: 'ONLINE' }),
          device(a.productKey, 'on-2', { connectionState: 'ONLINE' }),
          device(a.productKey, 'never', { connectionState: 'INACTIVE' }),
        ]);
        await storage.devices.insert(device(b.productKey, 'on-1', { connectionState: 'ONLINE' }));
        assert.equal(await storage.devices.markProductOffline(a.productKey, T1), 2);
        assert.equal((await storage.devices.get(a.productKey, 'on-1'))?.connectionState, 'OFFLINE');
        assert.equal((await storage.devices.get(a.productKey, 'on-1'))?.updatedAt, T1);
        assert.equal((await storage.devices.get(a.productKey, 'never'))?.connectionState, 'INACTIVE');
        assert.equal((await storage.devices.get(b.productKey, 'on-1'))?.connectionState, 'ONLINE');
      }));

      test('presence per node: a node marks offline only the devices it holds (and those held by no node)', { timeout: 5_000 }, withStorage(async (storage) => {
        const a = await seedGateway(storage, 'a1');
        await storage.devices.insertMany(['on-a', 'on-b', 'legacy', 'moved'].map((name) => device(a.productKey, name, { connectionState: 'ONLINE' })));
        await storage.devices.update(a.productKey, 'on-a', { onlineNode: 'node-a' });
        await storage.devices.update(a.productKey, 'on-b', { onlineNode: 'node-b' });
        await storage.devices.update(a.productKey, 'moved', { onlineNode: 'node-b' });
        const state = async (name: string): Promise<string | undefined> => (await storage.devices.get(a.productKey, name))?.connectionState;
        // Node A restarts: its own device and the one no node is recorded for go OFFLINE; node B's stay.
        assert.equal(await storage.devices.markProductOffline(a.productKey, T1, 'node-a'), 2);
        assert.deepEqual([await state('on-a'), await state('legacy'), await state('on-b')], ['OFFLINE', 'OFFLINE', 'ONLINE']);
        // A connection that ended on node A does not mark offline a device node B holds now; node B's does.
        assert.equal(await storage.devices.markOffline(a.productKey, 'moved', 'node-a', T1), false);
        assert.equal(await state('moved'), 'ONLINE');
        assert.equal(await storage.devices.markOffline(a.productKey, 'moved', 'node-b', T1), true);
        assert.equal(await state('moved'), 'OFFLINE');
        // Without a node (a registry that records none) and for every node, as before.
        assert.equal(await storage.devices.markOffline(a.productKey, 'nobody', null, T1), false);
        assert.equal(await storage.devices.markProductOffline(a.productKey, T1), 1);
        assert.equal(await state('on-b'), 'OFFLINE');
      }));

      test('a dead node\'s devices: those held by a node not among the live ones go OFFLINE, and only those', { timeout: 5_000 }, withStorage(async (storage) => {
        const a = await seedGateway(storage, 'a1');
        await storage.devices.insertMany(['on-a', 'on-b', 'on-dead', 'legacy'].map((name) => device(a.productKey, name, { connectionState: 'ONLINE' })));
        await storage.devices.update(a.productKey, 'on-a', { onlineNode: 'node-a' });
        await storage.devices.update(a.productKey, 'on-b', { onlineNode: 'node-b' });
        await storage.devices.update(a.productKey, 'on-dead', { onlineNode: 'node-dead' });
        const state = async (name: string): Promise<string | undefined> => (await storage.devices.get(a.productKey, name))?.connectionState;
        assert.equal(await storage.devices.markDeadNodesOffline(['node-a', 'node-b'], T1), 1);
        assert.deepEqual(await Promise.all(['on-a', 'on-b', 'on-dead', 'legacy'].map(state)), ['ONLINE', 'ONLINE', 'OFFLINE', 'ONLINE']);
        assert.equal((await storage.devices.get(a.productKey, 'on-dead'))?.updatedAt, T1);
        // Done again: nothing left to do. Node B dies too.
        assert.equal(await storage.devices.markDeadNodesOffline(['node-a', 'node-b'], T1), 0);
        assert.equal(await storage.devices.markDeadNodesOffline(['node-a'], T1), 1);
        assert.deepEqual(await Promise.all(['on-a', 'on-b'].map(state)), ['ONLINE', 'OFFLINE']);
      }));
    });

    describe('functions', () => {
      test('insert, get, list by name, update, delete, unique name', { timeout: 5_000 }, withStorage(async (storage) => {
        const f = { name: 'verify', source: 'function handler() {}', timeoutMs: 500, memoryMb: 32, createdAt: T0, updatedAt: T0 };
        await storage.functions.insert(f);
        await storage.functions.insert({ ...f, name: 'another' });
        assert.deepEqual(await storage.functions.get('verify'), f);
        assert.deepEqual((await storage.functions.list()).map((x) => x.name), ['another', 'verify']);
        await assertDuplicate(storage.functions.insert(f), 'functions.name');
        assert.equal(await storage.functions.update({ ...f, source: 'x', timeoutMs: 1000, updatedAt: T1 }), true);
        assert.deepEqual(await storage.functions.get('verify'), { ...f, source: 'x', timeoutMs: 1000, updatedAt: T1 });
        assert.equal(await storage.functions.update({ ...f, name: 'missing' }), false);
        assert.equal(await storage.functions.delete('verify'), true);
        assert.equal(await storage.functions.get('verify'), undefined);
      }));
    });

    describe('settings', () => {
      test('get and put (upsert)', { timeout: 5_000 }, withStorage(async (storage) => {
        assert.equal(await storage.settings.get('k'), undefined);
        await storage.settings.put('k', 'v1');
        await storage.settings.put('k', 'v2');
        assert.equal(await storage.settings.get('k'), 'v2');
      }));
    });

    describe('transactions', () => {
      test('commit when the work resolves, roll back when it throws', { timeout: 5_000 }, withStorage(async (storage) => {
        const result = await storage.transaction(async (tx) => {
          await tx.settings.put('committed', 'yes');
          return 42;
        });
        assert.equal(result, 42);
        await assert.rejects(storage.transaction(async (tx) => {
          await tx.settings.put('rolled-back', 'yes');
          await tx.gateways.insert(gateway('g1'));
          throw new Error('boom');
        }), /boom/);
        assert.equal(await storage.settings.get('committed'), 'yes');
        assert.equal(await storage.settings.get('rolled-back'), undefined);
        assert.equal(await storage.gateways.get('g1'), undefined);
      }));

      test('a duplicate key inside a transaction rolls back the earlier writes', { timeout: 5_000 }, withStorage(async (storage) => {
        const g = await seedGateway(storage, 'g1');
        await assertDuplicate(storage.transaction(async (tx) => {
          await tx.gateways.insert(gateway('g2'));
          await tx.products.insert({ productKey: g.productKey, name: 'x', gatewayId: 'g2', createdAt: T0 });
        }), 'products.product_key');
        assert.equal(await storage.gateways.get('g2'), undefined);
      }));
    });
  });
}
