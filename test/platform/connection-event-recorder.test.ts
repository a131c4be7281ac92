/**
 * The connection event recorder over real storage (SQLite in a temporary directory): repeats folded into
 * one row with a count, what it holds bounded in bytes (a flood is dropped and counted, never buffered
 * without end), expired folds make room again, new rows go live once written, retention per gateway.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { silentLogger } from '../../src/core/logger.ts';
import { ConnectionEventRecorder } from '../../src/platform/index.ts';
import type { ConnectionEventInput, ConnectionEventRecord } from '../../src/registry/connection-events.ts';
import { openStorage, type KyselyStorage } from '../../src/storage/index.ts';

let root: string;
let storage: KyselyStorage;

before(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'gatehouse-events-'));
  storage = await openStorage({ dataDir: root, logger: silentLogger });
}, { timeout: 60_000 });
after(async () => {
  await storage.close();
  await rm(root, { recursive: true, force: true });
}, { timeout: 30_000 });

function refusal(overrides: Partial<ConnectionEventInput> = {}): ConnectionEventInput {
  return {
    gatewayId: 'gw-fold', type: 'CONNECT_REFUSED', reason: 'BAD_CREDENTIALS', detail: 'wrong_password', mqttReasonCode: 0x86, protocolVersion: 5,
    clientId: 'c-1', username: 'meter-1', deviceName: null, address: '127.0.0.1', certificate: null, at: new Date().toISOString(), ...overrides,
  };
}

test('50 identical refusals in a second are one row with count 50; a different address is another row', { timeout: 30_000 }, async () => {
  const recorder = new ConnectionEventRecorder(storage.connectionEvents, silentLogger, { flushMs: 10 });
  const live: ConnectionEventRecord[] = [];
  recorder.onStored((r) => live.push(r));
  const t0 = Date.now();
  for (let i = 0; i < 50; i++) recorder.record(refusal({ at: new Date(t0 + i * 20).toISOString() }), t0 + i * 20);
  recorder.record(refusal({ address: '127.0.0.2' }), t0 + 999);
  const rows = await recorder.query({ gatewayId: 'gw-fold', limit: 100 });
  assert.deepEqual(rows.map((r) => [r.address, r.count]), [['127.0.0.2', 1], ['127.0.0.1', 50]]);
  assert.equal(rows[1]?.lastAt, new Date(t0 + 49 * 20).toISOString());
  assert.equal(recorder.stats.recorded, 2);
  assert.equal(recorder.stats.folded, 49);
  assert.equal(live.length, 2, 'each new row once on the live stream, not each repeat');

  // Repeats after the first write add to the stored row.
  for (let i = 0; i < 10; i++) recorder.record(refusal(), t0 + 1000 + i);
  assert.equal((await recorder.query({ gatewayId: 'gw-fold', limit: 100 }))[1]?.count, 60);
  // Past the fold window, the same key starts a new row.
  recorder.record(refusal(), t0 + 60_000);
  assert.equal((await recorder.query({ gatewayId: 'gw-fold', limit: 100 })).length, 3);
  await recorder.close();
});

test('two cluster nodes fold one device\'s retries into one row: each adds to the row the other wrote, a new row goes live once', { timeout: 30_000 }, async () => {
  // Two recorders on one database, as two nodes (or workers) of a cluster: a device's retries land on either.
  const options = { flushMs: 10, foldAcrossNodes: true };
  const nodeA = new ConnectionEventRecorder(storage.connectionEvents, silentLogger, options);
  const nodeB = new ConnectionEventRecorder(storage.connectionEvents, silentLogger, options);
  const live: ConnectionEventRecord[] = [];
  nodeA.onStored((r) => live.push(r));
  nodeB.onStored((r) => live.push(r));
  const t0 = Date.now();
  const retry = (i: number): ConnectionEventInput => refusal({ gatewayId: 'gw-nodes', at: new Date(t0 + i * 10).toISOString() });
  for (let i = 0; i < 30; i++) (i % 2 === 0 ? nodeA : nodeB).record(retry(i), t0 + i * 10);
  await Promise.all([nodeA.flushed(), nodeB.flushed()]);
  // More after both wrote: each node's next counts go to the one row, whichever node inserted it.
  for (let i = 30; i < 40; i++) (i % 2 === 0 ? nodeA : nodeB).record(retry(i), t0 + i * 10);
  const rows = await nodeA.query({ gatewayId: 'gw-nodes', limit: 10 });
  await nodeB.flushed();
  const final = await nodeA.query({ gatewayId: 'gw-nodes', limit: 10 });
  assert.equal(rows.length, 1, JSON.stringify(rows));
  assert.deepEqual(final.map((r) => r.count), [40]);
  assert.equal(live.length, 1, 'the row goes live once, from the node that inserted it');
  assert.equal(nodeA.stats.recorded + nodeB.stats.recorded, 1);
  assert.equal(nodeA.stats.folded + nodeB.stats.folded, 39);
  // Another key is another row, also across nodes.
  nodeB.record(refusal({ gatewayId: 'gw-nodes', address: '127.0.0.9' }), t0 + 500);
  assert.equal((await nodeA.query({ gatewayId: 'gw-nodes', limit: 10 })).length, 1, 'nodeA\'s read does not flush nodeB without a cluster');
  await nodeB.flushed();
  assert.equal((await nodeA.query({ gatewayId: 'gw-nodes', limit: 10 })).length, 2);
  await nodeA.close();
  await nodeB.close();
});

test('a flood of distinct refusals is bounded in bytes: beyond the cap events are dropped and counted', { timeout: 30_000 }, async () => {
  const maxBytes = 64 * 1024;
  const recorder = new ConnectionEventRecorder(storage.connectionEvents, silentLogger, { flushMs: 10, maxBytes, foldWindowMs: 1000 });
  const t0 = Date.now();
  // A stranger cycling client ids and usernames from many addresses: nothing folds.
  const flood = 5000;
  for (let i = 0; i < flood; i++) {
    recorder.record(refusal({ gatewayId: 'gw-flood', clientId: `rnd-${i}-${'x'.repeat(200)}`, username: `u-${i}`, address: `10.0.${i >> 8}.${i & 255}` }), t0);
    assert.ok(recorder.stats.heldBytes <= maxBytes, `held ${recorder.stats.heldBytes} bytes after ${i + 1} events`);
  }
  const { recorded, dropped } = recorder.stats;
  assert.ok(dropped > 0, 'some were dropped');
  assert.equal(recorded + dropped, flood, 'every event is either a row or counted as dropped');
  const stored = await recorder.query({ gatewayId: 'gw-flood', limit: 1000 });
  assert.equal(stored.length, recorded);

  // Once their fold window has passed, written folds make room: new events are recorded again.
  recorder.record(refusal({ gatewayId: 'gw-flood', clientId: 'after-the-flood' }), t0 + 1001);
  assert.equal(recorder.stats.recorded, recorded + 1);
  assert.equal((await recorder.query({ clientId: 'after-the-flood', limit: 1 })).length, 1);
  await recorder.close();
});

test('retention keeps the newest N of each gateway', { timeout: 30_000 }, async () => {
  const recorder = new ConnectionEventRecorder(storage.connectionEvents, silentLogger, { flushMs: 10, keepPerGateway: 5 });
  for (let i = 0; i < 12; i++) recorder.record(refusal({ gatewayId: 'gw-keep', clientId: `k-${i}` }));
  assert.equal((await recorder.query({ gatewayId: 'gw-keep', limit: 100 })).length, 12);
  await recorder.prune();
  const kept = await recorder.query({ gatewayId: 'gw-keep', limit: 100 });
  assert.deepEqual(kept.map((e) => e.clientId), ['k-11', 'k-10', 'k-9', 'k-8', 'k-7']);
  await recorder.close();
});
