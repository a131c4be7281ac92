import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createMessage, type Message } from './message.ts';
import { RetainedStore, type RetainedBodies } from './retained.ts';

const retained = (topic: string, bytes: number, fill = 1, expiresAt = 0): Message =>
  createMessage({ topic, payload: Buffer.alloc(bytes, fill), qos: 1, retain: true, properties: undefined, expiresAt, senderId: 'pub' });

/** A durable store of payloads, as the engine's persistence would be, counting reads. */
function disk(): RetainedBodies & { rows: Map<string, Buffer>; reads: string[] } {
  const rows = new Map<string, Buffer>();
  const reads: string[] = [];
  return { rows, reads, readRetainedPayload: (topic) => { reads.push(topic); return rows.get(topic); } };
}

/** What the journal does: the store writes the row, then the engine is told it was written. */
function setAndWrite(store: RetainedStore, bodies: ReturnType<typeof disk>, m: Message): void {
  assert.ok(store.set(m));
  bodies.rows.set(m.topic, m.payload);
  store.written(m);
}

test('payloads already written stay in memory up to the cache size; older ones are read back whole when asked for', { timeout: 5_000 }, () => {
  const bodies = disk();
  const store = new RetainedStore(100, Infinity, bodies, 2500);
  for (const t of ['a', 'b', 'c']) setAndWrite(store, bodies, retained(t, 1000, t.charCodeAt(0)));
  assert.equal(store.cachedBytes, 2000, 'the least recently used payload left memory');
  assert.equal(store.bytes, 3003, 'the limits still count every message');
  const a = store.get('a', Date.now());
  assert.deepEqual(a?.payload, Buffer.alloc(1000, 'a'.charCodeAt(0)));
  assert.deepEqual(bodies.reads, ['a']);
  // Reading 'a' back made it the most recent: 'b' is the one that left.
  store.get('c', Date.now());
  store.get('a', Date.now());
  assert.deepEqual(bodies.reads, ['a']);
  store.get('b', Date.now());
  assert.deepEqual(bodies.reads, ['a', 'b']);
  assert.ok(store.cachedBytes <= 2500);
});

test('a payload not yet written never leaves memory, whatever the cache size', { timeout: 5_000 }, () => {
  const bodies = disk();
  const store = new RetainedStore(100, Infinity, bodies, 0);
  const m = retained('pending', 5000);
  assert.ok(store.set(m));
  assert.equal(store.get('pending', Date.now()), m);
  assert.deepEqual(bodies.reads, []);
  bodies.rows.set('pending', m.payload);
  store.written(m);
  assert.equal(store.cachedBytes, 0, 'written, and the cache holds nothing: it left memory');
  assert.deepEqual(store.get('pending', Date.now())?.payload, m.payload);
  assert.deepEqual(bodies.reads, ['pending']);
});

test('written() for a message already replaced keeps the newer one in memory; a cleared topic is gone from index and cache', { timeout: 5_000 }, () => {
  const bodies = disk();
  const store = new RetainedStore(100, Infinity, bodies, 0);
  const first = retained('t', 10, 1);
  const second = retained('t', 20, 2);
  store.set(first);
  store.set(second);
  store.written(first); // the batch holding `first` ended after `second` arrived
  assert.equal(store.get('t', Date.now()), second);
  assert.deepEqual(bodies.reads, []);
  assert.equal(store.bytes, 21);
  assert.ok(store.set(createMessage({ ...second, payload: Buffer.alloc(0) })));
  assert.equal(store.size, 0);
  assert.equal(store.bytes, 0);
  assert.equal(store.get('t', Date.now()), undefined);
});

test('restored from the store without payloads: nothing is read at start, the index matches, a lost row drops its topic', { timeout: 5_000 }, () => {
  const bodies = disk();
  bodies.rows.set('s/1', Buffer.from('one'));
  const store = new RetainedStore(100, Infinity, bodies, 1024);
  for (const topic of ['s/1', 's/2']) store.restore({ topic, qos: 1, properties: undefined, expiresAt: 0, senderId: 'x', payloadBytes: 3 });
  store.restore({ topic: 's/old', qos: 0, properties: undefined, expiresAt: Date.now() - 1, senderId: 'x', payloadBytes: 3 });
  assert.equal(store.cachedBytes, 0);
  assert.deepEqual(bodies.reads, []);
  assert.deepEqual(store.match('s/+', Date.now()).map((r) => r.topic), ['s/1', 's/2'], 'expired at match time: left out [MQTT-3.3.2-5]');
  assert.equal(store.get('s/1', Date.now())?.payload.toString(), 'one');
  assert.equal(store.get('s/2', Date.now()), undefined, 'its row is not in the store');
  assert.equal(store.size, 1);
  assert.equal(store.bytes, 3 + 3);
});

test('without a store to read back from, every payload stays in memory', { timeout: 5_000 }, () => {
  const store = new RetainedStore(100, Infinity, undefined, 0);
  const m = retained('kept', 4096);
  store.set(m);
  store.written(m);
  assert.equal(store.get('kept', Date.now()), m);
});

test('limits: a new topic past the count, or a message past the bytes, is refused and says which', { timeout: 5_000 }, () => {
  const store = new RetainedStore(2, 1000);
  assert.ok(store.set(retained('a', 400)));
  assert.equal(store.refusal(retained('b', 700)), 'bytes');
  assert.ok(store.set(retained('b', 500)));
  assert.equal(store.refusal(retained('c', 1)), 'count');
  assert.equal(store.refusal(retained('a', 490)), null, 'a replacement frees its own bytes first');
  assert.equal(store.refusal(retained('a', 499)), 'bytes'); // 501 + 500 = 1001
  store.setLimits(3, 2000);
  assert.equal(store.refusal(retained('c', 1)), null);
});

test('[MQTT-3.3.2-5] an expired message leaves the index and the store is told (match, get, and the sweep), freeing its bytes', { timeout: 5_000 }, () => {
  const store = new RetainedStore(100, 3_000);
  const expired: string[] = [];
  store.onExpired = (topic) => expired.push(topic);
  const t0 = 1_000_000;
  for (const [topic, expiresAt] of [['a/1', t0 + 10], ['a/2', t0 + 20], ['b', t0 + 10], ['keep', 0]] as const) {
    assert.ok(store.set(retained(topic, 500, 1, expiresAt)));
  }
  assert.equal(store.refusal(retained('new', 1_500)), 'bytes', 'full while they are held');
  assert.deepEqual(store.match('a/+', t0 + 15).map((r) => r.topic), ['a/2']);
  assert.deepEqual(expired, ['a/1']);
  assert.equal(store.get('b', t0 + 15), undefined);
  assert.deepEqual(expired, ['a/1', 'b']);
  // Nobody asks for a/2: the sweep finds it, a budget of topics at a time, going on where it stopped.
  store.sweepExpired(t0 + 30, 1);
  store.sweepExpired(t0 + 30, 1);
  assert.deepEqual(expired, ['a/1', 'b', 'a/2']);
  store.sweepExpired(t0 + 30, 10);
  assert.deepEqual(expired, ['a/1', 'b', 'a/2'], 'a message without expiry stays');
  assert.equal(store.size, 1);
  assert.equal(store.refusal(retained('new', 1_500)), null, 'their bytes are free again');
});
