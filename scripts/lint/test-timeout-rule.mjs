/**
 * ESLint rule `gatehouse/test-timeout`: every test and every hook taken from node:test names a
 * finite `timeout` in an options object written where it is called (or in a const it names), so a
 * broken limit fails its own test in seconds instead of hanging the run until CI's 90 minutes are up.
 *
 * Why a lint rule and not `--test-timeout`: on Node 20 that flag bounds each test FILE as a whole
 * (the runner's per-file subtest inherits it), not each test in it, so it cannot be sized to a test.
 *
 * Checked: test(), it() and their .only, and the module-level hooks before/after/beforeEach/afterEach
 * (node:test gives hooks no timeout at all by default, and a hook that starts a server can hang like
 * a test). Not checked: t.test() subtests and t.after() cleanups, which run inside a test that has
 * its own timeout; describe() blocks, whose tests each carry one; test.skip()/test.todo() and tests
 * whose literal options say `skip: 'why'` or `todo: true`, which do not run.
 */

const TESTS = new Set(['test', 'it']);
const HOOKS = new Set(['before', 'after', 'beforeEach', 'afterEach']);

/** The import that binds `name` where `node` is, when it comes from node:test: which export, or '*'. */
function nodeTestImport(sourceCode, node, name) {
  for (let scope = sourceCode.getScope(node); scope; scope = scope.upper) {
    const variable = scope.set.get(name);
    if (!variable) continue;
    const def = variable.defs[0];
    if (def?.type !== 'ImportBinding' || def.parent.source.value !== 'node:test') return undefined;
    if (def.node.type === 'ImportNamespaceSpecifier') return '*';
    if (def.node.type === 'ImportDefaultSpecifier') return 'test';
    return def.node.imported.type === 'Identifier' ? def.node.imported.name : def.node.imported.value;
  }
  return undefined;
}

/** The node:test function a call runs (`test`, `before`, ...), or undefined for anything else. */
function calledFunction(sourceCode, call) {
  const callee = call.callee;
  if (callee.type === 'Identifier') return nodeTestImport(sourceCode, call, callee.name);
  if (callee.type !== 'MemberExpression' || callee.computed || callee.object.type !== 'Identifier') return undefined;
  const object = nodeTestImport(sourceCode, call, callee.object.name);
  const property = callee.property.name;
  if (object === '*') return property; // import * as nodeTest; nodeTest.test(...)
  if (object !== undefined && TESTS.has(object)) return property === 'only' ? object : `${object}.${property}`;
  return undefined;
}

/** The object literal an argument is, directly or through a const initialised with one. */
function objectLiteral(sourceCode, argument) {
  if (argument.type === 'ObjectExpression') return argument;
  if (argument.type !== 'Identifier') return undefined;
  for (let scope = sourceCode.getScope(argument); scope; scope = scope.upper) {
    const variable = scope.set.get(argument.name);
    if (!variable) continue;
    const def = variable.defs[0];
    const init = def?.type === 'Variable' && def.parent.kind === 'const' ? def.node.init : undefined;
    // `{ timeout: 60_000 } as const` and `satisfies` wrappers are still the same literal.
    let value = init;
    while (value && (value.type === 'TSAsExpression' || value.type === 'TSSatisfiesExpression')) value = value.expression;
    return value?.type === 'ObjectExpression' ? value : undefined;
  }
  return undefined;
}

/** The `timeout` property of an options object, looking through `...SPREAD` of const literals. */
function timeoutProperty(sourceCode, object) {
  for (const p of [...object.properties].reverse()) { // the last one written wins, as in the object itself
    if (p.type === 'SpreadElement') {
      const spread = objectLiteral(sourceCode, p.argument);
      const found = spread && timeoutProperty(sourceCode, spread);
      if (found) return found;
    } else if (!p.computed && ((p.key.type === 'Identifier' && p.key.name === 'timeout') || (p.key.type === 'Literal' && p.key.value === 'timeout'))) {
      return p;
    }
  }
  return undefined;
}

/** A test marked `{ skip: 'why' }` or `{ todo: true }` in its literal options never runs its body. */
function neverRuns(sourceCode, call) {
  return call.arguments.some((argument) => objectLiteral(sourceCode, argument)?.properties.some((p) => p.type === 'Property' && !p.computed
    && p.key.type === 'Identifier' && (p.key.name === 'skip' || p.key.name === 'todo')
    && p.value.type === 'Literal' && (p.value.value === true || (typeof p.value.value === 'string' && p.value.value !== ''))));
}

const NOT_STATIC = Symbol('not static');

/** The value of a literal, a signed number, Infinity, NaN or undefined; NOT_STATIC for anything else. */
function staticValue(node) {
  if (node.type === 'Literal') return node.value;
  if (node.type === 'Identifier') return node.name === 'Infinity' ? Infinity : node.name === 'NaN' ? NaN : node.name === 'undefined' ? undefined : NOT_STATIC;
  if (node.type === 'UnaryExpression' && (node.operator === '-' || node.operator === '+')) {
    const inner = staticValue(node.argument);
    return typeof inner === 'number' ? (node.operator === '-' ? -inner : inner) : NOT_STATIC;
  }
  return NOT_STATIC;
}

/** 'ok', 'missing', or 'unbounded' (0, a negative number, Infinity, not a number). */
function timeoutOf(sourceCode, call) {
  if (neverRuns(sourceCode, call)) return 'ok';
  for (const argument of call.arguments) {
    const object = objectLiteral(sourceCode, argument);
    const property = object && timeoutProperty(sourceCode, object);
    if (!property) continue;
    const value = staticValue(property.value);
    if (value === NOT_STATIC) return 'ok'; // a name or an expression: its value is the author's to size
    return typeof value === 'number' && value > 0 && Number.isFinite(value) ? 'ok' : 'unbounded';
  }
  return 'missing';
}

export const testTimeoutRule = {
  meta: {
    type: 'problem',
    docs: { description: 'every node:test test and hook has a finite timeout' },
    messages: {
      missing: '{{name}}() has no { timeout }: give it one well above its normal time (docs/testing.md)',
      unbounded: '{{name}}() has a timeout that bounds nothing: use a finite number of milliseconds above 0',
    },
    schema: [],
  },
  create(context) {
    const sourceCode = context.sourceCode;
    return {
      CallExpression(call) {
        const name = calledFunction(sourceCode, call);
        if (name === undefined || (!TESTS.has(name) && !HOOKS.has(name))) return;
        const verdict = timeoutOf(sourceCode, call);
        if (verdict !== 'ok') context.report({ node: call.callee, messageId: verdict, data: { name } });
      },
    };
  },
};
