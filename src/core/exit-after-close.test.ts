import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const MODULES = { exit: fileURLToPath(new URL('./exit-after-close.ts', import.meta.url)), logger: fileURLToPath(new URL('./logger.ts', import.meta.url)) };

/** A child process that closed (the call) with `leftBehind` keeping its event loop alive or not: its exit code and log lines. */
function closedChild(leftBehind: boolean): Promise<{ code: number | null; lines: Record<string, unknown>[] }> {
  const script = `
    const { exitAfterClose } = await import(${JSON.stringify(MODULES.exit)});
    const { createLogger } = await import(${JSON.stringify(MODULES.logger)});
    ${leftBehind ? 'setInterval(() => {}, 1_000); // a retry timer a part re-armed after its close' : ''}
    process.exitCode = 3;
    exitAfterClose(createLogger('info'), 300);
  `;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  return new Promise((resolve) => child.once('exit', (code) => resolve({
    code, lines: out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>),
  })));
}

test('a closed process kept alive by something left behind exits after the grace, with its exit code, saying what was left', { timeout: 20_000 }, async () => {
  const { code, lines } = await closedChild(true);
  assert.equal(code, 3, 'the exit code the close set');
  const forced = lines.find((l) => l.msg === 'exit_forced_after_close');
  assert.ok(forced !== undefined, JSON.stringify(lines));
  assert.ok((forced.resources as string[]).includes('Timeout'), JSON.stringify(forced));
});

test('a closed process with nothing left ends by itself: the grace timer does not hold it', { timeout: 20_000 }, async () => {
  const { code, lines } = await closedChild(false);
  assert.equal(code, 3);
  assert.deepEqual(lines.filter((l) => l.msg === 'exit_forced_after_close'), []);
});
