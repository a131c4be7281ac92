import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { IsolatedVmRunner, type CompiledScript } from './index.ts';
import { errorOf, valueOf } from './test-support.ts';

// What an operator's script must not be able to do to the gateway: run forever, eat the host's
// memory, reach the host, or flood the logs.

const runner = new IsolatedVmRunner();
after(() => runner.dispose());

const HANDLER = { kind: 'module-function', entry: 'handler' } as const;

// One script whose behaviour each call picks, so "the next call works" is tested on the very
// isolate (or its replacement) that just failed.
const MISCHIEF = `
  const kept = [];
  async function handler(what) {
    switch (what) {
      case 'loop': for (;;) {}
      case 'await-forever': await new Promise(() => {}); break;
      case 'loop-after-await': await null; for (;;) {}
      case 'array-bomb': for (;;) kept.push(new Array(100000).fill(1));
      case 'typed-bomb': { const local = []; for (;;) local.push(new Float64Array(100000)); }
      case 'string-bomb': { const local = []; for (let i = 0; ; i++) local.push('x'.repeat(1000000) + i); }
      case 'throw': throw new RangeError('value out of range');
      case 'throw-string': throw 'plain string';
      case 'throw-object': throw { code: 42 };
    }
    return { fine: true, kept: kept.length };
  }`;

async function mischief(memoryMb = 16, timeoutMs = 200): Promise<CompiledScript> {
  return runner.compile(MISCHIEF, { ...HANDLER, memoryMb, timeoutMs, filename: 'mischief.js' });
}

test('an infinite loop is stopped within about twice its time limit, and the script stays usable', async () => {
  const script = await mischief();
  const started = performance.now();
  const result = await script.invoke(['loop']);
  const elapsed = performance.now() - started;
  assert.equal(errorOf(result).kind, 'timeout');
  assert.match(errorOf(result).message, /ran longer than 200 ms/);
  assert.ok(elapsed < 400, `stopped after ${elapsed} ms`);
  assert.deepEqual(valueOf(await script.invoke(['ok'])), { fine: true, kept: 0 });
  assert.equal(script.stats().restarts, 0);
  assert.equal(script.stats().failures.timeout, 1);
});

test('a per-call time limit overrides the compiled one', async () => {
  const script = await mischief(16, 5000);
  const started = performance.now();
  assert.equal(errorOf(await script.invoke(['loop'], { timeoutMs: 50 })).kind, 'timeout');
  assert.ok(performance.now() - started < 1000);
});

test('a loop after an await is stopped, and an await that can never settle is a timeout', async () => {
  const script = await mischief();
  assert.equal(errorOf(await script.invoke(['loop-after-await'])).kind, 'timeout');
  const started = performance.now();
  const never = errorOf(await script.invoke(['await-forever']));
  assert.equal(never.kind, 'timeout');
  assert.match(never.message, /never settled/);
  assert.ok(performance.now() - started < 600);
  assert.deepEqual(valueOf(await script.invoke(['ok'])), { fine: true, kept: 0 });
});

test('memory bombs are reported as memory, and the next call runs in a fresh isolate', async () => {
  const script = await mischief(16, 3000);
  for (const bomb of ['array-bomb', 'typed-bomb', 'string-bomb']) {
    const error = errorOf(await script.invoke([bomb]));
    assert.equal(error.kind, 'memory', bomb);
    assert.match(error.message, /memory limit of 16 MB/);
    // The array bomb kept its garbage in a global: only a new isolate gets rid of it.
    assert.deepEqual(valueOf(await script.invoke(['ok'])), { fine: true, kept: 0 }, bomb);
  }
  const stats = script.stats();
  assert.equal(stats.failures.memory, 3);
  assert.equal(stats.restarts, 3);
  assert.equal(stats.succeeded, 3);
});

test('calls waiting in an isolate that runs out of memory are answered, and later calls work', async () => {
  const script = await mischief(16, 3000);
  const results = await Promise.all([script.invoke(['ok']), script.invoke(['array-bomb']), script.invoke(['ok']), script.invoke(['ok'])]);
  assert.equal(errorOf(results[1]).kind, 'memory');
  for (const result of [results[2], results[3]]) {
    assert.ok(result && (result.ok || result.error.kind === 'memory'), JSON.stringify(result));
  }
  assert.deepEqual(valueOf(await script.invoke(['ok'])), { fine: true, kept: 0 });
});

test('an argument too big for the isolate is a memory failure, not a crash', async () => {
  const script = await runner.compile('function transformPayload(topic, bytes) { return { n: bytes.length }; }',
    { kind: 'module-function', entry: 'transformPayload', memoryMb: 16 });
  assert.equal(errorOf(await script.invoke(['t', Buffer.alloc(64 * 1024 * 1024)])).kind, 'memory');
  assert.deepEqual(valueOf(await script.invoke(['t', Buffer.alloc(3)])), { n: 3 });
});

