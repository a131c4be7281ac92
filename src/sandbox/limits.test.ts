import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import { after, test } from 'node:test';
import { QuickJsRunner, ScriptCompileError, type CompiledScript, type InvokeResult } from './index.ts';
import { errorOf, valueOf } from './test-support.ts';

// What an operator's script must not be able to do to the gateway: run forever, eat the host's
// memory, reach the host, or flood the logs.

const runner = new QuickJsRunner();
after(() => runner.dispose(), { timeout: 30_000 });

const HANDLER = { kind: 'module-function', entry: 'handler' } as const;

// One script whose behaviour each call picks, so "the next call works" is tested on the very
// sandbox (or its replacement) that just failed.
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

// A broken limit must fail fast, not hang the suite; durations are the bench's business. The
// message and `restarts: 0` show the interrupt stopped the loop, not the worker watchdog.
const HANG = { timeout: 60_000 };

test('an infinite loop is stopped by its time limit, and the script stays usable', HANG, async () => {
  const script = await mischief();
  const result = await script.invoke(['loop']);
  assert.equal(errorOf(result).kind, 'timeout');
  assert.match(errorOf(result).message, /ran longer than 200 ms/);
  assert.deepEqual(valueOf(await script.invoke(['ok'])), { fine: true, kept: 0 });
  assert.equal(script.stats().restarts, 0);
  assert.equal(script.stats().failures.timeout, 1);
});

test('a per-call time limit overrides the compiled one', HANG, async () => {
  const script = await mischief(16, 5000);
  const error = errorOf(await script.invoke(['loop'], { timeoutMs: 50 }));
  assert.equal(error.kind, 'timeout');
  assert.match(error.message, /ran longer than 50 ms/);
});

test('time spent in host functions counts toward the limit', HANG, async () => {
  // Each HMAC over 4 MB takes milliseconds on the host, so QuickJS's own interrupt checks (every
  // few thousand operations) would come seconds late; catching the refusal does not help either.
  const script = await runner.compile(`
    function handler(what) {
      const big = 'x'.repeat(4000000);
      if (what === 'small') for (;;) gatehouse.crypto.hash('sha256', 'x');
      if (what === 'big') for (;;) gatehouse.crypto.hmac('sha512', big, big);
      if (what === 'big-caught') for (;;) { try { gatehouse.crypto.hmac('sha512', big, big); } catch (e) { /* again */ } }
      return {};
    }`, { ...HANDLER, memoryMb: 64, timeoutMs: 200 });
  for (const what of ['small', 'big', 'big-caught']) {
    const error = errorOf(await script.invoke([what]));
    assert.equal(error.kind, 'timeout', what);
    assert.match(error.message, /ran longer than 200 ms/, what);
  }
  assert.equal(script.stats().restarts, 0);
});

test('hostile scripts are stopped, report what happened, and leave the script usable', HANG, async () => {
  const script = await runner.compile(`
    function handler(what) {
      switch (what) {
        case 'regex': return { r: /(a+)+$/.test('a'.repeat(40) + 'b') };
        case 'finally': try { for (;;) {} } finally { for (;;) {} }
        case 'catch': for (;;) { try { for (;;) {} } catch (e) { /* keep going */ } }
        case 'sort': return { s: [3, 2, 1].sort(() => { for (;;) {} }) };
        case 'getter': return { get a() { for (;;) {} } };
        case 'toJSON': return { toJSON() { for (;;) {} } };
        case 'proxy': return new Proxy({}, { ownKeys() { for (;;) {} } });
        case 'eval': return eval('for (;;) {}');
        case 'function-ctor': return Function('for (;;) {}')();
        case 'recursion': { const f = () => f() + 1; return f(); }
        case 'string-doubling': { let s = 'x'; for (;;) s += s; }
        // Microtasks that queue each other forever, in constant memory: only the time limit stops it.
        case 'promise-flood': { const go = () => { Promise.resolve().then(go); }; go(); return new Promise(() => {}); }
        // Each promise resolved with the next: a chain that grows until the heap is full.
        case 'promise-chain': { const go = () => Promise.resolve().then(go); go(); return new Promise(() => {}); }
        case 'host-escape': return {
          process: (function () {}).constructor('return typeof process')(),
          require: typeof require, globals: Object.getOwnPropertyNames(globalThis).filter((n) => /^(std|os|process|Deno|Bun)$/.test(n)),
        };
      }
      return { fine: true };
    }`, { ...HANDLER, timeoutMs: 200, memoryMb: 16, filename: 'hostile.js' });
  const expected: Record<string, string> = {
    regex: 'timeout', finally: 'timeout', catch: 'timeout', sort: 'timeout', getter: 'timeout', toJSON: 'timeout',
    proxy: 'timeout', eval: 'timeout', 'function-ctor': 'timeout', recursion: 'threw', 'string-doubling': 'threw',
    'promise-flood': 'timeout', 'promise-chain': 'memory',
  };
  for (const [what, kind] of Object.entries(expected)) {
    // What must fail on its own (a stack overflow takes ~50–200 ms to unwind, a promise chain
    // fills 16 MB in ~250 ms) gets room to do so, so the time limit cannot win the race.
    const error = errorOf(await script.invoke([what], kind === 'timeout' ? {} : { timeoutMs: 10_000 }));
    assert.equal(error.kind, kind, `${what}: ${error.message}`);
    if (kind === 'timeout') assert.match(error.message, /ran longer than 200 ms/, what);
    assert.deepEqual(valueOf(await script.invoke(['ok'])), { fine: true }, what);
  }
  assert.match(errorOf(await script.invoke(['recursion'], { timeoutMs: 10_000 })).message, /stack overflow/);
  assert.deepEqual(valueOf(await script.invoke(['host-escape'])), { process: 'undefined', require: 'undefined', globals: [] });
});

