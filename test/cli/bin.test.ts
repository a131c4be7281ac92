/** The `gatehouse` bin works from any working directory (dist/ and its packages are found from the package). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

test('bin/gatehouse.mjs --help from another directory lists the commands', { timeout: 30_000 }, async () => {
  const bin = path.resolve('bin/gatehouse.mjs');
  const { stdout } = await run(process.execPath, [bin, '--help'], { cwd: os.tmpdir() });
  for (const command of ['broker', 'gateways', 'devices', 'events', 'certs']) assert.match(stdout, new RegExp(`^\\s+${command}\\b`, 'm'));
});
