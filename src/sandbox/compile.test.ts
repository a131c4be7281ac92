import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { QuickJsRunner, ScriptCompileError } from './index.ts';

const runner = new QuickJsRunner();
after(() => runner.dispose(), { timeout: 30_000 });

const HANDLER = { kind: 'module-function', entry: 'handler' } as const;

async function compileError(source: string, options: Partial<typeof HANDLER & { timeoutMs: number }> = {}): Promise<ScriptCompileError> {
  try {
    await runner.compile(source, { ...HANDLER, ...options });
  } catch (error) {
    assert.ok(error instanceof ScriptCompileError, `expected a ScriptCompileError, got ${String(error)}`);
    return error;
  }
  assert.fail('the source compiled');
}

test('a syntax error names its line and column', { timeout: 20_000 }, async () => {
  const error = await compileError([
    'function handler(event) {',
    '  const ok = event.password === "x";',
    '  return { result: ok, };;)',
    '}',
  ].join('\n'));
  assert.equal(error.reason, 'syntax');
  assert.equal(error.line, 3);
  assert.equal(error.column, 27);
  assert.equal(error.message, "line 3: Unexpected token in expression: ')'");
  assert.equal(error.detail, "Unexpected token in expression: ')'");
});

test('an unterminated function reports where the input ended', { timeout: 10_000 }, async () => {
  const error = await compileError('function handler(event) {\n  return {');
  assert.equal(error.reason, 'syntax');
  assert.equal(error.line, 2);
  assert.match(error.message, /^line 2: Unexpected end of input$/);
});

test('ES module syntax is a syntax error the operator can read', { timeout: 5_000 }, async () => {
  const error = await compileError('export function handler() {}');
  assert.equal(error.message, 'line 1: Unsupported keyword: export');
});

test('a script without the entry function is rejected', { timeout: 5_000 }, async () => {
  for (const source of ['function handle() {}', 'const handler = 5;', '// nothing here', 'module.exports = {}']) {
    const error = await compileError(source);
    assert.equal(error.reason, 'missing-entry', source);
    assert.match(error.message, /does not define a function named handler/);
  }
});

test('top-level code that throws or loops is rejected at compile time', { timeout: 20_000 }, async () => {
  const threw = await compileError('const table = {};\ntable.missing.x = 1;\nfunction handler() {}');
  assert.equal(threw.reason, 'init-threw');
  assert.equal(threw.line, 2);
  assert.match(threw.message, /^line 2: TypeError: cannot set property 'x' of undefined/);

  const looped = await compileError('while (true) {}\nfunction handler() {}', { timeoutMs: 100 });
  assert.equal(looped.reason, 'init-timeout');
  assert.equal(looped.message, 'top-level code ran longer than 100 ms');
});

test('top-level loops are stopped by the interrupt handler at the script\'s limit: plain, of host calls, of host calls that catch the refusal', { timeout: 20_000 }, async () => {
  // Host calls are reachable at top level (the prelude is set up before the script runs); past the
  // deadline each refuses to run, and the interrupt handler stops a loop that catches the refusal.
  const loops = [
    'for (;;) {}',
    'for (;;) gatehouse.crypto.hash(\'sha256\', \'x\');',
    'const big = \'x\'.repeat(1000000);\nfor (;;) { try { gatehouse.crypto.hmac(\'sha512\', big, big); } catch (e) { /* again */ } }',
  ];
  for (const loop of loops) {
    const error = await compileError(`${loop}\nfunction handler() {}`, { timeoutMs: 100 });
    assert.equal(error.reason, 'init-timeout', loop);
    // The handler's words, not the watchdog's: the worker was not replaced.
    assert.equal(error.message, 'top-level code ran longer than 100 ms', loop);
  }
  const after = await runner.compile('function handler() { return { ok: true }; }', HANDLER);
  assert.equal((await after.invoke([])).ok, true);
});

test('limits out of range are refused rather than clamped', { timeout: 5_000 }, async () => {
  await assert.rejects(runner.compile('function handler() {}', { ...HANDLER, memoryMb: 4 }), RangeError);
  await assert.rejects(runner.compile('function handler() {}', { ...HANDLER, memoryMb: 512 }), RangeError);
  await assert.rejects(runner.compile('function handler() {}', { ...HANDLER, timeoutMs: 0 }), RangeError);
  const script = await runner.compile('function handler() { return {}; }', { ...HANDLER, memoryMb: 8 });
  await assert.rejects(script.invoke([], { timeoutMs: 120_000 }), RangeError);
});
