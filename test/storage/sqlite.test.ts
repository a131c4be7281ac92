/** The repository contract on SQLite: a fresh database file per test, in a temporary directory. */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { Migrator, sql } from 'kysely';
import { silentLogger } from '../../src/core/logger.ts';
import { openStorage } from '../../src/storage/index.ts';
import { BundledMigrations } from '../../src/storage/migrations/index.ts';
import { openSqlite, sqliteFileIn } from '../../src/storage/sqlite.ts';
import { device, repositoryContract, seedGateway } from './repository.contract.ts';
import { platformRepositoryContract } from './platform-repositories.contract.ts';
import { devicePropertiesContract } from './device-properties.contract.ts';
import { connectionEventsContract } from './connection-events.contract.ts';
import { importOperationsContract } from './import-operations.contract.ts';
import { checkMessagePayloadUpgrade } from './message-payload-upgrade.ts';

const root = await mkdtemp(path.join(os.tmpdir(), 'gatehouse-sqlite-'));
after(() => rm(root, { recursive: true, force: true }), { timeout: 30_000 });
let counter = 0;

repositoryContract('sqlite', async () => openStorage({ dataDir: await mkdtemp(path.join(root, `db${++counter}-`)), logger: silentLogger }));
platformRepositoryContract('sqlite', async () => openStorage({ dataDir: await mkdtemp(path.join(root, `db${++counter}-`)), logger: silentLogger }));
devicePropertiesContract('sqlite', async () => openStorage({ dataDir: await mkdtemp(path.join(root, `db${++counter}-`)), logger: silentLogger }));
connectionEventsContract('sqlite', async () => openStorage({ dataDir: await mkdtemp(path.join(root, `db${++counter}-`)), logger: silentLogger }));
importOperationsContract('sqlite', async () => openStorage({ dataDir: await mkdtemp(path.join(root, `db${++counter}-`)), logger: silentLogger }));

test('sqlite: WAL journal and foreign keys are on; reopening applies no migration twice', { timeout: 5_000 }, async () => {
  const dataDir = await mkdtemp(path.join(root, 'pragmas-'));
  const first = await openStorage({ dataDir, logger: silentLogger });
  const journal = await sql<{ journal_mode: string }>`pragma journal_mode`.execute(first.db);
  const foreignKeys = await sql<{ foreign_keys: number }>`pragma foreign_keys`.execute(first.db);
  assert.equal(journal.rows[0]?.journal_mode, 'wal');
  assert.equal(foreignKeys.rows[0]?.foreign_keys, 1);
  await first.settings.put('kept', 'yes');
  await first.close();

  const second = await openStorage({ dataDir, logger: silentLogger });
  assert.equal(await second.settings.get('kept'), 'yes');
  const applied = await sql<{ name: string }>`select name from kysely_migration`.execute(second.db);
  assert.deepEqual(applied.rows.map((r) => r.name), ['0001-initial', '0002-platform', '0003-access-control', '0004-gateway-limits', '0005-device-properties', '0006-connection-events', '0007-device-search', '0008-device-presence', '0009-message-payload-blob', '0010-webhook-outbox-claims', '0011-import-operations']);
  await second.close();
});

test('sqlite: messages stored as base64 text before migration 0009 read back as the same bytes after it', { timeout: 60_000 }, async () => {
  const dataDir = await mkdtemp(path.join(root, 'payload-'));
  const old = openSqlite(sqliteFileIn(dataDir));
  const { error } = await new Migrator({ db: old, provider: new BundledMigrations('sqlite') }).migrateTo('0007-device-search');
  assert.equal(error, undefined);
  await checkMessagePayloadUpgrade(old, () => openStorage({ dataDir, logger: silentLogger }));
  const check = openSqlite(sqliteFileIn(dataDir));
  const types = await sql<{ t: string; n: number }>`select typeof(payload) as t, count(*) as n from messages group by 1`.execute(check);
  assert.deepEqual(types.rows, [{ t: 'blob', n: 1235 }], 'no row is left as text');
  await check.destroy();
});