test('the host process stays healthy: RSS bounded across repeated memory bombs', async () => {
  const script = await mischief(16, 3000);
  const before = process.memoryUsage().rss;
  for (let i = 0; i < 6; i++) {
    assert.equal(errorOf(await script.invoke([i % 2 === 0 ? 'array-bomb' : 'typed-bomb'])).kind, 'memory');
  }
  assert.deepEqual(valueOf(await script.invoke(['ok'])), { fine: true, kept: 0 });
  const grownMb = (process.memoryUsage().rss - before) / 1024 / 1024;
  assert.ok(grownMb < 150, `RSS grew by ${grownMb.toFixed(0)} MB`);
});

test('a throw reports the message and the operator line; non-Error throws too', async () => {
  const script = await mischief();
  const error = errorOf(await script.invoke(['throw']));
  assert.equal(error.kind, 'threw');
  assert.equal(error.message, 'RangeError: value out of range (line 11)');
  assert.equal(error.line, 11);
  assert.equal(errorOf(await script.invoke(['throw-string'])).message, 'plain string');
  assert.equal(errorOf(await script.invoke(['throw-object'])).message, '{"code":42}');
});

test('console output is captured per call and bounded to 50 lines of 500 characters', async () => {
  const script = await runner.compile(`
    function handler(n) {
      console.log('start', n, { a: 1 }, [1, 2], null, undefined, 1n);
      console.warn('careful');
      console.error(new TypeError('bad'));
      for (let i = 0; i < n; i++) console.log('line ' + i);
      console.info('x'.repeat(2000));
      return {};
    }`, HANDLER);
  const small = await script.invoke([2]);
  assert.ok(small.ok);
  assert.equal(small.logsTruncated, false);
  assert.deepEqual(small.logs.slice(0, 2), [
    { level: 'log', message: 'start 2 {"a":1} [1,2] null undefined 1n' },
    { level: 'warn', message: 'careful' },
  ]);
  assert.equal(small.logs[2]?.level, 'error');
  assert.match(small.logs[2]?.message ?? '', /^TypeError: bad\n {4}at handler \(handler\.js:5:21\)/);
  assert.equal(small.logs[5]?.message.length, 500);
  assert.ok(small.logs[5]?.message.endsWith('\u2026'));

  const flood = await script.invoke([10_000]);
  assert.ok(flood.ok);
  assert.equal(flood.logs.length, 50);
  assert.equal(flood.logsTruncated, true);
  assert.equal(flood.logs[49]?.message, 'line 46');
});

test('the sandbox has no require, process, fetch, timers or WebAssembly', async () => {
  const script = await runner.compile(`
    function handler() {
      const names = ['require', 'process', 'fetch', 'setTimeout', 'setInterval', 'queueMicrotask', 'WebAssembly',
        'SharedArrayBuffer', 'Atomics', 'Buffer', 'XMLHttpRequest', 'WebSocket', 'importScripts', 'global'];
      const types = {};
      for (const name of names) types[name] = typeof globalThis[name];
      let dynamicImport;
      try { eval('import("fs")').catch(() => {}); dynamicImport = 'no error'; } catch (e) { dynamicImport = e.name; }
      return { types, dynamicImport, host: typeof gatehouse, console: typeof console.log };
    }`, HANDLER);
  const value = valueOf(await script.invoke([])) as { types: Record<string, string>; host: string; console: string };
  for (const [name, type] of Object.entries(value.types)) assert.equal(type, 'undefined', name);
  assert.equal(value.host, 'object');
  assert.equal(value.console, 'function');
});

test('the host library is frozen', async () => {
  const script = await runner.compile(`
    'use strict';
    function handler() {
      const attempts = {};
      const tries = {
        replaceHmac: () => { gatehouse.crypto.hmac = () => 'forged'; },
        replaceLibrary: () => { gatehouse = {}; },
        addEncoding: () => { gatehouse.encoding.rot13 = () => ''; },
      };
      for (const [name, attempt] of Object.entries(tries)) {
        try { attempt(); attempts[name] = 'allowed'; } catch (e) { attempts[name] = e.name; }
      }
      return { attempts, frozen: Object.isFrozen(gatehouse) && Object.isFrozen(gatehouse.crypto) && Object.isFrozen(console) };
    }`, HANDLER);
  assert.deepEqual(valueOf(await script.invoke([])), {
    attempts: { replaceHmac: 'TypeError', replaceLibrary: 'TypeError', addEncoding: 'TypeError' },
    frozen: true,
  });
});

test('a disposed script answers disposed, and so do calls that were in flight', async () => {
  const script = await mischief(16, 1000);
  const inFlight = script.invoke(['loop']);
  await new Promise((resolve) => setTimeout(resolve, 20));
  script.dispose();
  assert.equal(errorOf(await inFlight).kind, 'disposed');
  assert.equal(errorOf(await script.invoke(['ok'])).kind, 'disposed');
  assert.equal(script.stats().failures.disposed, 2);
});
