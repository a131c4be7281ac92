/**
 * A stop signal that comes while Gatehouse is still starting (a service manager's restart, Ctrl-C right
 * after `npm start`) lets the start finish and then closes everything as any stop does. Before, the
 * signal handlers were installed only after the start, so such a signal ended the process at once and
 * left its SQLite files with their write-ahead logs beside them (seen as a flaky doctor test under load).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { DIST, ensureBuilt } from '../../scripts/build.mjs';
import { freePort, removeDataDir, TEST_ADMIN_TOKEN } from '../harness/gatehouse.ts';

test('SIGTERM during the start: the start finishes, then a clean close (no write-ahead log left), exit code 0', { timeout: 120_000 }, async (t) => {
  await ensureBuilt();
  const work = await mkdtemp(path.join(os.tmpdir(), 'gh-stop-starting-'));
  t.after(() => removeDataDir(work));
  const dir = path.join(work, 'data');
  const child = spawn(process.execPath, ['--enable-source-maps', path.join(DIST, 'main.mjs')], {
    env: {
      ...process.env, GATEHOUSE_DATA_DIR: dir, GATEHOUSE_HTTP_PORT: String(await freePort()), GATEHOUSE_HTTP_HOST: '127.0.0.1',
      GATEHOUSE_MQTT_HOST: '127.0.0.1', GATEHOUSE_ADMIN_TOKEN: TEST_ADMIN_TOKEN, GATEHOUSE_DEMO: 'off', GATEHOUSE_LOG_LEVEL: 'info',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.after(() => { if (child.exitCode === null) child.kill('SIGKILL'); });
  let stdout = '';
  const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  await new Promise<void>((resolve) => {
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      // The first migration is being applied: the process is in the middle of its start.
      if (stdout.includes('storage_migration_applied')) resolve();
    });
  });
  child.kill('SIGTERM');
  const { code, signal } = await exited;
  assert.deepEqual({ code, signal }, { code: 0, signal: null }, 'ended by its own close, not by the signal');
  assert.match(stdout, /"starting":true,"msg":"gatehouse_stopping"/);
  assert.match(stdout, /gatehouse_stopped/);
  const left = (await readdir(dir)).filter((f) => f.endsWith('-wal') || f.endsWith('-shm'));
  assert.deepEqual(left, [], 'every SQLite file closed cleanly');
});