test('sqlite: properties that older versions kept as one JSON column are moved into rows, counted as before', { timeout: 30_000 }, async () => {
  const dataDir = await mkdtemp(path.join(root, 'props-'));
  const old = openSqlite(sqliteFileIn(dataDir));
  const { error } = await new Migrator({ db: old, provider: new BundledMigrations('sqlite') }).migrateTo('0004-gateway-limits');
  assert.equal(error, undefined);
  const T = '2026-01-01T00:00:00.000Z';
  await sql`insert into gateways (id, name, protocol, port, product_key, data_parsing, auth_type, x509_enabled, ocsp,
    server_certificate_chain, server_private_key_encrypted, enabled, status, created_at, updated_at)
    values ('g1', 'gw_g1', 'MQTT', 10001, 'pk1', '{}', 'ONE_PARTY', 0, '{}', 'C', 'K', 1, 'STOPPED', ${T}, ${T})`.execute(old);
  await sql`insert into products (product_key, name, gateway_id, created_at) values ('pk1', 'Gatewayg1', 'g1', ${T})`.execute(old);
  const props = { temp: { value: 21.5, time: 1 }, 'ü': { value: [1, 'two'], time: 2 } };
  // More devices than the migration reads per step, so its paging is crossed.
  for (let i = 0; i < 1200; i++) {
    const properties = i === 700 ? JSON.stringify(props) : i % 2 === 0 ? '{}' : JSON.stringify({ n: { value: i, time: 1 } });
    await sql`insert into devices (product_key, device_name, origin, connection_state, disabled, properties, created_at, updated_at)
      values ('pk1', ${`dev-${String(i).padStart(4, '0')}`}, 'IMPORTED', 'INACTIVE', 0, ${properties}, ${T}, ${T})`.execute(old);
  }
  await old.destroy();

  const storage = await openStorage({ dataDir, logger: silentLogger });
  try {
    assert.deepEqual(await storage.devices.properties('pk1', 'dev-0700'), props);
    assert.deepEqual(await storage.devices.properties('pk1', 'dev-1199'), { n: { value: 1199, time: 1 } });
    assert.deepEqual(await storage.devices.properties('pk1', 'dev-0002'), {});
    const rows = await sql<{ n: number }>`select count(*) as n from device_properties`.execute(storage.db);
    assert.equal(rows.rows[0]?.n, 2 + 600);
    const columns = await sql<{ name: string }>`pragma table_info(devices)`.execute(storage.db);
    assert.equal(columns.rows.some((c) => c.name === 'properties'), false, 'the JSON column is gone');
    // The byte count carried over is the one the caps used on the JSON document.
    let seen = -1;
    await storage.devices.mergeProperties('pk1', 'dev-0700', [], T, (after) => {
      seen = after.bytes;
      return 'updated';
    });
    assert.equal(seen, Buffer.byteLength(JSON.stringify(props)));
  } finally {
    await storage.close();
  }
});

test('sqlite: a device search is three index ranges (MULTI-INDEX OR), status counts read one covering index', { timeout: 30_000 }, async () => {
  const storage = await openStorage({ dataDir: await mkdtemp(path.join(root, 'plan-')), logger: silentLogger });
  try {
    const g = await seedGateway(storage, 'g1');
    const fleet = Array.from({ length: 5000 }, (_, i) => device(g.productKey, `fleet-${String(i).padStart(5, '0')}`, {
      username: `user-${String(i).padStart(5, '0')}`, sn: `SN-${String(i).padStart(5, '0')}`,
    }));
    for (let i = 0; i < fleet.length; i += 500) await storage.devices.insertMany(fleet.slice(i, i + 500));
    await sql`analyze`.execute(storage.db);
    const plan = async (query: { sql: string; parameters: readonly unknown[] }) =>
      (await storage.db.executeQuery<{ detail: string }>({ ...query, sql: `explain query plan ${query.sql}`, query: undefined as never, queryId: undefined as never })).rows.map((r) => r.detail).join('\n');
    // The shape the repository builds (repositories/devices.ts #filtered): a range per searched column.
    const search = await plan(storage.db.selectFrom('devices').selectAll().where('product_key', '=', g.productKey)
      .where((eb) => eb.or((['device_name', 'username', 'sn'] as const).map((c) => eb.and([eb(c, '>=', 'user-0421'), eb(c, '<', 'user-0422')]))))
      .orderBy('device_name').limit(51).compile());
    assert.match(search, /MULTI-INDEX OR/, search);
    assert.match(search, /\(product_key=\? AND device_name>\? AND device_name<\?\)/, search);
    assert.match(search, /\(product_key=\? AND username>\? AND username<\?\)/, search);
    assert.match(search, /USING INDEX devices_by_sn \(product_key=\? AND sn>\? AND sn<\?\)/, search);
    const counts = await plan(storage.db.selectFrom('devices').select(['product_key', 'disabled', 'connection_state'])
      .select((eb) => eb.fn.countAll().as('n')).where('product_key', '=', g.productKey).groupBy(['product_key', 'disabled', 'connection_state']).compile());
    assert.match(counts, /COVERING INDEX devices_by_status/, counts);
    assert.equal((await storage.devices.list(g.productKey, { limit: 50, search: 'user-0421' })).length, 10);
  } finally {
    await storage.close();
  }
});
