import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';

test('an error that escapes every guard is logged and counted, and the process keeps running', { timeout: 30_000 }, () => {
  const script = `
    import { installProcessGuard, processGuard } from './src/core/process-guard.ts';
    import { createLogger } from './src/core/logger.ts';
    installProcessGuard(createLogger('error'));
    setTimeout(() => { throw new Error('escaped'); }, 1);
    setTimeout(() => { void Promise.reject(new Error('rejected')); }, 2);
    setTimeout(() => { process.stdout.write('alive ' + processGuard.uncaughtErrors + '\\n'); }, 100);
  `;
  const run = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000 });
  assert.equal(run.status, 0, run.stderr);
  assert.match(run.stdout, /alive 2/);
  assert.match(run.stdout + run.stderr, /process_uncaught_exception/);
  assert.match(run.stdout + run.stderr, /process_unhandled_rejection/);
});
