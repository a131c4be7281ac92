import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { QuickJsRunner } from './index.ts';
import { errorOf, valueOf } from './test-support.ts';

// transformPayload(topic, bytes) as issue 6 runs it: raw device bytes in, a JSON object out.

const runner = new QuickJsRunner();
after(() => runner.dispose(), { timeout: 30_000 });

const TRANSFORM = { kind: 'module-function', entry: 'transformPayload' } as const;

test('transformPayload turns sensor bytes into a property post', { timeout: 30_000 }, async () => {
  const script = await runner.compile(`
    function transformPayload(topic, bytes) {
      const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      return {
        method: 'thing.event.property.post',
        params: {
          type: view.getUint8(0),
          temperature: view.getInt16(1) / 10,
          humidity: view.getUint8(3),
          ok: view.getUint8(4) === 1,
          device: topic.split('/')[1],
        },
      };
    }`, TRANSFORM);
  const payload = Buffer.from([
    0x01, //       type: 1
    0x00, 0xd7, // temperature: 215 → 21.5 °C (int16 big-endian, tenths)
    0x37, //       humidity: 55 %
    0x01, //       ok: 1
  ]);
  assert.deepEqual(valueOf(await script.invoke(['dev/sensor-01/up', payload])), {
    method: 'thing.event.property.post',
    params: { type: 1, temperature: 21.5, humidity: 55, ok: true, device: 'sensor-01' },
  });
});

test('the script gets a copy of exactly the payload bytes, never the Buffer pool or the original', { timeout: 20_000 }, async () => {
  const script = await runner.compile(`
    function transformPayload(topic, bytes) {
      const seen = { length: bytes.length, offset: bytes.byteOffset, bufferLength: bytes.buffer.byteLength };
      bytes[0] = 0;
      return seen;
    }`, TRANSFORM);
  const pooled = Buffer.from('hi'); // a slice of Node's shared 8 KiB pool
  assert.ok(pooled.buffer.byteLength > pooled.length);
  assert.deepEqual(valueOf(await script.invoke(['t', pooled])), { length: 2, offset: 0, bufferLength: 2 });
  assert.equal(pooled.toString(), 'hi');
});

test('results that are not plain JSON objects are bad-result, with a reason', { timeout: 5_000 }, async () => {
  const script = await runner.compile(`
    function transformPayload(topic) {
      const cyclic = {}; cyclic.self = cyclic;
      switch (topic) {
        case 'undefined': return undefined;
        case 'function': return () => 1;
        case 'number': return 42;
        case 'string': return 'hello';
        case 'null': return null;
        case 'array': return [1, 2];
        case 'map': return new Map();
        case 'date': return new Date(0);
        case 'nested-function': return { decode: function decode() {} };
        case 'nan': return { t: NaN };
        case 'bigint': return { n: 1n };
        case 'bytes': return { raw: new Uint8Array(2) };
        case 'cyclic': return cyclic;
      }
    }`, TRANSFORM);
  const expected: Record<string, RegExp> = {
    undefined: /got undefined/,
    function: /got a function/,
    number: /got a number/,
    string: /got a string/,
    null: /got null/,
    array: /got an array/,
    map: /got a Map/,
    date: /got a Date/,
    'nested-function': /at key "decode"\) a function/,
    nan: /NaN, which JSON cannot represent/,
    bigint: /a bigint/,
    bytes: /a Uint8Array, not a plain object/,
    cyclic: /circular/,
  };
  for (const [topic, pattern] of Object.entries(expected)) {
    const error = errorOf(await script.invoke([topic, new Uint8Array(0)]));
    assert.equal(error.kind, 'bad-result', topic);
    assert.match(error.message, pattern, topic);
  }
  assert.equal(script.stats().failures['bad-result'], Object.keys(expected).length);
});

test('undefined properties are dropped as JSON.stringify drops them; dates become strings', { timeout: 5_000 }, async () => {
  const script = await runner.compile(
    'function transformPayload() { return { a: 1, b: undefined, at: new Date(0), list: [undefined] }; }', TRANSFORM);
  assert.deepEqual(valueOf(await script.invoke(['t', new Uint8Array(0)])),
    { a: 1, at: '1970-01-01T00:00:00.000Z', list: [null] });
});

test("result: 'json' accepts any JSON value but still not undefined", { timeout: 5_000 }, async () => {
  const script = await runner.compile('function transformPayload(t, b) { return b.length ? b[0] : undefined; }',
    { ...TRANSFORM, result: 'json' });
  assert.equal(valueOf(await script.invoke(['t', new Uint8Array([7])])), 7);
  assert.equal(errorOf(await script.invoke(['t', new Uint8Array(0)])).kind, 'bad-result');
});

test('a result larger than maxResultChars is bad-result', { timeout: 5_000 }, async () => {
  const script = await runner.compile('function transformPayload() { return { s: "x".repeat(2000) }; }',
    { ...TRANSFORM, maxResultChars: 1000 });
  assert.match(errorOf(await script.invoke(['t', new Uint8Array(0)])).message, /too large \(2008 characters, limit 1000\)/);
});
