/**
 * `npm run mutate [-- MODULE…]`: mutation testing of the security-critical modules (docs/testing.md).
 *
 * For each module of MODULES: every mutant of its source files (operators flipped, conditions forced,
 * numeric boundaries moved by one, statements removed; see `mutantsOf`) is written, one at a time, into
 * a scratch copy of the tree (.tmp/mutate/tree-<pid>), and the module's test files are run against it, each
 * in a process of its own with a deadline. A mutant is killed when a test file fails, timed out when a
 * file passes its deadline (counted as killed: the tests stopped it from looking right), survived when
 * every file passes. The working tree's src/ is never written: a crash leaves a mutant only in the
 * scratch copy, which no later run uses (each makes its own, and removes it at the end).
 *
 * Not StrykerJS: its current major needs Node 22 (the project supports 20), its command runner runs the
 * same command for every mutant with no per-module test list, and it brings Babel along. The TypeScript
 * compiler, already a devDependency, parses the sources here.
 *
 * Options: `--list` prints the mutants without running tests; `--json FILE` writes the results;
 * `--recheck FILE[,FILE…]` (the JSON of an earlier run of the same modules, or of its shards) runs only that run's survivors
 * again, against the tests as they are now, and adds what they kill to that run's counts: for tests
 * written after a long run. Refused when a source changed since (its SHA-256 is in the JSON): then
 * every mutant is different, and only a whole run measures it. `--shard I/K` runs every K-th mutant of each
 * source starting with the I-th (0 ≤ I < K), so that K processes can share a long module; their results add up.
 */
import { spawn } from 'node:child_process';
import { clearTimeout, setTimeout } from 'node:timers';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/**
 * The modules measured: the sources mutated and the test files that must kill their mutants. Only
 * tests that run src/ through tsx in their own process belong here (not dist/: it is not rebuilt per
 * mutant). `only`: the functions or methods of a big file whose code is the module's subject.
 */
export const MODULES = {
  passwords: {
    sources: ['src/registry/passwords.ts'],
    // read-config: the range of N an operator may choose (MIN_SCRYPT_N … MAX_SCRYPT_N).
    tests: ['src/registry/passwords.test.ts', 'src/config/read-config.test.ts'],
  },
  'auth-chain': {
    sources: ['src/gateway/auth/chain.ts', 'src/gateway/auth/imported/imported-authenticator.ts'],
    tests: ['src/gateway/auth/chain.test.ts', 'src/gateway/auth/imported/imported-authenticator.test.ts'],
  },
  'auth-throttle': {
    sources: ['src/gateway/auth/throttle.ts'],
    tests: ['src/gateway/auth/throttle.test.ts'],
  },
  'auth-https': {
    sources: ['src/gateway/auth/https/circuit-breaker.ts', 'src/gateway/auth/https/result-cache.ts'],
    tests: ['src/gateway/auth/https/circuit-breaker.test.ts', 'src/gateway/auth/https/result-cache.test.ts'],
  },
  topics: {
    sources: ['src/mqtt/topics.ts'],
    tests: ['src/mqtt/topics.test.ts'],
  },
  framer: {
    sources: ['src/mqtt/framer.ts'],
    tests: ['src/mqtt/framer.test.ts'],
  },
  codec: {
    sources: ['src/mqtt/codec.ts'],
    tests: ['src/mqtt/codec.test.ts'],
  },
  acl: {
    sources: ['src/gateway/acl/session-acl.ts'],
    tests: ['src/gateway/acl/session-acl.test.ts'],
  },
  router: {
    sources: ['src/broker/router.ts'],
    tests: ['src/broker/router.test.ts'],
  },
  session: {
    // Flow control: the window, the queue, acknowledgements, resends, retained pacing (not the journal's bookkeeping).
    sources: [
      { file: 'src/broker/session.ts', only: ['queuedSize', 'restoreOutbound', 'deliver', '#enqueue', '#send', '#allocatePacketId', 'sendRetained', '#pumpRetained', 'drain', 'complete', 'received', 'resume', 'dropMessages'] },
      'src/broker/inflight-table.ts', 'src/broker/ring-queue.ts',
    ],
    tests: ['src/broker/ring-queue.test.ts', 'src/broker/inflight-table.test.ts', 'src/broker/session.test.ts'],
  },
  'sandbox-limits': {
    sources: [{ file: 'src/sandbox/quickjs-runner.ts', only: ['#startWatchdog', '#markBusy', '#rebuilding', '#checkStuck', '#lose', 'invoke', 'checkRange'] }],
    // invoke-checks: the ranges, the queue bound and the argument bytes, in seconds; limits: the rest.
    tests: ['src/sandbox/invoke-checks.test.ts', 'src/sandbox/limits.test.ts'],
  },
};

