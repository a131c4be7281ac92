/**
 * The contract of the connection event repository (issue 14) that every `Storage` implementation must
 * pass; run by `sqlite.test.ts` and `postgres.test.ts`.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { ConnectionEventRecord } from '../../src/registry/connection-events.ts';
import type { Storage } from '../../src/registry/ports.ts';
import type { OpenFreshStorage } from './repository.contract.ts';

/** Ids sort as time does (platform/ids.ts); these are made to sort by their number. */
const id = (n: number): string => `${String(n).padStart(14, '0')}abcdef`;

function event(n: number, overrides: Partial<ConnectionEventRecord> = {}): ConnectionEventRecord {
  const at = new Date(Date.UTC(2026, 0, 1, 0, 0, n)).toISOString();
  return {
    id: id(n), gatewayId: 'gw1', type: 'CONNECT_REFUSED', reason: 'BAD_CREDENTIALS', detail: 'wrong_password', mqttReasonCode: 0x86,
    protocolVersion: 5, clientId: `c-${n}`, username: 'meter-1', deviceName: null, address: '127.0.0.1',
    certificate: null, at, count: 1, lastAt: at, ...overrides,
  };
}

async function withStorage(open: OpenFreshStorage, work: (s: Storage) => Promise<void>): Promise<void> {
  const storage = await open();
  try {
    await work(storage);
  } finally {
    await storage.close();
  }
}

