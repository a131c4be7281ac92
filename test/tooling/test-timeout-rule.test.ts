/**
 * The `gatehouse/test-timeout` lint rule (scripts/lint/test-timeout-rule.mjs): what it refuses and
 * what it lets through, run by ESLint's own Linter on small sources, and proof that the project's
 * ESLint configuration applies it to test files, so `npm test` (npm run lint) fails on a test
 * without a timeout.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { ESLint, Linter } from 'eslint';
import tseslint from 'typescript-eslint';
import { ROOT } from '../../scripts/build.mjs';
import { testTimeoutRule } from '../../scripts/lint/test-timeout-rule.mjs';

const linter = new Linter({ configType: 'flat' });
const config: Linter.Config[] = [{
  files: ['**/*.ts'],
  languageOptions: { parser: tseslint.parser },
  plugins: { gatehouse: { rules: { 'test-timeout': testTimeoutRule } } },
  rules: { 'gatehouse/test-timeout': 'error' },
}];

/** The rule's findings on a source: `messageId@line`. */
function findings(source: string): string[] {
  return linter.verify(source, config, { filename: 'x.test.ts' }).map((m) => {
    assert.equal(m.ruleId, 'gatehouse/test-timeout', m.message);
    return `${m.messageId}@${m.line}`;
  });
}

const IMPORT = "import { after, before, beforeEach, afterEach, describe, it, test } from 'node:test';\n";

test('a test or hook from node:test without a timeout is refused; with one it passes', { timeout: 10_000 }, () => {
  assert.deepEqual(findings(`${IMPORT}test('a', () => {});
test('b', { timeout: 5_000 }, () => {});
it('c', async () => {});
it('d', { skip: false, timeout: 1 }, async () => {});
before(async () => {});
after(() => {}, { timeout: 30_000 });
beforeEach(() => {});
afterEach(() => {}, { timeout: 1_000 });
describe('suite', () => { test('inside a suite', () => {}); });
`), ['missing@2', 'missing@4', 'missing@6', 'missing@8', 'missing@10']);
});

test('a timeout that bounds nothing is refused', { timeout: 10_000 }, () => {
  assert.deepEqual(findings(`${IMPORT}test('a', { timeout: Infinity }, () => {});
test('b', { timeout: 0 }, () => {});
test('c', { timeout: -1 }, () => {});
test('d', { timeout: undefined }, () => {});
test('e', { timeout: '5000' }, () => {});
`), ['unbounded@2', 'unbounded@3', 'unbounded@4', 'unbounded@5', 'unbounded@6']);
});

test('options named by a const, spread, or after other options count; so does the last timeout written', { timeout: 10_000 }, () => {
  assert.deepEqual(findings(`${IMPORT}const HANG = { timeout: 60_000 } as const;
const NOTHING = { skip: false };
test('a', HANG, async () => {});
test('b', { ...HANG, skip: false }, async () => {});
test('c', NOTHING, async () => {});
test('d', { ...HANG, timeout: Infinity }, async () => {});
test('e', { timeout: Infinity, ...HANG }, async () => {});
`), ['missing@6', 'unbounded@7']);
});

test('subtests, skipped and todo tests are not asked for one; .only is', { timeout: 10_000 }, () => {
  // The fixture's `.only` is built from a string so that no search for focused tests finds one in this file.
  assert.deepEqual(findings(`${IMPORT}test('parent', { timeout: 5_000 }, async (t) => {
  await t.test('sub', () => {});
  t.after(() => {});
});
test('skipped', { skip: 'no database here' }, () => {});
test('to do', { todo: true }, () => {});
test('maybe skipped', { skip: process.env.X === undefined }, () => {});
test.skip('skipped too', () => {});
test.todo('later');
test.${'only'}('focused', () => {});
`), ['missing@8', 'missing@11']);
});

test('the rule follows the binding: renamed and namespace imports count, a local function named test does not', { timeout: 10_000 }, () => {
  assert.deepEqual(findings(`import { test as check, before as setUp } from 'node:test';
import * as nodeTest from 'node:test';
import nodeTestDefault from 'node:test';
check('a', () => {});
setUp(() => {});
nodeTest.it('b', () => {});
nodeTest.test('c', { timeout: 1_000 }, () => {});
nodeTestDefault('d', () => {});
function local(test: (name: string, fn: () => void) => void): void { test('e', () => {}); }
const after = (fn: () => void): void => fn();
after(() => {});
`), ['missing@4', 'missing@5', 'missing@6', 'missing@8']);
});

test('the project lints its test files with the rule on, as an error', { timeout: 60_000 }, async () => {
  const eslint = new ESLint({ cwd: ROOT });
  for (const file of ['src/mqtt/topics.test.ts', 'test/e2e/npm-start.test.ts', 'test/storage/repository.contract.ts', 'bench/frame-scanner.test.ts']) {
    const resolved = await eslint.calculateConfigForFile(path.join(ROOT, file)) as { rules?: Record<string, unknown> };
    assert.deepEqual(resolved.rules?.['gatehouse/test-timeout'], [2], file);
  }
});
