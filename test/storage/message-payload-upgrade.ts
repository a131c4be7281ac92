/**
 * Migration 0009 on either database: messages stored before it (payload as base64 text) read back as the
 * same bytes after it. `old` is a database migrated up to 0007 only; `reopen` opens it at the latest.
 */
import assert from 'node:assert/strict';
import { sql, type Kysely } from 'kysely';
import type { KyselyStorage } from '../../src/storage/index.ts';
import type { Database } from '../../src/storage/schema.ts';

/** More rows than the SQLite migration rewrites per step, so its paging is crossed; an empty payload among them. */
export const UPGRADE_ROWS = 1_234;

function payloadOf(i: number): Buffer {
  return i === 5 ? Buffer.alloc(0) : Buffer.from(Array.from({ length: 1 + (i % 300) }, (_, k) => (i * 7 + k) & 0xff));
}

export async function checkMessagePayloadUpgrade(old: Kysely<Database>, reopen: () => Promise<KyselyStorage>): Promise<void> {
  for (let i = 0; i < UPGRADE_ROWS; i += 200) {
    const rows = Array.from({ length: Math.min(200, UPGRADE_ROWS - i) }, (_, k) => {
      const n = i + k;
      return sql`(${`m-${String(n).padStart(5, '0')}`}, 'g1', 'pk1', 'dev', 't/x', 1, ${payloadOf(n).toString('base64')}, null, null, '2026-01-01T00:00:00.000Z')`;
    });
    await sql`insert into messages (id, gateway_id, product_key, device_name, topic, qos, payload, parsed, parse_error, received_at)
      values ${sql.join(rows)}`.execute(old);
  }
  await old.destroy();
  const storage = await reopen();
  try {
    const read = await storage.messages.query({ productKey: 'pk1', deviceName: 'dev', limit: UPGRADE_ROWS + 10 });
    assert.equal(read.length, UPGRADE_ROWS);
    for (const m of read) {
      const n = Number(m.id.slice(2));
      assert.ok(Buffer.isBuffer(m.payload));
      assert.deepEqual(m.payload, payloadOf(n), `message ${m.id}`);
    }
    // New rows are bytes too, read back the same.
    const fresh = Buffer.from([0, 0xff, 0x80, 0x0a]);
    await storage.messages.insertMany([{ id: 'n-1', gatewayId: 'g1', productKey: 'pk1', deviceName: 'dev', topic: 't', qos: 0, payload: fresh, parsed: null, parseError: null, receivedAt: '2026-01-02T00:00:00.000Z' }]);
    assert.deepEqual((await storage.messages.query({ productKey: 'pk1', deviceName: 'dev', limit: 1 }))[0]!.payload, fresh);
  } finally {
    await storage.close();
  }
}