test('a call stuck in native code past its limit gets its worker replaced; other scripts there recover', HANG, async () => {
  // Array.prototype.join over a billion holes runs in C without asking the interrupt handler: the
  // watchdog answers the call and moves every script of that worker to a new one.
  const single = new QuickJsRunner({ workers: 1 });
  try {
    const stuck = await single.compile('function handler() { return { n: new Array(1e9).join("x").length }; }',
      { ...HANDLER, timeoutMs: 100 });
    // Every call of it is handed to the worker at once (none waits in the script's own queue).
    const counter = await single.compile('let n = 0; function handler() { return { n: ++n }; }', { ...HANDLER, maxConcurrent: 1024 });
    assert.deepEqual(valueOf(await counter.invoke([])), { n: 1 });
    // A call of another script sent behind the stuck one, and a compile sent behind both: the worker
    // never gets to them. The compile must not hide the stuck worker from the watchdog (it did: any
    // compile outstanding made the watchdog wait, so the worker was never replaced).
    const stuckCall = stuck.invoke([]);
    const behind = counter.invoke([]);
    await new Promise((resolve) => setImmediate(resolve)); // both handed to the worker
    const compile = single.compile('function handler() { return {}; }', HANDLER).then(() => 'compiled', (e: Error) => e.message);
    // Work that keeps coming must not hide the stuck worker either: sending to a busy worker leaves
    // the watchdog's clock alone (only work sent to an idle one starts it again).
    const pings: Promise<InvokeResult>[] = [];
    let answered = false;
    void stuckCall.then(() => { answered = true; });
    while (!answered) {
      pings.push(counter.invoke([], { timeoutMs: 50 }));
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    const error = errorOf(await stuckCall);
    assert.equal(error.kind, 'timeout');
    assert.equal(error.message, 'a sandbox call overstayed its time limit in the worker; the worker was replaced');
    const waited = errorOf(await behind);
    assert.equal(waited.kind, 'internal');
    assert.match(waited.message, /worker was replaced \(this call was waiting behind the stuck one\)$/);
    assert.match(await compile, /overstayed its time limit/, 'the compile the old worker never got to is answered');
    assert.ok(pings.length > 0);
    for (const ping of await Promise.all(pings)) assert.match(errorOf(ping).message, /\(this call was waiting behind the stuck one\)$/);
    // Recompiled on the new worker: top-level state starts again, as after any restart.
    assert.deepEqual(valueOf(await counter.invoke([])), { n: 1 });
    assert.equal(counter.stats().restarts, 1);
  } finally {
    single.dispose();
  }
});

test('a worker that ends unasked (a crash, not the watchdog): what it owed is answered internal with why, its scripts recover on a new one', HANG, async () => {
  // The worker is found as the one the runner posts to, and ended from outside, as a fatal error in
  // the thread would end it. Nothing was stuck, so no call is a timeout or "waiting behind" one.
  const workers = new Set<Worker>();
  // eslint-disable-next-line @typescript-eslint/unbound-method -- only ever applied to a Worker, and put back
  const post = Worker.prototype.postMessage;
  Worker.prototype.postMessage = function (this: Worker, ...args: Parameters<Worker['postMessage']>) {
    workers.add(this);
    post.apply(this, args);
  };
  const single = new QuickJsRunner({ workers: 1 });
  try {
    const slow = await single.compile('function handler() { const end = Date.now() + 3000; while (Date.now() < end) {} return {}; }',
      { ...HANDLER, timeoutMs: 10_000 });
    const counter = await single.compile('let n = 0; function handler() { return { n: ++n }; }', HANDLER);
    Worker.prototype.postMessage = post;
    assert.deepEqual(valueOf(await counter.invoke([])), { n: 1 });
    assert.equal(workers.size, 1);
    const running = slow.invoke([]);
    const behind = counter.invoke([]);
    const compile = single.compile('function handler() { return {}; }', HANDLER).then(() => 'compiled', (e: Error) => e.message);
    await new Promise((resolve) => setImmediate(resolve)); // all handed to the worker
    for (const worker of workers) await worker.terminate();
    for (const result of [await running, await behind]) {
      assert.deepEqual(errorOf(result), { kind: 'internal', message: 'sandbox worker exited with code 1' });
    }
    assert.equal(await compile, 'sandbox worker exited with code 1');
    // Both scripts moved to a new worker: top-level state starts again, as after any restart.
    assert.deepEqual(valueOf(await counter.invoke([])), { n: 1 });
    assert.equal(counter.stats().restarts, 1);
    assert.deepEqual(valueOf(await slow.invoke([])), {});
  } finally {
    Worker.prototype.postMessage = post;
    single.dispose();
  }
});

test('calls that keep coming to a worker stuck in a call, with no compile outstanding, do not hide it from the watchdog', HANG, async () => {
  // Each call sent to a busy worker must leave the watchdog's clock alone, whatever else is waiting
  // (the test above has a compile outstanding all along; here there is none).
  const single = new QuickJsRunner({ workers: 1 });
  try {
    const stuck = await single.compile('function handler() { return { n: new Array(1e9).join("x").length }; }', { ...HANDLER, timeoutMs: 100 });
    const pinger = await single.compile('function handler() { return {}; }', { ...HANDLER, maxConcurrent: 1024 });
    const stuckCall = stuck.invoke([]);
    let answered = false;
    void stuckCall.then(() => { answered = true; });
    const pings: Promise<InvokeResult>[] = [];
    while (!answered) {
      pings.push(pinger.invoke([], { timeoutMs: 50 }));
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    assert.equal(errorOf(await stuckCall).kind, 'timeout');
    assert.ok(pings.length > 0);
    for (const ping of await Promise.all(pings)) assert.match(errorOf(ping).message, /\(this call was waiting behind the stuck one\)$/);
    assert.deepEqual(valueOf(await pinger.invoke([])), {});
  } finally {
    single.dispose();
  }
});

test('top-level code stuck in native code: the compile fails init-timeout, the worker is replaced, its other scripts recover', HANG, async () => {
  // The same join as above, run by the script's top-level code: the compile never answered (the
  // watchdog watched calls only), and everything sent to that worker after it waited for ever.
  const single = new QuickJsRunner({ workers: 1 });
  try {
    const counter = await single.compile('let n = 0; function handler() { return { n: ++n }; }', HANDLER);
    assert.deepEqual(valueOf(await counter.invoke([])), { n: 1 });
    const stuck = single.compile('const s = new Array(1e9).join("x");\nfunction handler() { return {}; }', { ...HANDLER, timeoutMs: 100 })
      .then(() => undefined, (error: unknown) => error);
    const behind = counter.invoke([]); // sent to the worker after the compile
    const error = await stuck;
    assert.ok(error instanceof ScriptCompileError, `a compile error, got ${String(error)}`);
    assert.equal(error.reason, 'init-timeout');
    assert.equal(error.message, 'top-level code ran longer than 100 ms; the worker was replaced');
    const waited = errorOf(await behind);
    assert.equal(waited.kind, 'internal');
    assert.equal(waited.message,
      'a script\'s top-level code overstayed its time limit in the worker; the worker was replaced (this call was waiting behind the stuck one)');
    // Recompiled on the new worker: top-level state starts again, as after any restart.
    assert.deepEqual(valueOf(await counter.invoke([])), { n: 1 });
    assert.equal(counter.stats().restarts, 1);
    assert.deepEqual(valueOf(await (await single.compile('function handler() { return { next: true }; }', HANDLER)).invoke([])), { next: true });
  } finally {
    single.dispose();
  }
});

test('a call sent behind a long compile is not taken for stuck: the compile is worked on first, under its own limit', HANG, async () => {
  const single = new QuickJsRunner({ workers: 1 });
  try {
    const quick = await single.compile('function handler() { return { ok: true }; }', { ...HANDLER, timeoutMs: 100 });
    // Top-level code of 6 s under a 10 s limit: longer than the call's 100 ms and the watchdog's 5 s grace together.
    const slow = single.compile('const end = Date.now() + 6000; while (Date.now() < end) {} function handler() { return {}; }',
      { ...HANDLER, timeoutMs: 10_000 });
    assert.deepEqual(valueOf(await quick.invoke([])), { ok: true });
    await slow;
    assert.equal(quick.stats().restarts, 0);
  } finally {
    single.dispose();
  }
});

test('a call that rebuilds its script after a memory failure runs the top-level code again under the compile\'s limit, not the calls\' [both batch paths]', HANG, async () => {
  // Top-level code of 7 s under a 10 s limit, calls of 200 ms: the rebuild of the instance dropped
  // by a memory failure runs that code again inside the batch that needs it. Timed against the
  // calls' limits and the 5 s grace alone, the worker doing that rebuild was taken for stuck and
  // replaced, and the call answered timeout.
  const single = new QuickJsRunner({ workers: 1 });
  try {
    const script = await single.compile(`const end = Date.now() + 7000; while (Date.now() < end) {}
      function handler(what) {
        if (what === 'bomb') { const local = []; for (;;) local.push(new Float64Array(1000000)); }
        console.log('ran ' + what);
        return { what };
      }`, { ...HANDLER, timeoutMs: 10_000 });
    const call = { timeoutMs: 200 };
    // A batch of two (packed): the bomb drops the instance, the second call rebuilds it.
    const [bomb, packed] = await Promise.all([script.invoke(['bomb'], call), script.invoke(['packed'], call)]);
    assert.equal(errorOf(bomb).kind, 'memory');
    assert.deepEqual(valueOf(packed), { what: 'packed' });
    assert.deepEqual(packed.logs, [{ level: 'log', message: 'ran packed' }]);
    // A call alone after a bomb alone: the rebuild is the first thing of its batch.
    assert.equal(errorOf(await script.invoke(['bomb'], call)).kind, 'memory');
    const alone = await script.invoke(['alone'], call);
    assert.deepEqual(valueOf(alone), { what: 'alone' });
    // The call after a rebuild logs as any call does (its output was dropped as top-level code's).
    assert.deepEqual(alone.logs, [{ level: 'log', message: 'ran alone' }]);
    const stats = script.stats();
    assert.equal(stats.failures.memory, 2);
    assert.equal(stats.failures.timeout, 0);
    assert.equal(stats.restarts, 2); // the two rebuilds; no worker replaced
  } finally {
    single.dispose();
  }
});

test('a call running longer than the watchdog looks, within its own limit, is answered, not taken for stuck', HANG, async () => {
  // The watchdog looks every second; a call of 1.5 s under a 3 s limit is seen at work at least once.
  const single = new QuickJsRunner({ workers: 1 });
  try {
    const slow = await single.compile('function handler() { const end = Date.now() + 1500; while (Date.now() < end) {} return { done: true }; }',
      { ...HANDLER, timeoutMs: 3000 });
    assert.deepEqual(valueOf(await slow.invoke([])), { done: true });
    assert.equal(slow.stats().restarts, 0);
  } finally {
    single.dispose();
  }
});

test('a worker idle for longer than a call\'s limit and the grace together is timed from the call sent to it, not from its last message', HANG, async () => {
  // Idle 9 s, then a call of 1.5 s under a 3 s limit: timed from the worker's last answer, the watchdog
  // would see 9 s of silence against 3 s and the 5 s grace, and replace a worker doing its work.
  const single = new QuickJsRunner({ workers: 1 });
  try {
    const slow = await single.compile('function handler(ms) { const end = Date.now() + ms; while (Date.now() < end) {} return { done: true }; }',
      { ...HANDLER, timeoutMs: 3000 });
    assert.deepEqual(valueOf(await slow.invoke([0])), { done: true });
    await new Promise((resolve) => setTimeout(resolve, 9000));
    assert.deepEqual(valueOf(await slow.invoke([1500])), { done: true });
    assert.equal(slow.stats().restarts, 0);
  } finally {
    single.dispose();
  }
});

test('one script exhausting its memory leaves another script on the same worker untouched', HANG, async () => {
  const single = new QuickJsRunner({ workers: 1 });
  try {
    const bomb = await single.compile(MISCHIEF, { ...HANDLER, memoryMb: 16, timeoutMs: 3000, filename: 'mischief.js' });
    const counter = await single.compile('let n = 0; function handler() { return { n: ++n }; }', HANDLER);
    assert.deepEqual(valueOf(await counter.invoke([])), { n: 1 });
    const [bombed, counted] = await Promise.all([bomb.invoke(['array-bomb']), counter.invoke([])]);
    assert.equal(errorOf(bombed).kind, 'memory');
    assert.deepEqual(valueOf(counted), { n: 2 });
    assert.deepEqual(valueOf(await counter.invoke([])), { n: 3 });
    assert.equal(counter.stats().restarts, 0);
  } finally {
    single.dispose();
  }
});

test('a loop after an await is stopped, and an await that can never settle is a timeout', HANG, async () => {
  const script = await mischief();
  const looped = errorOf(await script.invoke(['loop-after-await']));
  assert.equal(looped.kind, 'timeout');
  assert.match(looped.message, /ran longer than 200 ms/);
  const never = errorOf(await script.invoke(['await-forever']));
  assert.equal(never.kind, 'timeout');
  assert.match(never.message, /never settled/);
  assert.deepEqual(valueOf(await script.invoke(['ok'])), { fine: true, kept: 0 });
});

test('memory bombs are reported as memory, and the next call runs in a fresh sandbox', HANG, async () => {
  const script = await mischief(16, 3000);
  for (const bomb of ['array-bomb', 'typed-bomb', 'string-bomb']) {
    const error = errorOf(await script.invoke([bomb]));
    assert.equal(error.kind, 'memory', bomb);
    assert.match(error.message, /memory limit of 16 MB/);
    // The array bomb kept its garbage in a global: only a new sandbox gets rid of it.
    assert.deepEqual(valueOf(await script.invoke(['ok'])), { fine: true, kept: 0 }, bomb);
  }
  const stats = script.stats();
  assert.equal(stats.failures.memory, 3);
  assert.equal(stats.restarts, 3);
  assert.equal(stats.succeeded, 3);
});

test('the memory limit is the configured size: 12 MB fit under 16 MB, 24 MB do not, and do under 32 MB', HANG, async () => {
  const source = `function handler(mb) {
    const kept = [];
    for (let i = 0; i < mb * 16; i++) kept.push(new Uint8Array(65536));
    return { mb: kept.length / 16 };
  }`;
  const small = await runner.compile(source, { ...HANDLER, memoryMb: 16 });
  assert.deepEqual(valueOf(await small.invoke([12])), { mb: 12 });
  assert.equal(errorOf(await small.invoke([24])).kind, 'memory');
  const large = await runner.compile(source, { ...HANDLER, memoryMb: 32 });
  assert.deepEqual(valueOf(await large.invoke([24])), { mb: 24 });
});

test('calls waiting behind one that runs out of memory are answered, and later calls work', HANG, async () => {
  const script = await mischief(16, 3000);
  const results = await Promise.all([script.invoke(['ok']), script.invoke(['array-bomb']), script.invoke(['ok']), script.invoke(['ok'])]);
  assert.equal(errorOf(results[1]).kind, 'memory');
  for (const result of [results[2], results[3]]) {
    assert.ok(result && (result.ok || result.error.kind === 'memory'), JSON.stringify(result));
  }
  assert.deepEqual(valueOf(await script.invoke(['ok'])), { fine: true, kept: 0 });
});

test('an argument too big for the sandbox is a memory failure, not a crash', { timeout: 5_000 }, async () => {
  const script = await runner.compile('function transformPayload(topic, bytes) { return { n: bytes.length }; }',
    { kind: 'module-function', entry: 'transformPayload', memoryMb: 16 });
  assert.equal(errorOf(await script.invoke(['t', Buffer.alloc(64 * 1024 * 1024)])).kind, 'memory');
  assert.deepEqual(valueOf(await script.invoke(['t', Buffer.alloc(3)])), { n: 3 });
});

test('the host process stays healthy: RSS bounded across repeated memory bombs', HANG, async () => {
  const script = await mischief(16, 3000);
  const before = process.memoryUsage().rss;
  for (let i = 0; i < 6; i++) {
    assert.equal(errorOf(await script.invoke([i % 2 === 0 ? 'array-bomb' : 'typed-bomb'])).kind, 'memory');
  }
  assert.deepEqual(valueOf(await script.invoke(['ok'])), { fine: true, kept: 0 });
  const grownMb = (process.memoryUsage().rss - before) / 1024 / 1024;
  assert.ok(grownMb < 150, `RSS grew by ${grownMb.toFixed(0)} MB`);
});

test('a throw reports the message and the operator line; non-Error throws too', { timeout: 5_000 }, async () => {
  const script = await mischief();
  const error = errorOf(await script.invoke(['throw']));
  assert.equal(error.kind, 'threw');
  assert.equal(error.message, 'RangeError: value out of range (line 11)');
  assert.equal(error.line, 11);
  assert.equal(errorOf(await script.invoke(['throw-string'])).message, 'plain string');
  assert.equal(errorOf(await script.invoke(['throw-object'])).message, '{"code":42}');
});

test('console output is captured per call and bounded to 50 lines of 500 characters', { timeout: 5_000 }, async () => {
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
  assert.match(small.logs[2]?.message ?? '', /^TypeError: bad\n {4}at handler \(handler\.js:5:34\)$/);
  assert.equal(small.logs[5]?.message.length, 500);
  assert.ok(small.logs[5]?.message.endsWith('\u2026'));

  const flood = await script.invoke([10_000]);
  assert.ok(flood.ok);
  assert.equal(flood.logs.length, 50);
  assert.equal(flood.logsTruncated, true);
  assert.equal(flood.logs[49]?.message, 'line 46');
});

test('the sandbox has no require, process, fetch, timers or WebAssembly', { timeout: 5_000 }, async () => {
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

test('the host library is frozen', { timeout: 5_000 }, async () => {
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

test('an idle runner does not keep its process alive: a program that used it and never disposed it ends', HANG, async () => {
  // A gateway's runner lives as long as its process, and a CLI or test that forgets dispose() must
  // still end. The worker and its watchdog's interval hold the process only while work is outstanding.
  const index = JSON.stringify(new URL('./index.ts', import.meta.url).href);
  const program = `import { QuickJsRunner } from ${index};
    const runner = new QuickJsRunner({ workers: 1 });
    const script = await runner.compile('function handler() { return { ok: true }; }', { kind: 'module-function', entry: 'handler' });
    process.stdout.write(JSON.stringify(await script.invoke([])));`;
  const child = spawn(process.execPath, ['--no-node-snapshot', '--import', 'tsx', '--input-type=module', '-e', program], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => { out += chunk; });
  // A deadline that only catches the hang: the program takes a second or two; held, it never ends.
  const alive = setTimeout(() => child.kill('SIGKILL'), 40_000);
  const [code, signal] = await once(child, 'exit') as [number | null, NodeJS.Signals | null];
  clearTimeout(alive);
  assert.equal(signal, null, 'the process was still alive 40 s after its last call: the runner held it');
  assert.equal(code, 0);
  assert.deepEqual(valueOf(JSON.parse(out) as InvokeResult), { ok: true });
});

test('a disposed script answers disposed, and so do calls that were in flight', HANG, async () => {
  const script = await mischief(16, 1000);
  const inFlight = script.invoke(['loop']);
  await new Promise((resolve) => setTimeout(resolve, 20));
  script.dispose();
  assert.equal(errorOf(await inFlight).kind, 'disposed');
  assert.equal(errorOf(await script.invoke(['ok'])).kind, 'disposed');
  assert.equal(script.stats().failures.disposed, 2);
});
