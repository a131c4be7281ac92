import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { test } from 'node:test';
import { QuickJsRunner } from './index.ts';

// A runner for background work (payload parsing) runs its worker threads at a lower priority, so
// that on a busy core the event loop gets the CPU first; nothing else in the process is lowered.

const LINUX = process.platform === 'linux';

/** Niceness of every thread of this process, by thread id (field 19 of /proc/self/task/<tid>/stat). */
function threadNiceness(): Map<number, number> {
  const result = new Map<number, number>();
  for (const tid of readdirSync('/proc/self/task')) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
    } catch {
      continue; // the thread ended while we listed them
    }
    // The command name may hold spaces and parentheses: the fields start after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    result.set(Number(tid), Number(fields[16]));
  }
  return result;
}

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
