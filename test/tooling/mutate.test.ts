/**
 * scripts/mutate.mjs (`npm run mutate`): the mutants it makes of a source, and a whole run on a tiny
 * fixture tree whose test leaves exactly one boundary unpinned, which it must report as the survivor,
 * without touching the fixture's own source.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, symlink, writeFile, mkdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ROOT } from '../../scripts/build.mjs';
import { applyMutant, formatResults, mergeShards, MODULES, mutantsOf, runMutation, type ModuleResult } from '../../scripts/mutate.mjs';

const FEE = `/** A fee by age. */
export function fee(age: number): number {
  if (age >= 18) return 10;
  return 5;
}
`;

test('mutants: boundaries, conditions, numbers, logic, negation, statements; none in types or imports', { timeout: 15_000 }, () => {
  const source = `import { x } from './x.ts';
type T = 1 | 2;
export function f(a: number, b: boolean, list: number[]): number {
  if (a < 3 && !b) list.push(a);
  return Math.min(a, 2) === 2 ? 1 : 0;
}
`;
  const ops = mutantsOf(source).map((m) => `${m.line}:${m.operator}`);
  for (const expected of ['4:< → <=', '4:&& → ||', '4:!x → x', '4:condition → true', '4:condition → false', '4:3 → 4', '4:3 → 2',
    '4:statement removed', '5:.min() → .max()', '5:=== → !==', '5:condition → true', '5:1 → 0', '5:0 → 1']) {
    assert.ok(ops.includes(expected), `${expected} in ${ops.join(', ')}`);
  }
  assert.deepEqual(ops.filter((o) => o.startsWith('1:') || o.startsWith('2:')), [], 'imports and types are not mutated');
  const boundary = mutantsOf(FEE).find((m) => m.operator === '>= → >')!;
  assert.equal(applyMutant(FEE, boundary).split('\n')[2], '  if (age > 18) return 10;');
  // `only` keeps the mutants to the named functions.
  assert.deepEqual(mutantsOf(`function a() { return 1; }\nfunction b() { return 2; }\n`, 'f.ts', ['b']).map((m) => m.original), ['2', '2']);
});

test('every module of the table names sources and tests that exist', { timeout: 15_000 }, async () => {
  for (const [name, spec] of Object.entries(MODULES)) {
    assert.ok(spec.sources.length > 0 && spec.tests.length > 0, name);
    for (const source of spec.sources) {
      const file = typeof source === 'string' ? source : source.file;
      const only = typeof source === 'string' ? undefined : source.only;
      const mutants = mutantsOf(await readFile(path.join(ROOT, file), 'utf8'), file, only);
      assert.ok(mutants.length > 0, `${name}: ${file} has mutants`);
    }
    for (const t of spec.tests) await readFile(path.join(ROOT, t));
  }
});

test('a run on a fixture: kills what its test pins, reports the one boundary it does not, leaves the source alone', { timeout: 180_000 }, async () => {
  const root = await mkdtemp(path.join(os.tmpdir(), 'gh-mutate-'));
  try {
    await mkdir(path.join(root, 'src'));
    await writeFile(path.join(root, 'package.json'), '{ "type": "module" }\n');
    await writeFile(path.join(root, 'src', 'fee.ts'), FEE);
    // 18 itself and a young age are pinned; 17 is not, so `18 → 17` survives.
    await writeFile(path.join(root, 'src', 'fee.test.ts'), `import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fee } from './fee.ts';
test('fee', { timeout: 5_000 }, () => {
  assert.equal(fee(18), 10);
  assert.equal(fee(5), 5);
});
`);
    await symlink(path.join(ROOT, 'node_modules'), path.join(root, 'node_modules'), 'dir');
    const lines: string[] = [];
    const [result] = await runMutation({
      root, scratch: path.join(root, '.tmp', 'tree'), names: ['fee'], log: (line) => lines.push(line),
      modules: { fee: { sources: ['src/fee.ts'], tests: ['src/fee.test.ts'] } },
    });
    assert.ok(result);
    // >= → >, condition → true/false, 18 → 19, 18 → 17, 10 → 11/9, 5 → 6/4.
    assert.deepEqual({ total: result.total, killed: result.killed, survived: result.survived, timeout: result.timeout }, { total: 9, killed: 8, survived: 1, timeout: 0 }, lines.join('\n'));
    assert.deepEqual(result.survivors, [{ file: 'src/fee.ts', line: 3, column: 14, operator: '18 → 17', original: '18' }]);
    assert.equal(result.score, 88.88);
    assert.match(formatResults([result]), /survivor fee: src\/fee\.ts:3:14 {2}18 → 17/);
    assert.equal(await readFile(path.join(root, 'src', 'fee.ts'), 'utf8'), FEE, 'the source itself is never written');
    assert.equal(await readFile(path.join(root, '.tmp', 'tree', 'src', 'fee.ts'), 'utf8'), FEE, 'the scratch copy is restored after the last mutant');

    // --recheck: a test written for the survivor; only the survivor runs again, and the counts add up.
    await writeFile(path.join(root, 'src', 'fee.test.ts'), (await readFile(path.join(root, 'src', 'fee.test.ts'), 'utf8'))
      .replace('assert.equal(fee(5), 5);', 'assert.equal(fee(5), 5);\n  assert.equal(fee(17), 5);'));
    const recheckLines: string[] = [];
    const fixtureModules = { fee: { sources: ['src/fee.ts'], tests: ['src/fee.test.ts'] } };
    const [again] = await runMutation({
      root, scratch: path.join(root, '.tmp', 'tree'), names: ['fee'], log: (line) => recheckLines.push(line), modules: fixtureModules, previous: [result],
    });
    assert.ok(again);
    assert.deepEqual({ total: again.total, killed: again.killed, survived: again.survived, rechecked: again.rechecked, score: again.score },
      { total: 9, killed: 9, survived: 0, rechecked: 1, score: 100 }, recheckLines.join('\n'));
    assert.equal(recheckLines.filter((l) => /^ {2}(killed|SURVIVED|timeout)/.test(l)).length, 1, `only the survivor ran: ${recheckLines.join('\n')}`);
    assert.match(formatResults([again]), /1 survivors of an earlier run ran again/);
    // --shard: two processes sharing the module run every other mutant each; together they run them all.
    const shards: ModuleResult[] = [];
    for (const index of [0, 1]) {
      const [part] = await runMutation({ root, scratch: path.join(root, '.tmp', `shard-${index}`), names: ['fee'], log: () => undefined, modules: fixtureModules, shard: { index, count: 2 } });
      assert.ok(part);
      shards.push(part);
    }
    assert.deepEqual(shards.map((r) => [r.shard, r.total]), [['0/2', 5], ['1/2', 4]]);
    assert.equal(shards[0]!.killed + shards[1]!.killed + shards[0]!.timeout + shards[1]!.timeout, 9, 'with the test for 17, every mutant is killed');
    const [whole] = mergeShards(shards);
    assert.deepEqual([whole?.total, whole?.killed, whole?.survived, whole?.score, whole?.shard], [9, 9, 0, 100, undefined]);
    assert.throws(() => mergeShards([shards[0]!]), /shards 0\/2 are not all of 2/);
    // A source changed since: its mutants are not the ones measured, so a recheck is refused.
    await writeFile(path.join(root, 'src', 'fee.ts'), FEE.replace('return 5;', 'return 5; // changed'));
    await assert.rejects(runMutation({ root, scratch: path.join(root, '.tmp', 'tree'), names: ['fee'], log: () => undefined, modules: fixtureModules, previous: [result] }),
      /changed since the run being rechecked/);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
