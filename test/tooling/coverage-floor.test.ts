/**
 * scripts/coverage.mjs, the last step of `npm test`, run as npm runs it on c8 summaries made here:
 * the per-folder table it prints and writes, and the floor that fails the run when src/'s lines or
 * branches fall under it (on the Node line the floor is set for; elsewhere it says it did not check).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { ROOT } from '../../scripts/build.mjs';

const run = promisify(execFile);
const SCRIPT = path.join(ROOT, 'scripts', 'coverage.mjs');
const FLOOR_NODE = 20;
const onFloorNode = Number(process.versions.node.split('.')[0]) === FLOOR_NODE;

interface Counts { total: number; covered: number; skipped: number; pct: number }
const counts = (covered: number, total: number): Counts => ({ total, covered, skipped: 0, pct: total === 0 ? 100 : Math.round((10_000 * covered) / total) / 100 });

/** The floor as the script states it, read from its source, so the test follows every raise. */
async function floor(): Promise<{ lines: number; branches: number }> {
  const source = await readFile(SCRIPT, 'utf8');
  const m = /export const FLOOR = \{ node: (\d+), lines: ([\d.]+), branches: ([\d.]+) \}/.exec(source);
  assert.ok(m, 'FLOOR is written as { node, lines, branches } in scripts/coverage.mjs');
  assert.equal(Number(m[1]), FLOOR_NODE);
  return { lines: Number(m[2]), branches: Number(m[3]) };
}

/** A c8 json-summary with two src/ files whose sums reach `lines` and `branches` per cent of 10,000. */
function summary(lines: number, branches: number): Record<string, unknown> {
  type FileCounts = Record<'lines' | 'statements' | 'branches' | 'functions', Counts>;
  const file = (name: string, l: number, b: number): [string, FileCounts] => [path.join(ROOT, name), { lines: counts(l, 5_000), statements: counts(l, 5_000), branches: counts(b, 5_000), functions: counts(1, 1) }];
  const l = Math.round(lines * 100);
  const b = Math.round(branches * 100);
  return Object.fromEntries<FileCounts>([
    ['total', { lines: counts(l, 10_000), statements: counts(l, 10_000), branches: counts(b, 10_000), functions: counts(2, 2) }],
    file('src/broker/router.ts', Math.min(l, 5_000), Math.min(b, 5_000)),
    file('src/mqtt/topics.ts', l - Math.min(l, 5_000), b - Math.min(b, 5_000)),
  ]);
}

/** The floor applies to the full suite, the one with PostgreSQL; the URL itself is not used. */
const FULL_SUITE = { ...process.env, GATEHOUSE_TEST_DATABASE_URL: 'postgres://unused@127.0.0.1/unused' };

async function check(lines: number, branches: number, env: NodeJS.ProcessEnv = FULL_SUITE): Promise<{ code: number; stdout: string; stderr: string; written: string }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'gh-coverage-'));
  try {
    const file = path.join(dir, 'coverage-summary.json');
    await writeFile(file, JSON.stringify(summary(lines, branches)));
    const outcome = await run(process.execPath, [SCRIPT, file, dir], { env }).then(
      ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
      (err: { code: number; stdout: string; stderr: string }) => ({ code: err.code, stdout: err.stdout, stderr: err.stderr }),
    );
    return { ...outcome, written: await readFile(path.join(dir, 'folders.txt'), 'utf8') };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('the floor is set: above zero, at most 100', { timeout: 10_000 }, async () => {
  const { lines, branches } = await floor();
  assert.ok(lines > 0 && lines <= 100, `lines ${lines}`);
  assert.ok(branches > 0 && branches <= 100, `branches ${branches}`);
});

test('at the floor the run passes, and the table per folder is printed and written', { timeout: 20_000 }, async () => {
  const { lines, branches } = await floor();
  const result = await check(lines, branches);
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /^src\/broker\s+\d+\.\d\d %/m);
  assert.match(result.stdout, /^src\/mqtt\s+\d+\.\d\d %/m);
  assert.match(result.stdout, /^src\/ total\s+/m);
  assert.match(result.written, /^src\/broker\s/m);
  assert.match(result.stdout, onFloorNode ? /floor held/ : /floor not checked on Node \d+/);
});

test('under the floor in lines or in branches the run fails, naming which', { timeout: 20_000 }, async () => {
  const { lines, branches } = await floor();
  const lowLines = await check(lines - 0.01, branches);
  const lowBranches = await check(lines, branches - 0.01);
  if (!onFloorNode) {
    // Other Node lines run other code paths (and CI runs only parts of the suite there).
    assert.equal(lowLines.code, 0);
    assert.match(lowLines.stdout, /floor not checked/);
    return;
  }
  assert.equal(lowLines.code, 1);
  assert.match(lowLines.stderr, /src\/ lines [\d.]+ % is under the floor/);
  assert.doesNotMatch(lowLines.stderr, /branches/);
  assert.equal(lowBranches.code, 1);
  assert.match(lowBranches.stderr, /src\/ branches [\d.]+ % is under the floor/);
});

test('without PostgreSQL the suite was not the full one: the floor is not checked, and says so', { timeout: 20_000 }, async () => {
  const { lines, branches } = await floor();
  const env = { ...process.env };
  delete env.GATEHOUSE_TEST_DATABASE_URL;
  const result = await check(lines - 1, branches - 1, env);
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, onFloorNode ? /floor not checked: GATEHOUSE_TEST_DATABASE_URL is not set/ : /floor not checked on Node/);
});
