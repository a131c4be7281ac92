/**
 * Device properties in storage (issue 17 item 5), on SQLite and PostgreSQL: a post writes the
 * properties it carries and no others (watched by a trigger that logs every row written), concurrent
 * posts of different keys all survive, and the caps are judged on the device's totals one post at a
 * time. Run by `sqlite.test.ts` and `postgres.test.ts`.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { sql } from 'kysely';
import { storedProperty } from '../../src/registry/device-properties.ts';
import type { PropertyMergeResult } from '../../src/registry/ports.ts';
import type { KyselyStorage } from '../../src/storage/index.ts';
import { device, seedGateway } from './repository.contract.ts';

const AT = '2026-02-01T00:00:00.000Z';

async function withStorage(open: () => Promise<KyselyStorage>, work: (s: KyselyStorage) => Promise<void>): Promise<void> {
  const storage = await open();
  try {
    await work(storage);
  } finally {
    await storage.close();
  }
}

/** Logs the name of every device_properties row inserted, updated or deleted from now on. */
async function logPropertyWrites(storage: KyselyStorage): Promise<() => Promise<string[]>> {
  const db = storage.db;
  if (storage.dialect === 'sqlite') {
    await sql`create table property_writes (seq integer primary key, name text not null)`.execute(db);
    for (const [event, row] of [['insert', 'new'], ['update', 'new'], ['delete', 'old']] as const) {
      await sql.raw(`create trigger log_${event} after ${event} on device_properties begin
        insert into property_writes (name) values (${row}.name); end`).execute(db);
    }
  } else {
    await sql`create table property_writes (seq serial primary key, name text not null)`.execute(db);
    await sql.raw(`create function log_property_write() returns trigger language plpgsql as $$
      begin insert into property_writes (name) values (coalesce(new.name, old.name)); return null; end $$`).execute(db);
    await sql`create trigger log_writes after insert or update or delete on device_properties
      for each row execute function log_property_write()`.execute(db);
  }
  return async () => (await sql<{ name: string }>`select name from property_writes order by seq`.execute(db)).rows.map((r) => r.name);
}

const accept = (): PropertyMergeResult => 'updated';
const post = (storage: KyselyStorage, productKey: string, deviceName: string, values: Record<string, unknown>,
  judge: (after: { count: number; bytes: number }) => PropertyMergeResult = accept) =>
  storage.devices.mergeProperties(productKey, deviceName, Object.entries(values).map(([n, v]) => storedProperty(n, v)), AT, judge);

