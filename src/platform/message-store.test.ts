import assert from 'node:assert/strict';
import { test } from 'node:test';
import { silentLogger } from '../core/logger.ts';
import type { MessageQuery, MessageRecord, MessageRepository } from '../registry/index.ts';
import { MessageStore } from './message-store.ts';

class FakeRepo implements MessageRepository {
  readonly batches: string[][] = [];
  readonly prunes: [string, number][] = [];
  fail = false;
  insertMany(records: MessageRecord[]): Promise<void> {
    if (this.fail) return Promise.reject(new Error('database down'));
    this.batches.push(records.map((r) => r.id));
    return Promise.resolve();
  }
  query(_q: MessageQuery): Promise<MessageRecord[]> {
    return Promise.resolve([]);
  }
  pruneDevice(_pk: string, deviceName: string, keep: number): Promise<number> {
    this.prunes.push([deviceName, keep]);
    return Promise.resolve(0);
  }
  pruneOlderThan(): Promise<number> {
    return Promise.resolve(0);
  }
}

function record(id: string, deviceName = 'dev', payloadBytes = 0): MessageRecord {
  return { id, gatewayId: 'g', productKey: 'pk', deviceName, topic: 't', qos: 0, payload: Buffer.alloc(payloadBytes), parsed: null, parseError: null, receivedAt: 'now' };
}

const OPTIONS = { keepPerDevice: 20, maxAgeMs: 3600_000, batchSize: 3, flushMs: 10_000, maxPending: 5, maxPendingBytes: 1024 * 1024 };

test('messages are written in batches, the buffer is bounded, devices are pruned after a tenth of their quota', { timeout: 5_000 }, async () => {
  const repo = new FakeRepo();
  const store = new MessageStore(repo, OPTIONS, silentLogger);
  for (let i = 0; i < 7; i++) store.add(record(`m${i}`));
  assert.equal(store.stats.dropped, 2, 'beyond maxPending before a flush ran');
  await store.flush();
  assert.deepEqual(repo.batches, [['m0', 'm1', 'm2'], ['m3', 'm4']]);
  assert.deepEqual(repo.prunes, [['dev', 20], ['dev', 20]], 'pruned after each batch that brought 2 (= 20 / 10) or more');
  assert.equal(store.stats.written, 5);
  await store.close();
});

test('a failing database drops the batch (counted) instead of growing the buffer', { timeout: 5_000 }, async () => {
  const repo = new FakeRepo();
  repo.fail = true;
  const store = new MessageStore(repo, OPTIONS, silentLogger);
  store.add(record('x'));
  await store.flush();
  assert.deepEqual(store.stats, { written: 0, dropped: 0, failed: 1, pending: 0 });
  await store.close();
});

test('the buffer is bounded in payload bytes too: large messages past maxPendingBytes are dropped (counted), room comes back after a write', { timeout: 5_000 }, async () => {
  const repo = new FakeRepo();
  const store = new MessageStore(repo, { ...OPTIONS, maxPending: 1000, batchSize: 1000, maxPendingBytes: 10_000 }, silentLogger);
  for (let i = 0; i < 5; i++) store.add(record(`big${i}`, 'dev', 3_000));
  assert.equal(store.stats.dropped, 2, 'three of 3,000 bytes fit in 10,000, the fourth and fifth do not');
  store.add(record('small', 'dev', 500));
  assert.equal(store.stats.dropped, 2, 'a message that still fits is kept');
  await store.flush();
  assert.deepEqual(repo.batches, [['big0', 'big1', 'big2', 'small']]);
  store.add(record('after', 'dev', 9_000));
  assert.equal(store.stats.pending, 1, 'the written bytes were given back');
  await store.close();
});

test('a flush writes rowsPerWrite rows per statement and lets the event loop turn between statements', { timeout: 10_000 }, async () => {
  const repo = new FakeRepo();
  const store = new MessageStore(repo, { ...OPTIONS, maxPending: 1000, batchSize: 500, rowsPerWrite: 50 }, silentLogger);
  for (let i = 0; i < 120; i++) store.add(record(`m${i}`));
  // Another connection's work, queued while the store writes: it must run between the statements.
  const turns: number[] = [];
  const other = (): void => {
    turns.push(repo.batches.length);
    if (turns.length < 5) setImmediate(other);
  };
  setImmediate(other);
  await store.flush();
  assert.deepEqual(repo.batches.map((b) => b.length), [50, 50, 20]);
  assert.ok(turns.some((n) => n === 1) && turns.some((n) => n === 2), `other work ran between the statements (saw ${turns.join(',')})`);
  await store.close();
});

test('a statement carries at most bytesPerWrite of payloads (one larger payload goes alone), the event loop turning between', { timeout: 10_000 }, async () => {
  const repo = new FakeRepo();
  const store = new MessageStore(repo, { ...OPTIONS, maxPending: 100, batchSize: 100, rowsPerWrite: 50, bytesPerWrite: 1000, maxPendingBytes: 1 << 20 }, silentLogger);
  const sizes = [400, 400, 400, 5000, 100, 100, 100, 100, 100, 100, 100, 100, 100, 100, 100, 100];
  sizes.forEach((n, i) => store.add(record(`m${i}`, 'dev', n)));
  await store.flush();
  assert.deepEqual(repo.batches, [
    ['m0', 'm1'], // 800; a third 400 would pass 1000
    ['m2'], // 400, and the next one alone is 5000
    ['m3'],
    ['m4', 'm5', 'm6', 'm7', 'm8', 'm9', 'm10', 'm11', 'm12', 'm13'], // 1000
    ['m14', 'm15'],
  ]);
  assert.equal(store.stats.written, sizes.length);
  await store.close();
});
