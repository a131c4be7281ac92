import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { QuickJsRunner, type InvokeResult, type SandboxArg } from './index.ts';
import { errorOf, valueOf } from './test-support.ts';

// Calls invoked in one turn go to the worker together and run in one crossing into QuickJS (packed,
// worker-protocol.ts). Each keeps every guarantee of a call of its own: its own time limit, memory
// failure, console, bytes and result; one call's failure is its alone.

const runner = new QuickJsRunner({ workers: 1 });
after(() => runner.dispose(), { timeout: 30_000 });

const HANG = { timeout: 60_000 };

/** Each call's behaviour is picked by its argument. */
const SCRIPT = `
  let count = 0;
  function transformPayload(what, bytes) {
    count++;
    console.log('call ' + what);
    switch (what) {
      case 'throw': throw new RangeError('call ' + what + ' threw');
      case 'loop': for (;;) {}
      case 'hash-loop': for (;;) gatehouse.crypto.hash('sha256', 'x');
      case 'bomb': { const kept = []; for (;;) kept.push(new Float64Array(100000)); }
      case 'spin': { const end = Date.now() + 60; while (Date.now() < end); break; }
      case 'leave-a-job': Promise.resolve().then(() => { for (;;) {} }); break;
    }
    return { what, count, length: bytes === undefined ? null : bytes.length, first: bytes === undefined ? null : bytes[0] };
  }`;

const OPTIONS = { kind: 'module-function', entry: 'transformPayload', maxConcurrent: 64, maxQueued: 1000, memoryMb: 16 } as const;

/** Invokes every call in the same turn, so they are handed over as one batch. */
function all(script: { invoke(args: readonly SandboxArg[]): Promise<InvokeResult> }, calls: SandboxArg[][]): Promise<InvokeResult[]> {
  return Promise.all(calls.map((args) => script.invoke(args)));
}

test('a throw in call 3 of 10 fails call 3 alone; every call has its own console lines', HANG, async () => {
  const script = await runner.compile(SCRIPT, { ...OPTIONS, timeoutMs: 1000 });
  const names = Array.from({ length: 10 }, (_, i) => (i === 2 ? 'throw' : `ok-${i}`));
  const results = await all(script, names.map((name) => [name, new Uint8Array([1, 2, 3])]));
  results.forEach((result, i) => {
    assert.deepEqual(result.logs, [{ level: 'log', message: `call ${names[i]}` }]);
    if (i === 2) {
      assert.equal(errorOf(result).kind, 'threw');
      assert.match(errorOf(result).message, /RangeError: call throw threw/);
    } else {
      assert.deepEqual(valueOf(result), { what: names[i], count: i + 1, length: 3, first: 1 });
    }
  });
  assert.equal(script.stats().restarts, 0);
  script.dispose();
});

test('an endless loop in call 5 of 10 is stopped at its own limit; later calls get whole limits of their own', HANG, async () => {
  // 300 ms each: call 5 spends its whole limit, and calls 6–10 spin 60 ms each. A limit shared by the
  // batch, or counted from the batch's start, would stop them too.
  const script = await runner.compile(SCRIPT, { ...OPTIONS, timeoutMs: 300 });
  const names = Array.from({ length: 10 }, (_, i) => (i === 4 ? 'loop' : 'spin'));
  const results = await all(script, names.map((name) => [name]));
  assert.equal(errorOf(results[4] as InvokeResult).kind, 'timeout');
  assert.match(errorOf(results[4] as InvokeResult).message, /ran longer than 300 ms/);
  results.forEach((result, i) => {
    if (i !== 4) assert.deepEqual(valueOf(result), { what: 'spin', count: i + 1, length: null, first: null });
  });
  script.dispose();
});

test('a host-call loop in call 2 of 4 is stopped at its limit: time in host functions counts', HANG, async () => {
  const script = await runner.compile(SCRIPT, { ...OPTIONS, timeoutMs: 200 });
  const results = await all(script, [['a'], ['hash-loop'], ['b'], ['c']]);
  assert.equal(errorOf(results[1] as InvokeResult).kind, 'timeout');
  assert.deepEqual(results.filter((r) => r.ok).map((r) => valueOf(r)), [
    { what: 'a', count: 1, length: null, first: null },
    { what: 'b', count: 3, length: null, first: null },
    { what: 'c', count: 4, length: null, first: null },
  ]);
  script.dispose();
});

test('a memory bomb in call 4 of 8 is a memory failure; the calls after it run in a fresh sandbox', HANG, async () => {
  const script = await runner.compile(SCRIPT, { ...OPTIONS, timeoutMs: 5000 });
  const names = Array.from({ length: 8 }, (_, i) => (i === 3 ? 'bomb' : `ok-${i}`));
  const results = await all(script, names.map((name) => [name]));
  assert.equal(errorOf(results[3] as InvokeResult).kind, 'memory');
  // count restarts at 1 in the new sandbox: the script's state went with the full heap.
  assert.deepEqual(results.map((r) => (r.ok ? (r.value as { count: number }).count : r.error.kind)), [1, 2, 3, 'memory', 1, 2, 3, 4]);
  assert.equal(script.stats().restarts, 1);
  script.dispose();
});

