import assert from 'node:assert/strict';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { QuickJsRunner, type CompiledScript, type InvokeResult, type JsonValue } from './index.ts';

// gatehouse.crypto and gatehouse.encoding, checked against node:crypto, Buffer and the WHATWG
// TextEncoder/TextDecoder of the host.

const runner = new QuickJsRunner();
after(() => runner.dispose(), { timeout: 30_000 });

/** A script that runs `op(input)` for an operation chosen by name, byte results as number arrays. */
let lab: CompiledScript;
before(async () => {
  lab = await runner.compile(`
    const { crypto, encoding } = gatehouse;
    const out = (v) => v instanceof Uint8Array ? { bytes: Array.from(v) } : v;
    const bytes = (v) => Array.isArray(v) ? Uint8Array.from(v) : v;
    const ops = {
      hash: ({ alg, data, enc }) => crypto.hash(alg, bytes(data), enc),
      hmac: ({ alg, key, data, enc }) => crypto.hmac(alg, bytes(key), bytes(data), enc),
      base64Encode: ({ data }) => encoding.base64Encode(bytes(data)),
      base64UrlEncode: ({ data }) => encoding.base64UrlEncode(bytes(data)),
      base64Decode: ({ text }) => encoding.base64Decode(text),
      hexEncode: ({ data }) => encoding.hexEncode(bytes(data)),
      hexDecode: ({ text }) => encoding.hexDecode(text),
      utf8Encode: ({ text }) => encoding.utf8Encode(text),
      utf8Decode: ({ data }) => encoding.utf8Decode(bytes(data)),
      textEncoder: ({ text }) => new TextEncoder().encode(text),
      textDecoder: ({ data, fatal, ignoreBOM }) => new TextDecoder('utf-8', { fatal, ignoreBOM }).decode(bytes(data)),
      timingSafeEqual: ({ a, b }) => crypto.timingSafeEqual(a, b),
    };
    function handler(op, inputs) {
      return { results: inputs.map((input) => {
        try { return { ok: out(ops[op](input)) }; } catch (e) { return { error: e.name + ': ' + e.message }; }
      }) };
    }`, { kind: 'module-function', entry: 'handler', timeoutMs: 5000, memoryMb: 64 });
}, { timeout: 60_000 });

type Outcome = { ok: JsonValue } | { error: string };

async function run(op: string, inputs: Record<string, JsonValue>[]): Promise<Outcome[]> {
  const result: InvokeResult = await lab.invoke([op, inputs]);
  assert.ok(result.ok, JSON.stringify(result));
  return (result.value as { results: Outcome[] }).results;
}

function okValues(outcomes: Outcome[]): JsonValue[] {
  return outcomes.map((outcome) => {
    assert.ok('ok' in outcome, JSON.stringify(outcome));
    return outcome.ok;
  });
}

const bytesOf = (buffer: Uint8Array): { bytes: number[] } => ({ bytes: [...buffer] });

test('hash and hmac match node:crypto for every algorithm and encoding', { timeout: 15_000 }, async () => {
  const data = [...Buffer.from('payload ✓ 🔒', 'utf8')];
  const key = [...randomBytes(32)];
  for (const alg of ['md5', 'sha1', 'sha256', 'sha384', 'sha512']) {
    const hash = createHash(alg).update(Buffer.from(data)).digest();
    const hmac = createHmac(alg, Buffer.from(key)).update(Buffer.from(data)).digest();
    const encodings = [undefined, 'hex', 'base64', 'base64url', 'bytes'] as const;
    const expect = (digest: Buffer) => encodings.map((enc) => enc === 'bytes' ? bytesOf(digest) : digest.toString(enc ?? 'hex'));
    assert.deepEqual(okValues(await run('hash', encodings.map((enc) => ({ alg, data, ...(enc ? { enc } : {}) })))), expect(hash), alg);
    assert.deepEqual(okValues(await run('hmac', encodings.map((enc) => ({ alg, key, data, ...(enc ? { enc } : {}) })))), expect(hmac), alg);
  }
  // Strings are hashed as UTF-8, and common spellings of algorithm names are accepted.
  assert.deepEqual(okValues(await run('hmac', [
    { alg: 'SHA-256', key: 'k', data: 'héllo' },
    { alg: 'HmacSHA256', key: 'k', data: 'héllo' },
  ])), Array(2).fill(createHmac('sha256', 'k').update('héllo', 'utf8').digest('hex')));
});