// ---------------------------------------------------------------------------------------------------
// Mutants

/** Relational boundaries, equality negated, arithmetic, logic and bitwise swaps (Stryker's names in docs). */
const BINARY_SWAPS = new Map([
  [ts.SyntaxKind.LessThanToken, ['<=']],
  [ts.SyntaxKind.LessThanEqualsToken, ['<']],
  [ts.SyntaxKind.GreaterThanToken, ['>=']],
  [ts.SyntaxKind.GreaterThanEqualsToken, ['>']],
  [ts.SyntaxKind.EqualsEqualsEqualsToken, ['!==']],
  [ts.SyntaxKind.ExclamationEqualsEqualsToken, ['===']],
  [ts.SyntaxKind.EqualsEqualsToken, ['!=']],
  [ts.SyntaxKind.ExclamationEqualsToken, ['==']],
  [ts.SyntaxKind.PlusToken, ['-']],
  [ts.SyntaxKind.MinusToken, ['+']],
  [ts.SyntaxKind.AsteriskToken, ['/']],
  [ts.SyntaxKind.SlashToken, ['*']],
  [ts.SyntaxKind.PercentToken, ['*']],
  [ts.SyntaxKind.AmpersandAmpersandToken, ['||']],
  [ts.SyntaxKind.BarBarToken, ['&&']],
  [ts.SyntaxKind.QuestionQuestionToken, ['&&']],
  [ts.SyntaxKind.AmpersandToken, ['|']],
  [ts.SyntaxKind.BarToken, ['&']],
  [ts.SyntaxKind.CaretToken, ['&']],
  [ts.SyntaxKind.LessThanLessThanToken, ['>>']],
  [ts.SyntaxKind.GreaterThanGreaterThanToken, ['<<']],
  [ts.SyntaxKind.PlusEqualsToken, ['-=']],
  [ts.SyntaxKind.MinusEqualsToken, ['+=']],
  [ts.SyntaxKind.AsteriskEqualsToken, ['/=']],
  [ts.SyntaxKind.AmpersandAmpersandEqualsToken, ['||=']],
  [ts.SyntaxKind.BarBarEqualsToken, ['&&=']],
  [ts.SyntaxKind.QuestionQuestionEqualsToken, ['&&=']],
]);

const METHOD_SWAPS = new Map([
  ['min', 'max'], ['max', 'min'], ['startsWith', 'endsWith'], ['endsWith', 'startsWith'],
  ['some', 'every'], ['every', 'some'],
]);

const STRINGISH = new Set([ts.SyntaxKind.StringLiteral, ts.SyntaxKind.TemplateExpression, ts.SyntaxKind.NoSubstitutionTemplateLiteral]);

/** Calls whose removal only silences a log line: not worth a mutant each. */
const LOG_CALL = /^(this\.)?#?(log|logger|console)\b|\.(#?log|#?logger)\??\.(trace|debug|info|warn|error|fatal)\b/;

function nameOf(node) {
  if ((ts.isFunctionDeclaration(node) || ts.isMethodDeclaration(node) || ts.isGetAccessorDeclaration(node) || ts.isSetAccessorDeclaration(node)) && node.name) {
    return node.name.getText();
  }
  if ((ts.isArrowFunction(node) || ts.isFunctionExpression(node)) && ts.isVariableDeclaration(node.parent)) return node.parent.name.getText();
  return undefined;
}

/**
 * Every mutant of one TypeScript source: `{ start, end, replacement, line, column, operator, original }`,
 * where [start, end) of `text` is replaced. `only`: names of the functions to mutate (all when absent).
 */
