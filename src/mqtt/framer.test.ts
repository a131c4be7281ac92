import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Framer } from './framer.ts';

function collect(framer: Framer, chunks: Buffer[]): { frames: string[]; error: string | null } {
  const frames: string[] = [];
  let error: string | null = null;
  for (const c of chunks) {
    error = framer.push(c, { onFrame: (f) => { frames.push(f.toString('hex')); return true; } }) ?? error;
  }
  return { frames, error };
}

test('splits packets across and within chunks', () => {
  // PINGREQ = c0 00; PUBLISH QoS 0 "a" payload "x" = 30 04 00 01 61 78
  const stream = Buffer.from('c000300400016178c000', 'hex');
  const { frames, error } = collect(new Framer(1024), [stream.subarray(0, 3), stream.subarray(3, 7), stream.subarray(7)]);
  assert.equal(error, null);
  assert.deepEqual(frames, ['c000', '300400016178', 'c000']);
});

test('[MQTT-1.5.5-1] a Remaining Length longer than four bytes is malformed', () => {
  const { error } = collect(new Framer(1 << 28), [Buffer.from('30ffffffff7f', 'hex')]);
  assert.equal(error, 'malformed-length');
});

test('a packet above the maximum size is refused from its header alone', () => {
  // Remaining Length 200 (c8 01) declared, nothing of the body sent yet.
  const { error, frames } = collect(new Framer(100), [Buffer.from('30c801', 'hex')]);
  assert.equal(error, 'too-large');
  assert.deepEqual(frames, []);
});

test('stops when the consumer asks and resumes with the rest', () => {
  const framer = new Framer(1024);
  const seen: string[] = [];
  framer.push(Buffer.from('c000d000', 'hex'), { onFrame: (f) => { seen.push(f.toString('hex')); return false; } });
  assert.deepEqual(seen, ['c000']);
  framer.push(null, { onFrame: (f) => { seen.push(f.toString('hex')); return true; } });
  assert.deepEqual(seen, ['c000', 'd000']);
});