export function devicePropertiesContract(name: string, open: () => Promise<KyselyStorage>): void {
  void describe(`${name}: device properties`, () => {
    test('any JSON shape round-trips; a page reads several devices; deleting a device takes its properties', { timeout: 30_000 }, () => withStorage(open, async (s) => {
      const g = await seedGateway(s, 'g1');
      await s.devices.insertMany([device(g.productKey, 'dev-1'), device(g.productKey, 'dev-2'), device(g.productKey, 'dev-3')]);
      // Properties come from operator scripts: any JSON shape, even one that looks like an encoding.
      const shapes = { temperature: { value: 21.5, time: 1 }, tags: ['a'], blob: { $base64: 'AAE=' }, 'ünï "quoted"': null };
      assert.equal(await post(s, g.productKey, 'dev-1', shapes), 'updated');
      assert.equal(await post(s, g.productKey, 'dev-2', { x: 1 }), 'updated');
      assert.deepEqual(await s.devices.properties(g.productKey, 'dev-1'), shapes);
      assert.equal((await s.devices.get(g.productKey, 'dev-1'))?.updatedAt, AT, 'a post stamps the device');
      const page = await s.devices.propertiesOf(g.productKey, ['dev-1', 'dev-2', 'dev-3']);
      assert.deepEqual(page.get('dev-1'), shapes);
      assert.deepEqual(page.get('dev-2'), { x: 1 });
      assert.equal(page.has('dev-3'), false);
      assert.equal(await post(s, g.productKey, 'missing', { x: 1 }), 'device_gone');
      await s.devices.delete(g.productKey, 'dev-1');
      assert.deepEqual(await s.devices.properties(g.productKey, 'dev-1'), {});
      await s.devices.insert(device(g.productKey, 'dev-1'));
      assert.deepEqual(await s.devices.properties(g.productKey, 'dev-1'), {}, 'a device recreated under the name starts empty');
    }));

    test('a post of one property to a device holding 400 writes that one row and leaves the others untouched', { timeout: 30_000 }, () => withStorage(open, async (s) => {
      const g = await seedGateway(s, 'g1');
      await s.devices.insert(device(g.productKey, 'dev-1'));
      const many = Object.fromEntries(Array.from({ length: 400 }, (_, i) => [`p${String(i).padStart(3, '0')}`, { value: i, time: 1 }]));
      assert.equal(await post(s, g.productKey, 'dev-1', many), 'updated');
      const writes = await logPropertyWrites(s);
      assert.equal(await post(s, g.productKey, 'dev-1', { p123: { value: 'new', time: 2 } }), 'updated');
      assert.equal(await post(s, g.productKey, 'dev-1', { fresh: { value: true, time: 2 } }), 'updated');
      assert.deepEqual(await writes(), ['p123', 'fresh'], 'only the posted rows were written');
      const stored = await s.devices.properties(g.productKey, 'dev-1');
      assert.equal(Object.keys(stored).length, 401);
      assert.deepEqual(stored.p123, { value: 'new', time: 2 });
      assert.deepEqual(stored.p124, { value: 124, time: 1 });
    }));

    test('concurrent posts of different properties to one device all survive', { timeout: 30_000 }, () => withStorage(open, async (s) => {
      const g = await seedGateway(s, 'g1');
      await s.devices.insert(device(g.productKey, 'dev-1'));
      await post(s, g.productKey, 'dev-1', { base: 0 });
      const results = await Promise.all(Array.from({ length: 20 }, (_, i) => post(s, g.productKey, 'dev-1', { [`k${i}`]: i })));
      assert.deepEqual(results, Array.from({ length: 20 }, () => 'updated'));
      const stored = await s.devices.properties(g.productKey, 'dev-1');
      assert.deepEqual(Object.keys(stored).sort(), ['base', ...Array.from({ length: 20 }, (_, i) => `k${i}`)].sort());
    }));

    test('the caps are judged on the totals after the post, one post at a time; a refused post writes nothing', { timeout: 30_000 }, () => withStorage(open, async (s) => {
      const g = await seedGateway(s, 'g1');
      await s.devices.insert(device(g.productKey, 'dev-1'));
      const atMost10 = (after: { count: number }): PropertyMergeResult => (after.count > 10 ? 'too_many' : 'updated');
      await post(s, g.productKey, 'dev-1', Object.fromEntries(Array.from({ length: 8 }, (_, i) => [`k${i}`, i])), atMost10);
      // Five posts at once, each one new key: room for two. Judged one after the other, never all on 8.
      const results = await Promise.all(Array.from({ length: 5 }, (_, i) => post(s, g.productKey, 'dev-1', { [`n${i}`]: i }, atMost10)));
      assert.equal(results.filter((r) => r === 'updated').length, 2, `results: ${results.join(', ')}`);
      assert.equal(results.filter((r) => r === 'too_many').length, 3);
      assert.equal(Object.keys(await s.devices.properties(g.productKey, 'dev-1')).length, 10);
      // Replacing known keys adds none: accepted at the cap.
      assert.equal(await post(s, g.productKey, 'dev-1', { k0: 'again', k1: 'again' }, atMost10), 'updated');

      // Bytes: the judge sees exactly the JSON size of the document the post would leave.
      let seen = -1;
      const doc = { ...(await s.devices.properties(g.productKey, 'dev-1')), k2: 'a longer value than before', 'ü': [1, 2] };
      const refuse = (after: { bytes: number }): PropertyMergeResult => {
        seen = after.bytes;
        return 'too_large';
      };
      const before = await s.devices.properties(g.productKey, 'dev-1');
      assert.equal(await post(s, g.productKey, 'dev-1', { k2: 'a longer value than before', 'ü': [1, 2] }, refuse), 'too_large');
      assert.equal(seen, Buffer.byteLength(JSON.stringify(doc)));
      assert.deepEqual(await s.devices.properties(g.productKey, 'dev-1'), before, 'nothing of the refused post was written');
    }));
  });
}