test('a call that leaves a job queued has the calls after it run in a fresh sandbox, not behind that job', HANG, async () => {
  const script = await runner.compile(SCRIPT, { ...OPTIONS, timeoutMs: 300 });
  const results = await all(script, [['a'], ['leave-a-job'], ['b'], ['c']]);
  assert.deepEqual(results.map((r) => (r.ok ? (r.value as { count: number }).count : r.error.kind)), [1, 2, 1, 2]);
  script.dispose();
});

test('each call gets its own copy of exactly its bytes, in a buffer of its own; a call that writes into them changes no other', HANG, async () => {
  // bytes.buffer must hold this call's bytes only: never the batch's other payloads (other devices' data).
  const script = await runner.compile(`
    function transformPayload(what, bytes) {
      const first = bytes[0];
      if (what === 'mutate' && bytes.length > 0) bytes[0] = 255;
      return { length: bytes.length, first, buffer: bytes.buffer.byteLength, offset: bytes.byteOffset, seen: Array.from(new Uint8Array(bytes.buffer)) };
    }`, { ...OPTIONS, timeoutMs: 1000 });
  const payloads = Array.from({ length: 12 }, (_, i) => new Uint8Array(i).fill(i + 1));
  const calls = payloads.map((bytes, i) => [i % 2 === 0 ? 'mutate' : `ok-${i}`, bytes]);
  const results = await all(script, calls);
  results.forEach((result, i) => {
    // An empty payload has no first byte (undefined, left out of the JSON).
    const expected = i === 0 ? {} : { first: i + 1 };
    const seen = Array.from(new Uint8Array(i).fill(i + 1));
    if (i % 2 === 0 && i > 0) seen[0] = 255;
    assert.deepEqual(valueOf(result), { length: i, ...expected, buffer: i, offset: 0, seen }, `call ${i}`);
  });
  // The caller's buffers were copied, never written.
  payloads.forEach((bytes, i) => assert.ok(bytes.every((b) => b === i + 1)));
  script.dispose();
});

test('strings with NUL, lone surrogates and emoji, numbers, booleans, null, undefined and JSON cross exactly', HANG, async () => {
  const script = await runner.compile(`
    function transformPayload(...args) {
      return { described: args.map((a) => typeof a === 'string' ? Array.from(a, (c) => c.codePointAt(0)).join(',')
        : typeof a === 'number' ? (Object.is(a, -0) ? '-0' : String(a))
        : a === undefined ? 'undefined' : JSON.stringify(a)) };
    }`, { ...OPTIONS, result: 'object', timeoutMs: 1000 });
  const strings = ['a\u0000b', '\ud800', 'x\udc00y', '\u{1f600}', '', 'é'.repeat(5000)];
  const numbers = [-0, 0, NaN, Infinity, -Infinity, 1e21, 5e-324, 0.1 + 0.2, 2 ** 53 + 2];
  const others: SandboxArg[] = [true, false, null, { a: [1, 'b', null], 'k\u0000': '\ud83d' }, [1.5, { x: true }]];
  const results = await all(script, [strings, numbers, [...others, undefined as unknown as SandboxArg]]);
  const described = results.map((r) => (valueOf(r) as { described: string[] }).described);
  assert.deepEqual(described[0], strings.map((s) => Array.from(s, (c) => c.codePointAt(0)).join(',')));
  assert.deepEqual(described[1], numbers.map((n) => (Object.is(n, -0) ? '-0' : String(n))));
  assert.deepEqual(described[2], [...others.map((o) => JSON.stringify(o)), 'undefined']);
  script.dispose();
});

test('async calls in a batch each settle with their own value and console lines', HANG, async () => {
  const script = await runner.compile(`
    async function handler(event) {
      console.log('checking ' + event.name);
      await null;
      if (event.name === 'n-3') throw new Error('no ' + event.name);
      return { result: 'true', deviceName: event.name };
    }`, { kind: 'module-function', entry: 'handler', maxConcurrent: 16, timeoutMs: 1000 });
  const names = Array.from({ length: 16 }, (_, i) => `n-${i}`);
  const results = await all(script, names.map((name) => [{ name }]));
  results.forEach((result, i) => {
    assert.deepEqual(result.logs, [{ level: 'log', message: `checking ${names[i]}` }]);
    if (i === 3) assert.match(errorOf(result).message, /Error: no n-3/);
    else assert.deepEqual(valueOf(result), { result: 'true', deviceName: names[i] });
  });
  script.dispose();
});

test('a batch larger than one message is split; every call is answered with its own bytes', HANG, async () => {
  const script = await runner.compile(SCRIPT, { ...OPTIONS, timeoutMs: 1000 });
  // 40 × 30 KB: more than one packed message holds, and one call of 600 KB that goes alone.
  const payloads = Array.from({ length: 40 }, (_, i) => new Uint8Array(30_000).fill(i));
  payloads.splice(20, 0, new Uint8Array(600_000).fill(7));
  const results = await all(script, payloads.map((bytes, i) => [`ok-${i}`, bytes]));
  results.forEach((result, i) => {
    assert.deepEqual(valueOf(result), { what: `ok-${i}`, count: i + 1, length: payloads[i]?.length, first: payloads[i]?.[0] });
  });
  script.dispose();
});