export function mutantsOf(text, fileName = 'file.ts', only = undefined) {
  const sf = ts.createSourceFile(fileName, text, ts.ScriptTarget.ES2023, true, ts.ScriptKind.TS);
  const mutants = [];
  const add = (node, replacement, operator, start = node.getStart(sf), end = node.getEnd()) => {
    const { line, character } = sf.getLineAndCharacterOfPosition(start);
    mutants.push({ start, end, replacement, operator, original: text.slice(start, end), line: line + 1, column: character + 1 });
  };
  const visit = (node, inside) => {
    // Types, imports and declarations of shape change nothing at run time.
    if (ts.isTypeNode(node) || ts.isImportDeclaration(node) || ts.isExportDeclaration(node) || ts.isInterfaceDeclaration(node)
      || ts.isTypeAliasDeclaration(node) || ts.isEnumDeclaration(node)) return;
    const name = nameOf(node);
    const within = inside || (only === undefined) || (name !== undefined && only.includes(name));
    if (within) mutate(node);
    ts.forEachChild(node, (child) => visit(child, within));
  };
  const mutate = (node) => {
    if (ts.isBinaryExpression(node)) {
      const swaps = BINARY_SWAPS.get(node.operatorToken.kind);
      const concatenation = node.operatorToken.kind === ts.SyntaxKind.PlusToken || node.operatorToken.kind === ts.SyntaxKind.PlusEqualsToken;
      if (swaps && !(concatenation && (STRINGISH.has(node.left.kind) || STRINGISH.has(node.right.kind)))) {
        for (const to of swaps) add(node.operatorToken, to, `${node.operatorToken.getText()} → ${to}`);
      }
    }
    if ((ts.isIfStatement(node) || ts.isConditionalExpression(node)) && !isBooleanLiteral(ts.isIfStatement(node) ? node.expression : node.condition)) {
      const condition = ts.isIfStatement(node) ? node.expression : node.condition;
      add(condition, 'true', 'condition → true');
      add(condition, 'false', 'condition → false');
    }
    if (ts.isWhileStatement(node) || ts.isForStatement(node)) {
      const condition = ts.isWhileStatement(node) ? node.expression : node.condition;
      if (condition !== undefined && !isBooleanLiteral(condition)) add(condition, 'false', 'loop condition → false');
    }
    if (ts.isPrefixUnaryExpression(node) && node.operator === ts.SyntaxKind.ExclamationToken) {
      add(node, `(${node.operand.getText()})`, '!x → x');
    }
    if ((ts.isPrefixUnaryExpression(node) || ts.isPostfixUnaryExpression(node))
      && (node.operator === ts.SyntaxKind.PlusPlusToken || node.operator === ts.SyntaxKind.MinusMinusToken)) {
      const to = node.operator === ts.SyntaxKind.PlusPlusToken ? '--' : '++';
      const operand = node.operand.getText();
      add(node, ts.isPrefixUnaryExpression(node) ? `${to}${operand}` : `${operand}${to}`, `${node.operator === ts.SyntaxKind.PlusPlusToken ? '++' : '--'} → ${to}`);
    }
    if (node.kind === ts.SyntaxKind.TrueKeyword) add(node, 'false', 'true → false');
    if (node.kind === ts.SyntaxKind.FalseKeyword) add(node, 'true', 'false → true');
    if (ts.isNumericLiteral(node)) {
      const value = Number(node.text);
      if (Number.isFinite(value) && !(ts.isPropertyAssignment(node.parent) && node.parent.name === node)) {
        add(node, String(value + 1), `${node.getText()} → ${value + 1}`);
        if (value > 0) add(node, String(value - 1), `${node.getText()} → ${value - 1}`);
      }
    }
    if (ts.isPropertyAccessExpression(node) && ts.isCallExpression(node.parent) && node.parent.expression === node) {
      const to = METHOD_SWAPS.get(node.name.text);
      if (to !== undefined) add(node.name, to, `.${node.name.text}() → .${to}()`);
    }
    if (ts.isExpressionStatement(node) && !LOG_CALL.test(node.expression.getText()) && removable(node.expression)) {
      add(node, ';', 'statement removed');
    }
  };
  visit(sf, false);
  return mutants;
}

