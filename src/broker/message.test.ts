import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createMessage, topicBytesOf } from './message.ts';

const message = (topic: string) => createMessage({ topic, payload: Buffer.alloc(0), qos: 0, retain: false, properties: undefined, expiresAt: 0, senderId: '' });

test('topic bytes are the UTF-8 encoding of the topic, shared between messages of the same topic', { timeout: 5_000 }, () => {
  const a = topicBytesOf(message('zähler/7/°C'));
  assert.deepEqual(a, Buffer.from('zähler/7/°C', 'utf8'));
  assert.equal(topicBytesOf(message('zähler/7/°C')), a);
  assert.deepEqual(topicBytesOf(message('other')), Buffer.from('other'));
});

test('long topic names are encoded correctly and not kept', { timeout: 5_000 }, () => {
  const long = `t/${'x'.repeat(1000)}`;
  const first = topicBytesOf(message(long));
  assert.deepEqual(first, Buffer.from(long));
  assert.notEqual(topicBytesOf(message(long)), first); // encoded again: not cached
});
