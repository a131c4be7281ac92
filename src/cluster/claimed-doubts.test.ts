import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ClaimedDoubts } from './claimed-doubts.ts';
import { IN_DOUBT_BEFORE_DEATH_MS } from './in-doubt-stores.ts';
import { silentLogger } from '../core/logger.ts';

test('the sessions claimed in one moment share one read of the stream, from the earliest holder\'s lease write less the doubt margin; only stores of their epochs are offered, each to its client [MQTT-4.3.3-10]', { timeout: 5_000 }, async () => {
  const reads: number[] = [];
  const taken: string[] = [];
  const doubts = new ClaimedDoubts((sinceMs, each) => {
    reads.push(sinceMs);
    for (const id of ['e1.7.0', 'p9.41', 'e3.7.0', 'e2.9.1', 'e1.8.2', 'e1.x.0', 'e1.7']) each(id);
    return Promise.resolve(7);
  }, (clientId, epoch, packetId, uses) => {
    taken.push(`${clientId} ${epoch} ${packetId} ${uses}`);
    return packetId !== 8; // the session moved past that one
  }, silentLogger, 10);
  doubts.add('c1', 'e1', 50_000);
  doubts.add('c2', 'e2', 40_000);
  await new Promise((resolve) => setTimeout(resolve, 50));
  await doubts.flushed();
  assert.deepEqual(reads, [40_000 - IN_DOUBT_BEFORE_DEATH_MS], 'one read, from the earlier write');
  assert.deepEqual(taken, ['c1 e1 7 0', 'c2 e2 9 1', 'c1 e1 8 2']);

  // A later claim: a read of its own.
  doubts.add('c3', 'e3', 60_000);
  await new Promise((resolve) => setTimeout(resolve, 50));
  await doubts.flushed();
  assert.deepEqual(reads, [40_000 - IN_DOUBT_BEFORE_DEATH_MS, 60_000 - IN_DOUBT_BEFORE_DEATH_MS]);
  assert.equal(taken.at(-1), 'c3 e3 7 0');
  doubts.close();
});

test('a read that fails takes nothing and the next claim reads again; a closed one reads no more', { timeout: 5_000 }, async () => {
  let fail = true;
  let reads = 0;
  const taken: string[] = [];
  const doubts = new ClaimedDoubts((_sinceMs, each) => {
    reads++;
    if (fail) return Promise.reject(new Error('NATS away'));
    each('e1.7.0');
    return Promise.resolve(1);
  }, (clientId) => {
    taken.push(clientId);
    return true;
  }, silentLogger, 10);
  doubts.add('c1', 'e1', 1_000);
  await new Promise((resolve) => setTimeout(resolve, 50));
  await doubts.flushed();
  assert.equal(reads, 1);
  assert.deepEqual(taken, []);
  fail = false;
  doubts.add('c1', 'e1', 1_000);
  await new Promise((resolve) => setTimeout(resolve, 50));
  await doubts.flushed();
  assert.deepEqual(taken, ['c1']);
  doubts.add('c2', 'e1', 1_000);
  doubts.close();
  await new Promise((resolve) => setTimeout(resolve, 50));
  await doubts.flushed();
  assert.equal(reads, 2, 'closed before its moment ended: not read');
});

test('a session whose take throws costs only that session: the others of its read and the checks after it go on', { timeout: 5_000 }, async () => {
  const taken: string[] = [];
  const doubts = new ClaimedDoubts((_sinceMs, each) => {
    for (const id of ['e1.7.0', 'e2.7.0', 'e3.7.0']) each(id);
    return Promise.resolve(3);
  }, (clientId) => {
    if (clientId === 'c1') throw new Error('a bug');
    taken.push(clientId);
    return true;
  }, silentLogger, 10);
  doubts.add('c1', 'e1', 1_000);
  doubts.add('c2', 'e2', 1_000);
  await new Promise((resolve) => setTimeout(resolve, 50));
  await doubts.flushed();
  doubts.add('c3', 'e3', 1_000);
  await new Promise((resolve) => setTimeout(resolve, 50));
  await doubts.flushed();
  assert.deepEqual(taken, ['c2', 'c3']);
  doubts.close();
});