function isBooleanLiteral(node) {
  return node.kind === ts.SyntaxKind.TrueKeyword || node.kind === ts.SyntaxKind.FalseKeyword;
}

/** Calls, assignments, increments and deletes: statements whose absence changes state. */
function removable(expression) {
  let e = expression;
  while (ts.isAwaitExpression(e) || ts.isVoidExpression(e) || ts.isParenthesizedExpression(e)) e = e.expression;
  if (ts.isCallExpression(e)) return !(ts.isIdentifier(e.expression) && e.expression.text === 'super');
  if (ts.isBinaryExpression(e)) return e.operatorToken.kind >= ts.SyntaxKind.FirstAssignment && e.operatorToken.kind <= ts.SyntaxKind.LastAssignment;
  return ts.isPrefixUnaryExpression(e) || ts.isPostfixUnaryExpression(e) || ts.isDeleteExpression(e);
}

export function applyMutant(text, mutant) {
  return text.slice(0, mutant.start) + mutant.replacement + text.slice(mutant.end);
}

// ---------------------------------------------------------------------------------------------------
// Running

/** The scratch copy: what the tests load (src, test, scripts, types, config), dist and packages linked. */
export function makeScratchTree(root, scratch) {
  fs.rmSync(scratch, { recursive: true, force: true });
  fs.mkdirSync(scratch, { recursive: true });
  for (const entry of ['src', 'test', 'scripts', 'types', 'package.json', 'tsconfig.json']) {
    const from = path.join(root, entry);
    if (fs.existsSync(from)) fs.cpSync(from, path.join(scratch, entry), { recursive: true });
  }
  for (const entry of ['node_modules', 'dist']) {
    const from = path.join(root, entry);
    if (fs.existsSync(from)) fs.symlinkSync(from, path.join(scratch, entry), 'dir');
  }
}

/** Runs one test file in `cwd`; resolves 'pass', 'fail' or 'timeout' (the whole process group is killed). */
export function runTestFile(cwd, file, timeoutMs) {
  return new Promise((resolve) => {
    const started = Date.now();
    const child = spawn(process.execPath, ['--no-node-snapshot', '--import', 'tsx', file], {
      cwd, detached: true, stdio: ['ignore', 'ignore', 'ignore'], env: { ...process.env, GATEHOUSE_MUTATION_RUN: '1' },
    });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try { process.kill(-child.pid, 'SIGKILL'); } catch { /* already gone */ }
    }, timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      // Workers or children the test left behind go with their group.
      try { process.kill(-child.pid, 'SIGKILL'); } catch { /* none left */ }
      resolve({ outcome: timedOut ? 'timeout' : code === 0 ? 'pass' : 'fail', ms: Date.now() - started });
    });
  });
}

const sameMutant = (a, b) => a.file === b.file && a.line === b.line && a.column === b.column && a.operator === b.operator && a.original === b.original;

/**
 * Measures the modules of `names` from `modules` on a scratch copy of `root`. Returns one result per
 * module: `{ name, killed, survived, timeout, total, score, survivors: [{ file, line, operator, original }],
 * sources: { file: sha256 }, seconds, rechecked }`. `previous`: results of an earlier run (by module name);
 * a module found there runs only its survivors, and its counts start from that run's (`rechecked`: how
 * many survivors ran again).
 */
