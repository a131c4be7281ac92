/**
 * The contract of the platform-side repositories (issue 6: messages, webhooks, dead letters) that
 * every `Storage` implementation must pass; run by `sqlite.test.ts` and `postgres.test.ts`.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { MessageRecord, Storage, WebhookRecord } from '../../src/registry/ports.ts';
import type { OpenFreshStorage } from './repository.contract.ts';

function message(id: string, deviceName: string, receivedAt: string, overrides: Partial<MessageRecord> = {}): MessageRecord {
  return {
    id, gatewayId: 'gw1', productKey: 'pk1', deviceName, topic: `/pk1/${deviceName}/user/update`, qos: 1,
    payload: Buffer.from([0, 0xff, 0x10]), parsed: { temperature: 21.5, nested: { ok: true } }, parseError: null, receivedAt,
    ...overrides,
  };
}

function webhook(id: string, overrides: Partial<WebhookRecord> = {}): WebhookRecord {
  return {
    id, url: 'https://hooks.example.com/in', description: null, gatewayId: null, eventTypes: ['message', 'online'],
    secretEncrypted: 'v1:sealed', caCertificate: null, enabled: true, createdAt: '2026-01-01T00:00:00.000Z',
    updatedAt: '2026-01-01T00:00:00.000Z', ...overrides,
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

export function platformRepositoryContract(name: string, open: OpenFreshStorage): void {
  void describe(`${name}: platform repositories`, () => {
    test('messages round-trip bytes and JSON, filter, order newest first, and prune per device and by age', { timeout: 5_000 }, () => withStorage(open, async (s) => {
      await s.messages.insertMany([
        message('a1', 'dev-a', '2026-01-01T00:00:01.000Z'),
        message('a2', 'dev-a', '2026-01-01T00:00:02.000Z', { parsed: null, parseError: 'threw: Error: bad' }),
        message('a3', 'dev-a', '2026-01-01T00:00:03.000Z'),
        message('b1', 'dev-b', '2026-01-01T00:00:04.000Z', { gatewayId: 'gw2', productKey: 'pk2' }),
      ]);
      const all = await s.messages.query({ limit: 10 });
      assert.deepEqual(all.map((m) => m.id), ['b1', 'a3', 'a2', 'a1']);
      assert.deepEqual(all[3], message('a1', 'dev-a', '2026-01-01T00:00:01.000Z'));
      assert.deepEqual((await s.messages.query({ gatewayId: 'gw1', deviceName: 'dev-a', limit: 2 })).map((m) => m.id), ['a3', 'a2']);
      assert.deepEqual((await s.messages.query({ parseFailed: true, limit: 10 })).map((m) => m.id), ['a2']);
      assert.deepEqual((await s.messages.query({ since: '2026-01-01T00:00:03.000Z', limit: 10 })).map((m) => m.id), ['b1', 'a3']);
      assert.equal(await s.messages.pruneDevice('pk1', 'dev-a', 2), 1);
      assert.deepEqual((await s.messages.query({ deviceName: 'dev-a', limit: 10 })).map((m) => m.id), ['a3', 'a2']);
      assert.equal(await s.messages.pruneDevice('pk1', 'dev-a', 5), 0);
      assert.equal(await s.messages.pruneOlderThan('2026-01-01T00:00:03.500Z'), 2);
      assert.deepEqual((await s.messages.query({ limit: 10 })).map((m) => m.id), ['b1']);
    }));

    test('a batch larger than one statement is inserted whole', { timeout: 5_000 }, () => withStorage(open, async (s) => {
      const batch = Array.from({ length: 1200 }, (_, i) => message(`m${String(i).padStart(5, '0')}`, 'dev-a', '2026-01-01T00:00:00.000Z'));
      await s.messages.insertMany(batch);
      assert.equal((await s.messages.query({ limit: 2000 })).length, 1200);
    }));

    test('webhooks: insert, update, list, dead letters, outbox, delete with its dead letters and outbox', { timeout: 5_000 }, () => withStorage(open, async (s) => {
      await s.webhooks.insert(webhook('w1'));
      await s.webhooks.insert(webhook('w2', { createdAt: '2026-01-02T00:00:00.000Z', gatewayId: 'gw1', caCertificate: 'PEM' }));
      assert.deepEqual(await s.webhooks.get('w1'), webhook('w1'));
      assert.equal(await s.webhooks.update(webhook('w1', { enabled: false, eventTypes: ['offline'] })), true);
      assert.equal(await s.webhooks.update(webhook('nope')), false);
      assert.deepEqual((await s.webhooks.list()).map((w) => [w.id, w.enabled, w.eventTypes]), [['w1', false, ['offline']], ['w2', true, ['message', 'online']]]);
      for (const [id, at] of [['d1', '2026-01-03T00:00:00.000Z'], ['d2', '2026-01-04T00:00:00.000Z']] as const) {
        await s.webhooks.insertDeadLetter({ id, webhookId: 'w1', eventId: `e-${id}`, body: '{"id":"x"}', attempts: 5, lastError: 'HTTP 503', failedAt: at });
      }
      assert.deepEqual((await s.webhooks.listDeadLetters('w1', 10)).map((d) => d.id), ['d2', 'd1']);
      assert.equal((await s.webhooks.listDeadLetters('w1', 10))[0]?.attempts, 5);
      assert.equal(await s.webhooks.deleteDeadLetter('w1', 'd1'), true);
      assert.equal(await s.webhooks.deleteDeadLetter('w2', 'd2'), false);
      const entry = (eventId: string, createdAt: string) => ({ webhookId: 'w1', eventId, eventType: 'message' as const, body: `{"id":"${eventId}"}`, createdAt });
      await s.webhooks.addToOutbox([entry('e2', '2026-01-05T00:00:02.000Z'), entry('e1', '2026-01-05T00:00:01.000Z'), entry('e3', '2026-01-05T00:00:03.000Z')]);
      await s.webhooks.addToOutbox([entry('e1', '2026-01-06T00:00:00.000Z')]); // already there: left as it is
      assert.deepEqual(await s.webhooks.listOutbox('w1', 10), [entry('e1', '2026-01-05T00:00:01.000Z'), entry('e2', '2026-01-05T00:00:02.000Z'), entry('e3', '2026-01-05T00:00:03.000Z')]);
      await s.webhooks.removeFromOutbox([{ webhookId: 'w1', eventId: 'e2' }, { webhookId: 'w2', eventId: 'e3' }]);
      assert.deepEqual((await s.webhooks.listOutbox('w1', 10)).map((e) => e.eventId), ['e1', 'e3']);
      assert.deepEqual((await s.webhooks.listOutbox('w1', 1)).map((e) => e.eventId), ['e1']);
      assert.equal(await s.webhooks.delete('w1'), true);
      assert.equal(await s.webhooks.get('w1'), undefined);
      assert.deepEqual(await s.webhooks.listDeadLetters('w1', 10), []);
      assert.deepEqual(await s.webhooks.listOutbox('w1', 10), []);
      assert.equal(await s.webhooks.delete('w1'), false);
    }));

    test('webhooks: outbox rows are claimed by one node; another takes them only unclaimed or lapsed; own rows on request; claims renew', { timeout: 10_000 }, () => withStorage(open, async (s) => {
      await s.webhooks.insert(webhook('w1'));
      await s.webhooks.insert(webhook('w2'));
      const entry = (webhookId: string, eventId: string, createdAt: string) => ({ webhookId, eventId, eventType: 'message' as const, body: `{"id":"${eventId}"}`, createdAt });
      const t = (s: number): string => new Date(Date.UTC(2026, 0, 5, 0, 0, s)).toISOString();
      await s.webhooks.addToOutbox([entry('w1', 'a2', t(2)), entry('w1', 'a1', t(1))], { nodeId: 'node-a', until: t(10) });
      await s.webhooks.addToOutbox([entry('w1', 'u1', t(3))]); // written before claims existed: nobody's
      await s.webhooks.addToOutbox([entry('w2', 'b1', t(1))], { nodeId: 'node-b', until: t(10) });
      const claim = (nodeId: string, now: number, own: boolean, webhookId = 'w1', limit = 10) =>
        s.webhooks.claimOutbox(webhookId, { nodeId, until: t(now + 10), now: t(now), own }, limit).then((rows) => rows.map((r) => r.eventId));

      // While node A's claim holds, node C takes only the row nobody claims; then nothing (it holds that one now).
      assert.deepEqual(await claim('node-c', 5, false), ['u1']);
      assert.deepEqual(await claim('node-c', 5, false), []);
      // Node A restarting takes its own rows back (and leaves C's, whose claim holds).
      assert.deepEqual(await claim('node-a', 5, true), ['a1', 'a2']);
      // Node A renews (until 25): at 20 its rows are still its own, while C's (until 15) lapsed and go to B, oldest first, up to the limit.
      assert.equal(await s.webhooks.renewOutboxClaims({ nodeId: 'node-a', until: t(25) }), 2);
      assert.deepEqual(await claim('node-b', 20, false, 'w1', 1), ['u1']);
      assert.deepEqual(await claim('node-b', 20, false), []);
      // Past node A's claim, its rows go to whoever sweeps, whole entries, oldest first (B's own u1, until 30, stays put).
      const taken = await s.webhooks.claimOutbox('w1', { nodeId: 'node-b', until: t(50), now: t(26), own: false }, 10);
      assert.deepEqual(taken, [entry('w1', 'a1', t(1)), entry('w1', 'a2', t(2))]);
      // Another webhook's rows are its own; a removed row is claimed by nobody.
      assert.deepEqual(await claim('node-c', 60, false, 'w2'), ['b1']);
      await s.webhooks.removeFromOutbox([{ webhookId: 'w2', eventId: 'b1' }]);
      assert.deepEqual(await claim('node-c', 90, true, 'w2'), []);
      assert.equal(await s.webhooks.renewOutboxClaims({ nodeId: 'node-a', until: t(99) }), 0);
    }));

    test('webhooks: an outbox batch of large bodies is written whole, in several statements, every entry once', { timeout: 30_000 }, () => withStorage(open, async (s) => {
      await s.webhooks.insert(webhook('w1'));
      // 40 bodies of 100 KB and 700 small ones: past both the bytes and the rows of one statement.
      const entries = [
        ...Array.from({ length: 40 }, (_, i) => ({ webhookId: 'w1', eventId: `big-${String(i).padStart(3, '0')}`, eventType: 'message' as const,
          body: JSON.stringify({ id: i, payload: 'x'.repeat(100_000) }), createdAt: `2026-01-05T00:00:00.${String(i).padStart(3, '0')}Z` })),
        ...Array.from({ length: 700 }, (_, i) => ({ webhookId: 'w1', eventId: `small-${String(i).padStart(3, '0')}`, eventType: 'online' as const,
          body: `{"id":${i}}`, createdAt: `2026-01-06T00:00:00.${String(i).padStart(3, '0')}Z` })),
      ];
      await s.webhooks.addToOutbox(entries);
      const stored = await s.webhooks.listOutbox('w1', 1000);
      assert.equal(stored.length, entries.length);
      assert.deepEqual(stored.map((e) => e.eventId), entries.map((e) => e.eventId));
      assert.equal(stored[39]?.body, entries[39]?.body);
    }));
  });
}
