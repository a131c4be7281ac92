import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InflightTable } from './inflight-table.ts';

interface Entry { packetId: number; seq: number }

/** Takes the next free id the way a session does: sequential, skipping ids whose slot is taken. */
function allocate(table: InflightTable<Entry>, next: { id: number }): number {
  for (;;) {
    const id = next.id;
    next.id = id === 65535 ? 1 : id + 1;
    if (table.isFree(id)) return id;
  }
}

test('entries are found by packet id and only by their own id', { timeout: 5_000 }, () => {
  const t = new InflightTable<Entry>();
  t.set({ packetId: 5, seq: 1 });
  assert.equal(t.get(5)?.seq, 1);
  assert.equal(t.get(5 + 16), undefined); // same slot in a 16-slot table, different id
  assert.equal(t.delete(21), false);
  assert.equal(t.size, 1);
  assert.equal(t.delete(5), true);
  assert.equal(t.size, 0);
  assert.equal(t.get(5), undefined);
});

test('[MQTT-2.2.1-3] ids handed out through isFree are never in use, across wrap-around and growth', { timeout: 10_000 }, () => {
  const t = new InflightTable<Entry>();
  const next = { id: 65000 };
  const live = new Map<number, Entry>();
  let seq = 0;
  // A window of up to 700 in flight, acknowledged out of order, over 150,000 flows (ids wrap twice).
  for (let i = 0; i < 150_000; i++) {
    const id = allocate(t, next);
    assert.ok(id >= 1 && id <= 65535);
    assert.equal(live.has(id), false, `id ${id} handed out while in use`);
    const e = { packetId: id, seq: seq++ };
    t.set(e);
    live.set(id, e);
    if (live.size > 700 || i % 7 === 0) {
      // acknowledge one from the middle of the window
      const ids = [...live.keys()];
      const victim = ids[(i * 31) % ids.length]!;
      assert.equal(t.delete(victim), true);
      live.delete(victim);
    }
  }
  assert.equal(t.size, live.size);
  for (const [id, e] of live) assert.equal(t.get(id), e);
});

test('restored ids that share a slot grow the table, and ordered() follows seq', { timeout: 5_000 }, () => {
  const t = new InflightTable<Entry>();
  // 1, 17, 33 … all share slot 1 of a 16-slot table.
  const ids = [1, 17, 33, 49, 65535, 32768];
  ids.forEach((packetId, k) => t.set({ packetId, seq: 100 - k }));
  assert.equal(t.size, ids.length);
  for (const id of ids) assert.equal(t.get(id)?.packetId, id);
  assert.deepEqual(t.ordered().map((e) => e.packetId), [...ids].reverse());
  t.set({ packetId: 17, seq: 1 }); // replaces, does not add
  assert.equal(t.size, ids.length);
  assert.equal(t.ordered()[0]!.packetId, 17);
});

test('[MQTT-2.2.1-3] every one of the 65,535 ids can be in flight at once; then none is free', { timeout: 30_000 }, () => {
  const t = new InflightTable<Entry>();
  const next = { id: 1 };
  for (let seq = 0; seq < 65_535; seq++) t.set({ packetId: allocate(t, next), seq });
  assert.equal(t.size, 65_535);
  for (let id = 1; id <= 65_535; id++) assert.equal(t.get(id)?.packetId, id);
  for (const id of [1, 2, 32_768, 65_535]) assert.equal(t.isFree(id), false);
  assert.equal(t.delete(32_768), true);
  assert.equal(t.isFree(32_768), true);
});
