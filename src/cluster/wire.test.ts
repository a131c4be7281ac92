import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createMessage } from '../broker/index.ts';
import { decodeFrames, decodeMessage, encodeBatch, encodeMessage } from './wire.ts';

test('a message crosses nodes unchanged, whatever its topic holds (., spaces, *, >, empty levels, UTF-8)', { timeout: 5_000 }, () => {
  for (const topic of ['a/b', 'a.b c/*/>//end', '/', '$SYS/x', 'ünï/кириллица/🙂', 'x'.repeat(4000)]) {
    const m = createMessage({ topic, payload: Buffer.from([0, 1, 2, 255]), qos: 2, retain: true, properties: undefined, expiresAt: 1_700_000_000_123, senderId: 'dev.1 *' });
    assert.deepEqual(decodeMessage(encodeMessage(m)), m, topic);
  }
  const withProps = createMessage({
    topic: 't', payload: Buffer.alloc(0), qos: 0, retain: false, expiresAt: 0, senderId: '',
    properties: { payloadFormatIndicator: true, contentType: 'application/json', responseTopic: 'r/1', correlationData: Buffer.from([9, 8, 0]), userProperties: { a: '1', b: ['2', '3'] } },
  });
  assert.deepEqual(decodeMessage(encodeMessage(withProps)), withProps);
  // The payload is a copy: the NATS client may reuse the frame's memory.
  const frame = encodeMessage(createMessage({ topic: 't', payload: Buffer.from('abc'), qos: 1, retain: false, properties: undefined, expiresAt: 0, senderId: 's' }));
  const decoded = decodeMessage(frame);
  frame.fill(0);
  assert.equal(decoded.payload.toString(), 'abc');
});

test('a frame that is not a message throws (the link counts and drops it)', { timeout: 5_000 }, () => {
  const good = encodeMessage(createMessage({ topic: 'a/b', payload: Buffer.from('x'), qos: 1, retain: false, properties: undefined, expiresAt: 0, senderId: 'c' }));
  assert.throws(() => decodeMessage(Buffer.alloc(0)));
  assert.throws(() => decodeMessage(Buffer.concat([Buffer.from([2]), good.subarray(1)])), /version 1/);
  assert.throws(() => decodeMessage(good.subarray(0, 16)), /cut short/);
  const qos3 = Buffer.from(good);
  qos3[1] = 3;
  assert.throws(() => decodeMessage(qos3), /QoS 3/);
});

test('a batch frame carries several messages in order; a lone frame decodes as one; a cut batch throws', { timeout: 5_000 }, () => {
  const messages = ['a/1', 'b.c *', '', 'd/#'].map((topic, i) =>
    createMessage({ topic, payload: Buffer.from(`p${i}`), qos: 0, retain: i === 1, properties: undefined, expiresAt: 0, senderId: `s${i}` }));
  const frames = messages.map(encodeMessage);
  const batch = encodeBatch(frames, frames.reduce((n, f) => n + f.length, 0));
  assert.deepEqual(decodeFrames(batch), messages);
  assert.deepEqual(decodeFrames(frames[2]!), [messages[2]]);
  assert.throws(() => decodeFrames(batch.subarray(0, batch.length - 1)), /cut short/);
  assert.throws(() => decodeFrames(Buffer.from([2])), /empty batch/);
  assert.throws(() => decodeFrames(Buffer.from([3, 0, 0])), /version 1/);
});
