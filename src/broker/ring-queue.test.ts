import { test } from 'node:test';
import assert from 'node:assert/strict';
import v8 from 'node:v8';
import vm from 'node:vm';
import { RingQueue } from './ring-queue.ts';

// A garbage collector to call: exposed to a fresh context without restarting node with --expose-gc.
v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

test('first in, first out across wrap-around and growth', { timeout: 5_000 }, () => {
  const q = new RingQueue<number>();
  const expected: number[] = [];
  let next = 0;
  // Interleave pushes and shifts so the head wraps before, while and after the ring grows.
  for (let round = 0; round < 200; round++) {
    const pushes = round % 7 + 1;
    for (let i = 0; i < pushes; i++) {
      q.push(next);
      expected.push(next++);
    }
    const shifts = round % 5;
    for (let i = 0; i < shifts && expected.length > 0; i++) assert.equal(q.shift(), expected.shift());
    assert.equal(q.length, expected.length);
    assert.equal(q.first, expected[0], 'first is the oldest, left in place');
  }
  while (expected.length > 0) assert.equal(q.shift(), expected.shift());
  assert.equal(q.length, 0);
  assert.equal(q.shift(), undefined);
  assert.equal(q.first, undefined);
  assert.equal(q.length, 0, 'shifting an empty queue leaves it empty');
  q.push(-1);
  assert.deepEqual([q.length, q.shift()], [1, -1]);
});

test('a drained large queue gives its ring back; a small one keeps it', { timeout: 5_000 }, () => {
  const q = new RingQueue<string>();
  for (let i = 0; i < 1000; i++) q.push(`m${i}`);
  assert.equal(q.length, 1000);
  assert.equal(q.capacity, 1024);
  for (let i = 0; i < 999; i++) q.shift();
  assert.equal(q.capacity, 1024, 'still holding one message');
  assert.equal(q.shift(), 'm999');
  assert.equal(q.capacity, 8);

  for (let i = 0; i < 20; i++) q.push(`n${i}`);
  assert.equal(q.capacity, 32);
  for (let i = 0; i < 20; i++) assert.equal(q.shift(), `n${i}`);
  assert.equal(q.capacity, 32, 'kept: small enough to reuse');

  // 64 slots is the largest ring kept; 128 is given back.
  for (let i = 0; i < 64; i++) q.push(`o${i}`);
  assert.equal(q.capacity, 64);
  while (q.length > 0) q.shift();
  assert.equal(q.capacity, 64);
  for (let i = 0; i < 65; i++) q.push(`p${i}`);
  assert.equal(q.capacity, 128);
  while (q.length > 0) q.shift();
  assert.equal(q.capacity, 8);
});

test('does not keep references to shifted items', { timeout: 5_000 }, async () => {
  const q = new RingQueue<object>();
  let item: object | undefined = {};
  const ref = new WeakRef(item);
  q.push(item);
  q.push({});
  item = undefined;
  q.shift();
  // The ring still holds the second item; the shifted one must be collectable. (A WeakRef target is
  // kept until the current job ends, hence the turns between collections.)
  for (let i = 0; i < 5 && ref.deref() !== undefined; i++) {
    await new Promise((r) => setImmediate(r));
    gc();
  }
  assert.equal(ref.deref(), undefined);
  assert.equal(q.length, 1);
});

test('removeWhere takes out the items asked for and keeps the others in order, across a wrapped head', { timeout: 5_000 }, () => {
  const q = new RingQueue<number>();
  for (let i = 0; i < 6; i++) q.push(i);
  for (let i = 0; i < 5; i++) q.shift(); // head near the end of the ring: the next pushes wrap
  for (let i = 6; i < 12; i++) q.push(i);
  assert.deepEqual(q.removeWhere((n) => n % 2 === 0), [6, 8, 10]);
  assert.equal(q.length, 4);
  assert.deepEqual([q.shift(), q.shift(), q.shift(), q.shift()], [5, 7, 9, 11]);
  for (let i = 0; i < 3; i++) q.push(i);
  assert.deepEqual(q.removeWhere(() => true), [0, 1, 2]);
  assert.equal(q.length, 0);
  assert.deepEqual(q.removeWhere(() => true), []);
});

test('peek: the oldest items in order, across wrap-around, left in place', { timeout: 5_000 }, () => {
  const q = new RingQueue<number>();
  for (let i = 0; i < 6; i++) q.push(i);
  for (let i = 0; i < 4; i++) q.shift();
  for (let i = 6; i < 12; i++) q.push(i); // the head has wrapped past the end of the ring
  assert.deepEqual(q.peek(3), [4, 5, 6]);
  assert.deepEqual(q.peek(100), [4, 5, 6, 7, 8, 9, 10, 11]);
  assert.deepEqual(q.peek(0), []);
  assert.equal(q.length, 8);
  assert.equal(q.shift(), 4);
});
