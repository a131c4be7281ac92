/**
 * The checks a compile or a call meets before anything reaches the sandbox: the range of every limit
 * an operator may choose, the bound on calls waiting, the bytes of the arguments, and a caller's own
 * mistakes (issue 18: each was only met on the way by tests of other things, none at its boundary).
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { QuickJsRunner, SANDBOX_LIMITS, type SandboxArg } from './index.ts';
import { errorOf, valueOf } from './test-support.ts';

const runner = new QuickJsRunner({ workers: 1 });
after(() => runner.dispose(), { timeout: 30_000 });

const HANDLER = { kind: 'module-function', entry: 'handler' } as const;
const ECHO = 'function handler(x) { return { x: x === undefined ? null : x }; }';
const MB = 1024 * 1024;

test('each limit chosen at compile time takes its minimum and its maximum, and refuses one beyond either and a fraction', { timeout: 60_000 }, async () => {
  // timeoutMs at compile time also bounds the top-level code, so its minimum is taken per call (below).
  for (const name of ['memoryMb', 'maxResultChars', 'maxConcurrent', 'maxQueued', 'batchWindowMs', 'timeoutMs'] as const) {
    const { min, max } = SANDBOX_LIMITS[name];
    for (const fine of name === 'timeoutMs' ? [max] : [min, max]) {
      // A result of one character, within even the smallest maxResultChars.
      const script = await runner.compile('function handler(x) { return x; }', { ...HANDLER, result: 'json', [name]: fine });
      assert.deepEqual(valueOf(await script.invoke([1])), 1, `${name} ${fine}`);
      script.dispose();
    }
    for (const wrong of [min - 1, max + 1, min + 0.5]) {
      await assert.rejects(runner.compile(ECHO, { ...HANDLER, [name]: wrong }), RangeError, `${name} ${wrong}`);
    }
  }
});

test('a per-call time limit takes 1 ms to 60 s; a wrong one rejects the call, as a RangeError', { timeout: 30_000 }, async () => {
  const script = await runner.compile(ECHO, HANDLER);
  for (const timeoutMs of [1, 60_000]) {
    const result = await script.invoke([1], { timeoutMs });
    // 1 ms may run out before the answer on a busy machine: either way the call was taken.
    assert.ok(result.ok || result.error.kind === 'timeout', JSON.stringify(result));
  }
  for (const timeoutMs of [0, 60_001, 1.5]) await assert.rejects(script.invoke([1], { timeoutMs }), RangeError, `${timeoutMs}`);
});

test('calls beyond maxConcurrent + maxQueued are answered busy at once; every call is counted', { timeout: 30_000 }, async () => {
  const script = await runner.compile(ECHO, { ...HANDLER, maxConcurrent: 1, maxQueued: 2 });
  const results = await Promise.all([0, 1, 2, 3, 4].map((i) => script.invoke([i])));
  assert.deepEqual(results.map((r) => (r.ok ? r.value : r.error.kind)), [{ x: 0 }, { x: 1 }, { x: 2 }, 'busy', 'busy']);
  assert.deepEqual(valueOf(await script.invoke([5])), { x: 5 }, 'room again once they were answered');
  const stats = script.stats();
  assert.deepEqual([stats.calls, stats.succeeded, stats.failures.busy], [6, 4, 2]);
});

test('arguments beyond the memory limit are refused before they are copied in; up to the limit they go in', { timeout: 30_000 }, async () => {
  const script = await runner.compile('function handler(b) { return { n: b.length }; }', { ...HANDLER, memoryMb: 8 });
  const over = errorOf(await script.invoke([Buffer.alloc(8 * MB + 1)]));
  assert.equal(over.kind, 'memory');
  assert.match(over.message, /memory limit of 8 MB reached: the arguments alone are 9 MB/);
  // Exactly the limit passes the check (inside, the engine's own needs may still not fit).
  const at = await script.invoke([Buffer.alloc(8 * MB)]);
  assert.doesNotMatch(at.ok ? '' : at.error.message, /arguments alone/, JSON.stringify(at.ok ? at.value : at.error));
  // A string counts three bytes a character (its most in UTF-8).
  assert.match(errorOf(await script.invoke(['x'.repeat(Math.floor((8 * MB) / 3) + 1)])).message, /the arguments alone are 9 MB/);
  assert.deepEqual(valueOf(await script.invoke([Buffer.alloc(3)])), { n: 3 });
});

test('a caller\'s mistake in the arguments rejects the call with a TypeError, even when a toJSON throws something else', { timeout: 30_000 }, async () => {
  const script = await runner.compile(ECHO, HANDLER);
  // eslint-disable-next-line @typescript-eslint/only-throw-error -- the case itself: a caller's toJSON throwing a non-Error
  const throwsString = { toJSON: (): never => { throw 'not an error'; } } as unknown as SandboxArg;
  await assert.rejects(script.invoke([throwsString]), (error: unknown) => error instanceof TypeError && /not an error/.test(error.message));
  await assert.rejects(script.invoke([{ n: 10n } as unknown as SandboxArg]), TypeError);
  assert.deepEqual(valueOf(await script.invoke(['fine'])), { x: 'fine' });
});
