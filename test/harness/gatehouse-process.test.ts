/**
 * The harness that runs Gatehouse as `npm start` (gatehouse-process.ts): a child that never says it is running is
 * reported on (Node's diagnostic report: where it waits) and killed at its start deadline, and a test file whose
 * `before` failed while such a child was starting still ends, the child killed with it. (A CI run on 937181a hung
 * on exactly that: a node that never listened, and a test file held alive by it after its hook had failed.)
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { startGatehouseProcess, StartDeadlineError } from './gatehouse-process.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const stuckChild = path.join(here, 'fixtures', 'stuck-child.mjs');

/** No such process, or a zombie (killed; the process it was handed to on its parent's exit has not reaped it yet). */
function gone(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ESRCH';
  }
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '').startsWith('Z');
  } catch {
    return true;
  }
}

test('a child that never says it is running: past its start deadline its diagnostic report is taken, it is killed, and the rejection says where it waited', { timeout: 30_000 }, async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'gatehouse-deadline-'));
  try {
    const started = Date.now();
    const error = await startGatehouseProcess(dir, {}, { script: stuckChild, startDeadlineMs: 2_000 }).then(
      () => assert.fail('the start resolved'), (e: unknown) => e);
    assert.ok(error instanceof StartDeadlineError, String(error));
    assert.ok(Date.now() - started >= 2_000);
    const pid = Number(await readFile(path.join(dir, 'child.pid'), 'utf8'));
    assert.equal(error.pid, pid);
    assert.ok(gone(pid), `the child ${pid} is gone`);
    assert.match(error.message, /did not say "Gatehouse is running" within 2 s; killed/);
    // The report: the JavaScript stack (idle here: it waits on a promise) and the handles that kept it alive.
    assert.match(error.message, /JavaScript stack: \(none: idle, waiting on the event loop\)/);
    assert.match(error.message, /libuv handles keeping it alive \(referenced, active\): .*tcp 1/);
    assert.match(error.message, /timer 1/);
    assert.match(error.message, /tcp 127\.0\.0\.1:\d+ -> \?/);
    // What it printed, both streams.
    assert.match(error.message, /--- stdout \(tail\) ---\nstarting, step 3 of 7/);
    assert.match(error.message, /--- stderr \(tail\) ---\n[^]*start_step_slow/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a test file whose before failed with its children alive ends (one started, one still starting), and both are killed', { timeout: 60_000 }, async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'gatehouse-before-fails-'));
  const pidOf = async (name: string): Promise<number> => Number(await readFile(path.join(dir, name, 'child.pid'), 'utf8').catch(() => 'NaN'));
  try {
    // Its own test run (without the runner's context, which would make it a part of this one).
    const { NODE_TEST_CONTEXT: _context, ...env } = process.env;
    const run = spawn(process.execPath, ['--no-node-snapshot', '--import', 'tsx', '--test', path.join(here, 'fixtures', 'before-fails.fixture.ts')], {
      env: { ...env, FIXTURE_DATA_DIR: dir }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    run.stdout.on('data', (b: Buffer) => (output += b.toString()));
    run.stderr.on('data', (b: Buffer) => (output += b.toString()));
    // Its second child's start deadline (5 s) and report (at most 5 s) bound it.
    const code = await new Promise<number | null | 'held'>((resolve) => {
      const held = setTimeout(() => resolve('held'), 30_000);
      run.once('exit', (c) => {
        clearTimeout(held);
        resolve(c);
      });
    });
    const pids = [await pidOf('running'), await pidOf('starting')];
    if (code === 'held') run.kill('SIGKILL');
    // Give the dead a moment to be reaped (their parent is gone), then note the living before cleaning up.
    await new Promise((resolve) => setTimeout(resolve, 200));
    const alive = pids.filter((pid) => Number.isInteger(pid) && !gone(pid));
    for (const pid of alive) process.kill(pid, 'SIGKILL');
    assert.notEqual(code, 'held', `the test file's process was still alive 30 s after its before failed:\n${output}`);
    assert.notEqual(code, 0, output); // its before failed
    // Node 20 names the failed hook; Node 26 reports the suite's timeout with the test it cancelled.
    assert.match(output, /failed running before hook|test timed out after 1000ms/);
    assert.ok(pids.every((pid) => Number.isInteger(pid)), `both children started (their pid files): ${output}`);
    assert.deepEqual(alive, [], 'no child outlived the test file\'s process');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