export async function runMutation({ root, modules, names, scratch, previous = [], shard = undefined, log = (line) => process.stdout.write(`${line}\n`) }) {
  makeScratchTree(root, scratch);
  const results = [];
  for (const name of names) {
    const module = modules[name];
    const earlier = previous.find((r) => r.name === name);
    const started = Date.now();
    // The unmutated tree must pass, and its times set each file's deadline.
    const deadlines = new Map();
    for (const test of module.tests) {
      const { outcome, ms } = await runTestFile(scratch, test, 600_000);
      if (outcome !== 'pass') throw new Error(`${name}: ${test} does not pass on the unmutated tree (${outcome})`);
      // Generous: a loaded machine may run a file several times slower than the baseline did.
      deadlines.set(test, Math.max(10_000, 5 * ms + 5_000));
    }
    const tests = [...module.tests].sort((a, b) => deadlines.get(a) - deadlines.get(b));
    const result = { name, killed: 0, survived: 0, timeout: 0, total: 0, score: 0, survivors: [], sources: {}, seconds: 0, rechecked: 0, ...(shard ? { shard: `${shard.index}/${shard.count}` } : {}) };
    if (earlier !== undefined) {
      Object.assign(result, { killed: earlier.killed, timeout: earlier.timeout, total: earlier.total - earlier.survived, rechecked: earlier.survived });
    }
    for (const source of module.sources) {
      const { file, only } = typeof source === 'string' ? { file: source, only: undefined } : source;
      const target = path.join(scratch, file);
      // From the copy, not the working tree: the run measures the tree as it was when it started.
      const original = fs.readFileSync(target, 'utf8');
      result.sources[file] = createHash('sha256').update(original).digest('hex');
      let mutants = mutantsOf(original, file, only);
      if (shard !== undefined) mutants = mutants.filter((_, i) => i % shard.count === shard.index);
      if (earlier !== undefined) {
        if (earlier.sources?.[file] !== result.sources[file]) throw new Error(`${name}: ${file} changed since the run being rechecked: run the module whole`);
        const survivors = earlier.survivors.filter((s) => s.file === file);
        mutants = mutants.filter((m) => survivors.some((s) => sameMutant(s, { file, ...m })));
        if (mutants.length !== survivors.length) throw new Error(`${name}: ${file}: survivors of the earlier run not found among its mutants`);
      }
      log(`${name}: ${file}: ${mutants.length} mutants${earlier === undefined ? '' : ' (survivors of the earlier run)'}`);
      try {
        for (const mutant of mutants) {
          fs.writeFileSync(target, applyMutant(original, mutant));
          let outcome = 'pass';
          for (const test of tests) {
            ({ outcome } = await runTestFile(scratch, test, deadlines.get(test)));
            if (outcome !== 'pass') break;
          }
          result.total++;
          const where = `${file}:${mutant.line}:${mutant.column}`;
          if (outcome === 'fail') result.killed++;
          else if (outcome === 'timeout') result.timeout++;
          else {
            result.survived++;
            result.survivors.push({ file, line: mutant.line, column: mutant.column, operator: mutant.operator, original: mutant.original });
          }
          log(`  ${outcome === 'pass' ? 'SURVIVED' : outcome === 'fail' ? 'killed  ' : 'timeout '} ${where}  ${mutant.operator}${mutant.operator.includes('→') && !mutant.operator.startsWith(mutant.original) ? `  [${oneLine(mutant.original)}]` : ''}`);
        }
      } finally {
        fs.writeFileSync(target, original);
      }
    }
    result.score = result.total === 0 ? 100 : Math.floor((10_000 * (result.killed + result.timeout)) / result.total) / 100;
    result.seconds = Math.round((Date.now() - started) / 1000) + (earlier?.seconds ?? 0);
    results.push(result);
  }
  return results;
}

function oneLine(text) {
  const flat = text.replace(/\s+/g, ' ');
  return flat.length > 60 ? `${flat.slice(0, 57)}…` : flat;
}

/**
 * One result per module from the results of runs that shared it (`--shard`): counts added up, survivors
 * together, the longest time (the shards ran side by side). Refused unless the shards are all there
 * (0/K … K−1/K, once each) and measured the same sources.
 */
export function mergeShards(results) {
  const byName = new Map();
  for (const r of results) byName.set(r.name, [...(byName.get(r.name) ?? []), r]);
  return [...byName.values()].map((parts) => {
    const [first] = parts;
    if (parts.length === 1 && first.shard === undefined) return first;
    const count = Number(String(first.shard).split('/')[1]);
    const seen = parts.map((p) => p.shard).sort();
    const all = Array.from({ length: count }, (_, i) => `${i}/${count}`).sort();
    if (JSON.stringify(seen) !== JSON.stringify(all)) throw new Error(`${first.name}: shards ${seen.join(', ')} are not all of ${count}`);
    if (parts.some((p) => JSON.stringify(p.sources) !== JSON.stringify(first.sources))) throw new Error(`${first.name}: the shards measured different sources`);
    const merged = { ...first, killed: 0, survived: 0, timeout: 0, total: 0, survivors: [], seconds: 0, rechecked: 0 };
    delete merged.shard;
    for (const p of parts) {
      for (const key of ['killed', 'survived', 'timeout', 'total', 'rechecked']) merged[key] += p[key];
      merged.survivors.push(...p.survivors);
      merged.seconds = Math.max(merged.seconds, p.seconds);
    }
    merged.score = merged.total === 0 ? 100 : Math.floor((10_000 * (merged.killed + merged.timeout)) / merged.total) / 100;
    return merged;
  });
}