export function connectionEventsContract(name: string, open: OpenFreshStorage): void {
  void describe(`${name}: connection events`, () => {
    test('round-trip every field; newest first; each filter; the cursor pages without overlap', { timeout: 30_000 }, () => withStorage(open, async (s) => {
      const certificate = { cn: 'device-1', serial: '0A1B', issuer: 'CN=Devices CA, O=Test', fingerprint256: 'AA:BB' };
      const all = [
        event(1),
        event(2, { type: 'CONNECT_ACCEPTED', reason: 'ACCEPTED', detail: null, mqttReasonCode: 0, deviceName: 'dev-1', certificate }),
        event(3, { gatewayId: 'gw2', reason: 'UNKNOWN_DEVICE', username: 'stranger', clientId: 'c-x', protocolVersion: 4, mqttReasonCode: 4 }),
        event(4, { type: 'CONNECT_REFUSED', reason: 'CERT_UNTRUSTED', mqttReasonCode: null, protocolVersion: null, clientId: null, username: null }),
        event(5, { type: 'DISCONNECTED', reason: 'KEEPALIVE_TIMEOUT', deviceName: 'dev-1', mqttReasonCode: 0x8d }),
      ];
      await s.connectionEvents.insertMany(all);
      await s.connectionEvents.insertMany([event(1, { detail: 'a replay keeps the first' })]);
      const newest = await s.connectionEvents.query({ limit: 10 });
      assert.deepEqual(newest.map((e) => e.id), [5, 4, 3, 2, 1].map(id));
      assert.deepEqual(newest[3], all[1], 'every field, the certificate as an object');
      assert.deepEqual(newest[4], all[0]);
      assert.equal(newest[1]?.protocolVersion, null);

      const ids = async (q: Parameters<Storage['connectionEvents']['query']>[0]): Promise<string[]> =>
        (await s.connectionEvents.query(q)).map((e) => e.id);
      assert.deepEqual(await ids({ gatewayId: 'gw2', limit: 10 }), [id(3)]);
      assert.deepEqual(await ids({ deviceName: 'dev-1', limit: 10 }), [id(5), id(2)]);
      assert.deepEqual(await ids({ username: 'stranger', limit: 10 }), [id(3)]);
      assert.deepEqual(await ids({ clientId: 'c-x', limit: 10 }), [id(3)]);
      assert.deepEqual(await ids({ type: 'DISCONNECTED', limit: 10 }), [id(5)]);
      assert.deepEqual(await ids({ reason: 'BAD_CREDENTIALS', limit: 10 }), [id(1)]);
      assert.deepEqual(await ids({ since: event(4).at, limit: 10 }), [id(5), id(4)]);
      assert.deepEqual(await ids({ limit: 2 }), [id(5), id(4)]);
      assert.deepEqual(await ids({ before: id(4), limit: 2 }), [id(3), id(2)]);
      assert.deepEqual(await ids({ before: id(2), limit: 2 }), [id(1)]);
    }));

    test('folded repeats add to a row\'s count and move its lastAt (found by since)', { timeout: 30_000 }, () => withStorage(open, async (s) => {
      await s.connectionEvents.insertMany([event(1, { reason: 'THROTTLED', count: 3 }), event(2)]);
      const later = new Date(Date.UTC(2026, 0, 1, 0, 5, 0)).toISOString();
      await s.connectionEvents.addCounts([{ id: id(1), count: 47, lastAt: later }, { id: id(99), count: 1, lastAt: later }]);
      const [row] = await s.connectionEvents.query({ reason: 'THROTTLED', limit: 1 });
      assert.equal(row?.count, 50);
      assert.equal(row?.lastAt, later);
      assert.equal(row?.at, event(1).at, 'the first occurrence stays');
      assert.deepEqual((await s.connectionEvents.query({ since: later, limit: 10 })).map((e) => e.id), [id(1)]);
    }));

    test('foldMany (cluster nodes): a record folds into the newest row of its key within the window, else it is a row; one key at a time', { timeout: 30_000 }, () => withStorage(open, async (s) => {
      const WINDOW = 10_000;
      const at = (second: number): string => new Date(Date.UTC(2026, 0, 1, 0, 0, second)).toISOString();
      const same = (n: number, second: number, overrides: Partial<ConnectionEventRecord> = {}): ConnectionEventRecord =>
        event(n, { clientId: 'c-retry', at: at(second), lastAt: at(second), ...overrides });
      assert.deepEqual(await s.connectionEvents.foldMany([same(1, 1, { count: 2 })], WINDOW), [id(1)]);
      // Within the window: into row 1, its count added and its last occurrence moved; a null field is part of the key.
      assert.deepEqual(await s.connectionEvents.foldMany([same(2, 5, { count: 3 }), same(3, 6, { username: null })], WINDOW), [id(1), id(3)]);
      // An earlier last occurrence (a node's clock behind) does not move lastAt back.
      assert.deepEqual(await s.connectionEvents.foldMany([same(4, 3)], WINDOW), [id(1)]);
      // Past the window from the row's first occurrence: a new row.
      assert.deepEqual(await s.connectionEvents.foldMany([same(5, 12)], WINDOW), [id(5)]);
      const rows = await s.connectionEvents.query({ clientId: 'c-retry', limit: 10 });
      assert.deepEqual(rows.map((r) => [r.id, r.count, r.at, r.lastAt]), [
        [id(5), 1, at(12), at(12)], [id(3), 1, at(6), at(6)], [id(1), 6, at(1), at(5)],
      ]);
      // Two nodes writing one new key at once: one row with both counts.
      const racing = await Promise.all([
        s.connectionEvents.foldMany([same(6, 30, { reason: 'THROTTLED' })], WINDOW),
        s.connectionEvents.foldMany([same(7, 30, { reason: 'THROTTLED' })], WINDOW),
      ]);
      const throttled = await s.connectionEvents.query({ reason: 'THROTTLED', clientId: 'c-retry', limit: 10 });
      assert.deepEqual(throttled.map((r) => r.count), [2], JSON.stringify(racing));
    }));

    test('retention: the newest N of each gateway, and nothing whose last occurrence is older than the cut', { timeout: 30_000 }, () => withStorage(open, async (s) => {
      const rows: ConnectionEventRecord[] = [];
      for (let n = 1; n <= 30; n++) rows.push(event(n, { gatewayId: n % 3 === 0 ? 'gw-small' : 'gw-big' }));
      await s.connectionEvents.insertMany(rows);
      // gw-big has 20 rows, gw-small 10: keep 12 of each.
      assert.equal(await s.connectionEvents.prunePerGateway(12), 8);
      const big = await s.connectionEvents.query({ gatewayId: 'gw-big', limit: 100 });
      assert.equal(big.length, 12);
      assert.deepEqual(big.map((e) => e.id), rows.filter((r) => r.gatewayId === 'gw-big').slice(-12).reverse().map((r) => r.id));
      assert.equal((await s.connectionEvents.query({ gatewayId: 'gw-small', limit: 100 })).length, 10);

      // A folded row is judged by its last occurrence: an old first attempt that repeats now stays.
      const cut = event(20).at;
      const recent = new Date(Date.UTC(2026, 0, 1, 1, 0, 0)).toISOString();
      await s.connectionEvents.addCounts([{ id: id(30), count: 1, lastAt: recent }]);
      await s.connectionEvents.addCounts([{ id: id(3), count: 1, lastAt: recent }]);
      const removed = await s.connectionEvents.pruneOlderThan(cut);
      const left = await s.connectionEvents.query({ limit: 100 });
      assert.ok(left.every((e) => e.lastAt >= cut));
      assert.ok(left.some((e) => e.id === id(3)), 'repeated recently: kept');
      assert.equal(removed + left.length, 22);
    }));
  });
}
