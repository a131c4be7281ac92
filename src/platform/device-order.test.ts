import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DeviceOrder } from './device-order.ts';

test('a device\'s items are handed on in the order they came, each once ready; other devices do not wait', { timeout: 5_000 }, () => {
  const order = new DeviceOrder(100);
  const out: string[] = [];
  const online = order.pending('a');
  order.ready('a', () => out.push('a:message-1'));
  const parsed = order.pending('a');
  order.ready('a', () => out.push('a:message-3'));
  order.ready('b', () => out.push('b:message'));
  assert.deepEqual(out, ['b:message'], 'b has nothing pending; a waits for its online');
  assert.equal(order.holds('a'), true);
  assert.equal(order.holds('b'), false);
  parsed(() => out.push('a:message-2'));
  assert.deepEqual(out, ['b:message'], 'ready, but behind the online');
  online(() => out.push('a:online'));
  assert.deepEqual(out, ['b:message', 'a:online', 'a:message-1', 'a:message-2', 'a:message-3']);
  assert.equal(order.holds('a'), false, 'nothing kept once handed on');
  order.ready('a', () => out.push('a:message-4'));
  assert.equal(out.at(-1), 'a:message-4', 'handed on at once again');
});

test('a device holds at most maxHeld items waiting; ready ones past that overtake', { timeout: 5_000 }, () => {
  const order = new DeviceOrder(2);
  const out: number[] = [];
  const first = order.pending('a');
  for (let i = 1; i <= 4; i++) order.ready('a', () => out.push(i));
  assert.deepEqual(out, [2, 3, 4], 'the pending one and 1 wait');
  first(() => out.push(0));
  assert.deepEqual(out, [2, 3, 4, 0, 1]);
  assert.equal(order.holds('a'), false);
});
