import assert from 'node:assert/strict';
import { test } from 'node:test';
import { threadNiceness } from '../../test/harness/thread-niceness.ts';
import { QuickJsRunner } from './index.ts';

// A runner for background work (payload parsing) runs its worker threads at a lower priority, so
// that on a busy core the event loop gets the CPU first; nothing else in the process is lowered.

const LINUX = process.platform === 'linux';

const SCRIPT = 'function transformPayload(topic) { return { topic }; }';
const OPTIONS = { kind: 'module-function', entry: 'transformPayload' } as const;

// The process is assumed to run below niceness 10 (a test run under `nice -n 10` would see nothing change).
test('a runner with niceness 10 runs its scripts on threads at niceness 10; the event loop keeps its own', { skip: !LINUX, timeout: 30_000 }, async () => {
  const before = threadNiceness();
  const runner = new QuickJsRunner({ workers: 2, niceness: 10 });
  try {
    const scripts = await Promise.all([runner.compile(SCRIPT, OPTIONS), runner.compile(SCRIPT, OPTIONS)]);
    for (const script of scripts) {
      const result = await script.invoke(['t/1']);
      assert.deepEqual(result.ok && result.value, { topic: 't/1' });
    }
    const added = [...threadNiceness()].filter(([tid]) => !before.has(tid));
    // Each worker thread (Node starts a few helper threads with it, at the process's niceness).
    assert.equal(added.filter(([, nice]) => nice === 10).length, 2, `new threads: ${JSON.stringify(added)}`);
    assert.equal(threadNiceness().get(process.pid), before.get(process.pid), 'the main thread keeps its priority');
  } finally {
    runner.dispose();
  }
});

test('a runner without niceness leaves its threads at the process\'s priority', { skip: !LINUX, timeout: 30_000 }, async () => {
  const before = threadNiceness();
  const runner = new QuickJsRunner({ workers: 1 });
  try {
    const script = await runner.compile(SCRIPT, OPTIONS);
    assert.ok((await script.invoke(['t/1'])).ok);
    const added = [...threadNiceness()].filter(([tid]) => !before.has(tid));
    assert.ok(added.length > 0);
    assert.deepEqual(added.filter(([, nice]) => nice !== before.get(process.pid)), []);
  } finally {
    runner.dispose();
  }
});

test('niceness outside 0..19 is refused', { timeout: 5_000 }, () => {
  assert.throws(() => new QuickJsRunner({ niceness: 20 }), /niceness must be an integer from 0 to 19, got 20/);
  assert.throws(() => new QuickJsRunner({ niceness: -1 }), /niceness must be an integer from 0 to 19, got -1/);
  assert.throws(() => new QuickJsRunner({ niceness: 1.5 }), /niceness must be an integer from 0 to 19/);
});