test('bad algorithms, encodings and inputs throw TypeErrors the script can catch', { timeout: 5_000 }, async () => {
  const outcomes = await run('hash', [
    { alg: 'sha3-256', data: 'x' },
    { alg: 'sha256', data: 'x', enc: 'latin1' },
    { alg: 'sha256', data: { not: 'bytes' } },
  ]);
  assert.deepEqual(outcomes.map((o) => 'error' in o && o.error.split(':')[0]), ['TypeError', 'TypeError', 'TypeError']);
  assert.match('error' in outcomes[0]! ? outcomes[0].error : '', /unsupported algorithm "sha3-256"/);
});

test('timingSafeEqual compares strings and bytes; different lengths are unequal', { timeout: 5_000 }, async () => {
  assert.deepEqual(okValues(await run('timingSafeEqual', [
    { a: 'abc', b: 'abc' }, { a: 'abc', b: 'abd' }, { a: 'abc', b: 'abcd' }, { a: [1, 2], b: [1, 2] },
  ])), [true, false, false, true]);
});

test('base64, base64url and hex match Buffer on random bytes, both ways', { timeout: 5_000 }, async () => {
  const samples = Array.from({ length: 60 }, (_, i) => randomBytes(i % 20 === 0 ? i * 7 : i));
  const data = samples.map((sample) => ({ data: [...sample] }));
  assert.deepEqual(okValues(await run('base64Encode', data)), samples.map((s) => s.toString('base64')));
  assert.deepEqual(okValues(await run('base64UrlEncode', data)), samples.map((s) => s.toString('base64url')));
  assert.deepEqual(okValues(await run('hexEncode', data)), samples.map((s) => s.toString('hex')));
  assert.deepEqual(okValues(await run('base64Decode', samples.map((s) => ({ text: s.toString('base64') })))), samples.map(bytesOf));
  assert.deepEqual(okValues(await run('base64Decode', samples.map((s) => ({ text: s.toString('base64url') })))), samples.map(bytesOf));
  assert.deepEqual(okValues(await run('hexDecode', samples.map((s) => ({ text: s.toString('hex').toUpperCase() })))), samples.map(bytesOf));
});

test('malformed base64 and hex are errors, not silently truncated', { timeout: 5_000 }, async () => {
  const outcomes = [
    ...await run('base64Decode', [{ text: 'ab$d' }, { text: 'abcde' }, { text: 'ab=c' }]),
    ...await run('hexDecode', [{ text: 'abc' }, { text: 'zz' }]),
  ];
  for (const outcome of outcomes) assert.ok('error' in outcome && outcome.error.startsWith('TypeError'), JSON.stringify(outcome));
  assert.deepEqual(okValues(await run('base64Decode', [{ text: 'aGk\n' }])), [bytesOf(Buffer.from('hi'))]);
});

test('UTF-8 encode and decode match the WHATWG encoder and decoder, including invalid input', { timeout: 5_000 }, async () => {
  const strings = ['', 'plain', 'héllo wörld', '温度 21.5 °C', '🔒 emoji 👍🏽', 'lone \ud800 high', 'lone \udc00 low', '\ud83d', 'end \udbff'];
  const encoder = new TextEncoder();
  const expected = strings.map((text) => bytesOf(encoder.encode(text)));
  assert.deepEqual(okValues(await run('utf8Encode', strings.map((text) => ({ text })))), expected);
  assert.deepEqual(okValues(await run('textEncoder', strings.map((text) => ({ text })))), expected);

  const decoder = new TextDecoder();
  const tricky = [
    [0xef, 0xbb, 0xbf, 0x41], [0xc0, 0x80], [0xe0, 0x80, 0x80], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80],
    [0xf0, 0x9f, 0x94], [0xe2, 0x82], [0x80, 0x41, 0xff, 0xfe], [0xf0, 0x9f, 0x94, 0x92, 0xc3],
  ];
  const random = Array.from({ length: 200 }, (_, i) => [...randomBytes(1 + (i % 40))]);
  for (const data of [...tricky, ...random]) {
    const [text] = okValues(await run('utf8Decode', [{ data }]));
    assert.equal(text, Buffer.from(data).toString('utf8'), JSON.stringify(data));
    const [decoded] = okValues(await run('textDecoder', [{ data }]));
    assert.equal(decoded, decoder.decode(Uint8Array.from(data)), JSON.stringify(data));
  }
});

test('TextDecoder strips a BOM unless told not to, and is strict when fatal', { timeout: 5_000 }, async () => {
  const bom = [0xef, 0xbb, 0xbf, 0x68, 0x69];
  assert.deepEqual(okValues(await run('textDecoder', [{ data: bom }, { data: bom, ignoreBOM: true }])), ['hi', '\ufeffhi']);
  const [strict] = await run('textDecoder', [{ data: [0x68, 0xff], fatal: true }]);
  assert.ok(strict && 'error' in strict && strict.error.startsWith('TypeError'));
});
