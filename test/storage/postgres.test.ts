/**
 * The repository contract on PostgreSQL, against the server in GATEHOUSE_TEST_DATABASE_URL (see
 * README.md here for the setup). Each test gets a schema of its own, dropped at the end.
 */
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { Migrator, sql } from 'kysely';
import pg from 'pg';
import { silentLogger } from '../../src/core/logger.ts';
import { openStorage } from '../../src/storage/index.ts';
import { BundledMigrations } from '../../src/storage/migrations/index.ts';
import { openPostgres } from '../../src/storage/postgres.ts';
import { foldLockOf } from '../../src/storage/repositories/connection-events.ts';
import { device, repositoryContract, seedGateway } from './repository.contract.ts';
import { platformRepositoryContract } from './platform-repositories.contract.ts';
import { devicePropertiesContract } from './device-properties.contract.ts';
import { connectionEventsContract } from './connection-events.contract.ts';
import { importOperationsContract } from './import-operations.contract.ts';
import { checkMessagePayloadUpgrade } from './message-payload-upgrade.ts';

const url = process.env.GATEHOUSE_TEST_DATABASE_URL;

if (url === undefined || url === '') {
  test('postgres repository contract', { skip: 'GATEHOUSE_TEST_DATABASE_URL is not set; see test/storage/README.md' }, () => {});
} else {
  const run = randomBytes(4).toString('hex');
  const schemas: string[] = [];
  after(async () => {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      for (const schema of schemas) await client.query(`drop schema if exists "${schema}" cascade`);
    } finally {
      await client.end();
    }
  }, { timeout: 30_000 });

  const openFresh = async () => {
    const schema = `gh_test_${run}_${schemas.length + 1}`;
    schemas.push(schema);
    return openStorage({ dataDir: os.tmpdir(), databaseUrl: url, postgresSchema: schema, logger: silentLogger });
  };
  repositoryContract('postgres', openFresh);
  platformRepositoryContract('postgres', openFresh);
  devicePropertiesContract('postgres', openFresh);
  connectionEventsContract('postgres', openFresh);
  importOperationsContract('postgres', openFresh);

  test('postgres: messages stored as base64 text before migration 0009 read back as the same bytes after it (bytea)', { timeout: 60_000 }, async () => {
    const schema = `gh_test_${run}_${schemas.length + 1}`;
    schemas.push(schema);
    const { db: old } = openPostgres({ connectionString: url, schema });
    await sql`create schema if not exists ${sql.id(schema)}`.execute(old);
    const { error } = await new Migrator({ db: old, provider: new BundledMigrations('postgres'), migrationTableSchema: schema }).migrateTo('0007-device-search');
    assert.equal(error, undefined);
    await checkMessagePayloadUpgrade(old, () => openStorage({ dataDir: os.tmpdir(), databaseUrl: url, postgresSchema: schema, logger: silentLogger }));
  });

  test('postgres: a start migrates its schema while another schema of the database is dropped (another app, another test run)', { timeout: 120_000 }, async () => {
    // Kysely's own look for its bookkeeping tables read every schema and failed on one dropped meanwhile (3F000:
    // schema "…" does not exist), which failed a cluster test's node start in CI.
    const churn = new pg.Client({ connectionString: url });
    await churn.connect();
    let churning = true;
    let dropped = 0;
    const churner = (async () => {
      for (let i = 0; churning && i < 100_000; i++) {
        const name = `gh_churn_${run}_${i}`;
        await churn.query(`create schema "${name}"`);
        await churn.query(`create table "${name}".t (id int)`);
        await churn.query(`drop schema "${name}" cascade`);
        dropped++;
      }
    })();
    try {
      for (let i = 0; i < 6; i++) {
        const storage = await openFresh();
        await storage.close();
      }
    } finally {
      churning = false;
      await churner;
      await churn.end();
    }
    assert.ok(dropped > 20, `schemas dropped while the migrations ran (${dropped})`);
  });

  test('postgres: a node folding a connection event waits while another node folds the same key, then folds into that node\'s row', { timeout: 30_000 }, async () => {
    const storage = await openFresh();
    const schema = schemas[schemas.length - 1]!;
    const other = new pg.Client({ connectionString: url });
    await other.connect();
    try {
      const at = new Date().toISOString();
      const row = {
        id: '00000000000001abcdef', gatewayId: 'gw1', type: 'CONNECT_REFUSED' as const, reason: 'THROTTLED' as const, detail: null,
        mqttReasonCode: 0x9f, protocolVersion: 5, clientId: 'c-1', username: 'meter-1', deviceName: null, address: '127.0.0.1',
        certificate: null, at, count: 4, lastAt: at,
      };
      // The other node, in the middle of its fold of the key: it holds the key's lock and has not written yet.
      await other.query('begin');
      await other.query('select pg_advisory_xact_lock($1::bigint)', [foldLockOf(row)]);
      let finished = false;
      const folding = storage.connectionEvents.foldMany([{ ...row, id: '00000000000002abcdef', count: 1 }], 10_000).then((ids) => {
        finished = true;
        return ids;
      });
      await new Promise((resolve) => setTimeout(resolve, 300));
      assert.equal(finished, false, 'the fold waits for the key\'s lock');
      await other.query(`insert into "${schema}".connection_events (id, gateway_id, type, reason, detail, mqtt_reason_code, protocol_version,
        client_id, username, device_name, address, certificate, at, count, last_at) values ($1, $2, $3, $4, null, $5, $6, $7, $8, null, $9, null, $10, $11, $10)`,
      [row.id, row.gatewayId, row.type, row.reason, row.mqttReasonCode, row.protocolVersion, row.clientId, row.username, row.address, row.at, row.count]);
      await other.query('commit');
      assert.deepEqual(await folding, [row.id], 'folded into the row the other node wrote, not a second row');
      assert.deepEqual((await storage.connectionEvents.query({ gatewayId: 'gw1', limit: 10 })).map((r) => r.count), [5]);
    } finally {
      await other.end();
      await storage.close();
    }
  });

  // The test database's collation is C; an operator's is often a locale where case folds and '-' is ignored.
  // Device lists still page, order and match by code point there: their comparisons are `COLLATE "C"` and
  // served by indexes built with it (migration 0007).
  test('postgres: device pages and prefixes in code point order under a locale collation, from the indexes', { timeout: 30_000 }, async () => {
    const storage = await openFresh();
    try {
      for (const column of ['device_name', 'username', 'sn']) {
        await sql`alter table devices alter column ${sql.id(column)} type text collate "en-x-icu"`.execute(storage.db);
      }
      const seeded = await seedGateway(storage, 'g1');
      const names = ['dev-b', 'DEV-A', 'dev_c', 'devd', 'Dev-e', 'dev-10', 'dev-9'];
      await storage.devices.insertMany(names.map((n) => device(seeded.productKey, n, { username: `u${n}`, sn: `S${n}` })));
      const order = (await storage.devices.list(seeded.productKey, { limit: 100 })).map((d) => d.deviceName);
      assert.deepEqual(order, [...names].sort());
      const icu = (await sql<{ n: string }>`select device_name as n from devices order by device_name`.execute(storage.db)).rows.map((r) => r.n);
      assert.notDeepEqual(icu, order, 'the column\'s own collation orders them otherwise');
      assert.deepEqual((await storage.devices.list(seeded.productKey, { limit: 100, search: 'dev-' })).map((d) => d.deviceName), ['dev-10', 'dev-9', 'dev-b']);
      assert.deepEqual((await storage.devices.list(seeded.productKey, { limit: 100, search: 'Sdev-' })).map((d) => d.deviceName), ['dev-10', 'dev-9', 'dev-b']);
      assert.deepEqual((await storage.devices.list(seeded.productKey, { limit: 2, after: 'dev-10' })).map((d) => d.deviceName), ['dev-9', 'dev-b']);
      // The plans, over enough devices for the planner to care: index ranges, not a scan of the product's devices.
      const fleet = Array.from({ length: 5000 }, (_, i) => device(seeded.productKey, `fleet-${String(i).padStart(5, '0')}`, {
        username: `user-${String(i).padStart(5, '0')}`, sn: `SN-${String(i).padStart(5, '0')}`,
      }));
      for (let i = 0; i < fleet.length; i += 500) await storage.devices.insertMany(fleet.slice(i, i + 500));
      await sql`analyze devices`.execute(storage.db);
      const plan = async (query: string) => (await sql.raw<{ 'QUERY PLAN': string }>(`explain ${query}`).execute(storage.db)).rows.map((r) => r['QUERY PLAN']).join('\n');
      const key = seeded.productKey.replace(/'/g, "''");
      const page = await plan(`select * from devices where product_key = '${key}' and device_name collate "C" > 'fleet-04000' order by device_name collate "C" limit 50`);
      assert.match(page, /Index Scan using devices_by_name/, page);
      const range = (column: string, from: string, to: string) => `(${column} collate "C" >= '${from}' and ${column} collate "C" < '${to}')`;
      const search = await plan(`select * from devices where product_key = '${key}' and (${range('device_name', 'user-0421', 'user-0422')} or ${range('username', 'user-0421', 'user-0422')} or ${range('sn', 'user-0421', 'user-0422')})`);
      for (const index of ['devices_by_name', 'devices_by_username', 'devices_by_sn']) assert.match(search, new RegExp(index), search);
    } finally {
      await storage.close();
    }
  });
}