export function formatResults(results) {
  const lines = ['module            mutants  killed  timeout  survived    score   time'];
  for (const r of results) {
    lines.push(`${(r.shard ? `${r.name} ${r.shard}` : r.name).padEnd(16)} ${String(r.total).padStart(8)} ${String(r.killed).padStart(7)} ${String(r.timeout).padStart(8)} ${String(r.survived).padStart(9)} ${r.score.toFixed(2).padStart(7)} % ${String(r.seconds).padStart(5)} s`
      + (r.rechecked > 0 ? `  (${r.rechecked} survivors of an earlier run ran again)` : ''));
  }
  lines.push('(timeouts count as killed in the score; time: both runs when rechecked)');
  for (const r of results) {
    for (const s of r.survivors) lines.push(`survivor ${r.name}: ${s.file}:${s.line}:${s.column}  ${s.operator}  [${oneLine(s.original)}]`);
  }
  return lines.join('\n');
}

async function main(argv) {
  const list = argv.includes('--list');
  const jsonAt = argv.indexOf('--json');
  const json = jsonAt === -1 ? undefined : argv[jsonAt + 1];
  const recheckAt = argv.indexOf('--recheck');
  // Several files (comma-separated): the shards of one run, merged.
  const previous = recheckAt === -1 ? [] : mergeShards(argv[recheckAt + 1].split(',').flatMap((file) => JSON.parse(fs.readFileSync(file, 'utf8'))));
  const shardAt = argv.indexOf('--shard');
  const [index, count] = shardAt === -1 ? [] : argv[shardAt + 1].split('/').map(Number);
  const shard = shardAt === -1 ? undefined : { index, count };
  if (shard !== undefined && !(Number.isInteger(index) && Number.isInteger(count) && index >= 0 && index < count)) {
    process.stderr.write('--shard I/K: 0 ≤ I < K\n');
    process.exit(2);
  }
  const valueAt = new Set([jsonAt, recheckAt, shardAt].filter((i) => i !== -1).map((i) => i + 1));
  const names = argv.filter((a, i) => !a.startsWith('--') && !valueAt.has(i));
  for (const name of names) {
    if (!(name in MODULES)) {
      process.stderr.write(`unknown module ${name}; modules: ${Object.keys(MODULES).join(', ')}\n`);
      process.exit(2);
    }
  }
  const chosen = names.length > 0 ? names : Object.keys(MODULES);
  if (list) {
    for (const name of chosen) {
      for (const source of MODULES[name].sources) {
        const { file, only } = typeof source === 'string' ? { file: source, only: undefined } : source;
        for (const m of mutantsOf(fs.readFileSync(path.join(ROOT, file), 'utf8'), file, only)) {
          process.stdout.write(`${name} ${file}:${m.line}:${m.column}  ${m.operator}  [${oneLine(m.original)}]\n`);
        }
      }
    }
    return;
  }
  // A tree per run, so that two runs (of different modules) can go side by side.
  const scratch = path.join(ROOT, '.tmp', 'mutate', `tree-${process.pid}`);
  try {
    const results = await runMutation({ root: ROOT, modules: MODULES, names: chosen, scratch, previous, shard });
    const report = formatResults(results);
    process.stdout.write(`\n${report}\n`);
    fs.writeFileSync(path.join(ROOT, '.tmp', 'mutate', `report-${chosen.join('-')}${shard ? `-shard-${shard.index}-of-${shard.count}` : ''}.txt`), `${report}\n`);
    if (json !== undefined) fs.writeFileSync(json, JSON.stringify(results, null, 2));
  } finally {
    fs.rmSync(scratch, { recursive: true, force: true });
  }
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  await main(process.argv.slice(2));
}
