import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { performance } from 'node:perf_hooks';
import { parentPort, workerData } from 'node:worker_threads';
import releaseSync from '@jitl/quickjs-wasmfile-release-sync';
import {
  newQuickJSWASMModuleFromVariant, newVariant,
  type QuickJSContext, type QuickJSHandle, type QuickJSRuntime, type QuickJSSyncVariant,
} from 'quickjs-emscripten-core';
import { lowerThreadPriority } from '../core/thread-priority.ts';
import { lineFromStack } from './errors.ts';
import { hostHash, hostHmac, hostTimingSafeEqual } from './host-crypto.ts';
import { entryLookupSource, PRELUDE_SOURCE } from './prelude.ts';
import { SANDBOX_LIMITS, type InvokeErrorKind, type LogLine } from './types.ts';
import {
  SETUP_TIMEOUT_MS,
  type CallAnswer, type CallRequest, type CompileFailure, type FromWorker, type PackedCalls, type PreparedArg, type ScriptSpec,
  type ToWorker,
} from './worker-protocol.ts';

/*
 * A sandbox worker thread. Each compiled script gets its own QuickJS WebAssembly instance with its
 * own linear memory, created with a hard maximum: the memory limit is the wasm memory's size cap,
 * which holds for every allocation (QuickJS's own malloc accounting cannot see sizes in an
 * Emscripten build, so `setMemoryLimit` alone lets typed arrays through). A memory failure throws
 * the instance away, so one script's garbage never outlives its failure and never touches another
 * script's heap.
 *
 * Calls run one at a time to completion: the script, then every job its promises queued. The time
 * limit is wall-clock time checked by QuickJS's interrupt handler, so time spent in host functions
 * (hashing) counts toward it. This thread, not the event loop, is what a looping script occupies.
 */

const port = parentPort;
if (!port) throw new Error('quickjs-worker.ts must run as a worker thread');

lowerThreadPriority((workerData as { niceness?: number } | null)?.niceness ?? 0);

/** The module's declared initial memory: 16 MiB in 64 KiB pages, the smallest it links with. */
const INITIAL_PAGES = 256;
const PAGES_PER_MB = 16;
/** What the engine itself takes of its memory (data, C stack, runtime, prelude, allocator
 * overhead), measured: 16 MiB of wasm memory leave a script 10.75 MiB of typed arrays, 32 MiB
 * leave 25.3 MiB. Added to `memoryMb`, so a script can allocate about what its limit says (at
 * least ~10 MiB, the floor of the initial memory). */
const ENGINE_MB = 6;

// The package's types are CommonJS declarations, so TypeScript sees the ES module's default export
// one level down; at run time Node loads the ES build, whose default is the variant itself.
const loaded = releaseSync as unknown as QuickJSSyncVariant | { default: QuickJSSyncVariant };
const variant = 'default' in loaded ? loaded.default : loaded;

const require = createRequire(import.meta.url);
// Compiled once per worker; every script instance is instantiated from it.
const wasmModule = new WebAssembly.Module(readFileSync(require.resolve('@jitl/quickjs-wasmfile-release-sync/wasm')));

interface CallState {
  id: number;
  deadline: number;
  /** The interrupt handler stopped this call. An async function turns even QuickJS's uncatchable
   * interrupt into a rejection, so this flag, not the error that surfaces, decides "timeout". */
  interrupted: boolean;
  logs: LogLine[];
  truncated: boolean;
}

interface Instance {
  runtime: QuickJSRuntime;
  context: QuickJSContext;
  invoke: QuickJSHandle;
  /** The prelude's invokeBatch(buffer, start): packed calls in one crossing. */
  invokeBatch: QuickJSHandle;
  heap: HeapWatch;
}

/** Whether the instance's allocator ran out of memory since `exhausted` was last cleared. */
interface HeapWatch {
  exhausted: boolean;
}

/** How many sizes Emscripten's `emscripten_resize_heap` tries (20 %, 10 % and 5 % above the
 * current size, or the request if larger) before malloc returns NULL. */
const GROW_ATTEMPTS = 3;

/**
 * The instance's memory, capped, with a watch on its growth. An allocation fails when the memory
 * cannot grow, which happens before the cap is reached (the last step Emscripten asks for is 5 %
 * of the current size), so the memory's size alone does not say the heap ran out. QuickJS turns
 * the failure into an exception that a promise job can swallow; the refused growth is the one
 * signal that always reaches us.
 */
function cappedMemory(maxPages: number): { memory: WebAssembly.Memory; heap: HeapWatch } {
  const memory = new WebAssembly.Memory({ initial: INITIAL_PAGES, maximum: maxPages });
  const heap: HeapWatch = { exhausted: false };
  let refusedInARow = 0;
  const grow = memory.grow.bind(memory);
  memory.grow = (delta: number): number => {
    try {
      const previous = grow(delta);
      refusedInARow = 0;
      return previous;
    } catch (error) {
      if (++refusedInARow >= GROW_ATTEMPTS) heap.exhausted = true;
      throw error;
    }
  };
  return { memory, heap };
}

interface Script {
  spec: ScriptSpec;
  instance: Instance | undefined;
}

/**
 * The scripts of this worker. Each has a wasm instance of its own, so an instance is never freed
 * from inside: dropping the last reference frees its memory whole. (Freeing the QuickJS runtime
 * first would only assert, and abort, when a failed compile or a trap left objects alive in it.)
 */
const scripts = new Map<number, Script>();
/** The call running now; the interrupt handler and console read it. */
let current: CallState = { id: 0, deadline: Infinity, logs: [], truncated: false, interrupted: false };

class CompileFailed extends Error {
  readonly failure: CompileFailure;
  constructor(failure: CompileFailure) {
    super(failure.detail);
    this.failure = failure;
  }
}

/** What QuickJS reported, read defensively (a dump can itself fail when the heap is full). */
interface Thrown { name: string; message: string; stack: string }

function readError(context: QuickJSContext, handle: QuickJSHandle): Thrown {
  try {
    const value = context.dump(handle) as unknown;
    if (value !== null && typeof value === 'object') {
      const { name, message, stack } = value as Record<string, unknown>;
      return {
        name: typeof name === 'string' ? name : '',
        message: typeof message === 'string' ? message : JSON.stringify(value),
        stack: typeof stack === 'string' ? stack : '',
      };
    }
    return { name: '', message: String(value), stack: '' };
  } catch {
    return { name: 'InternalError', message: 'out of memory', stack: '' };
  } finally {
    handle.dispose();
  }
}

function isTimeout(error: Thrown): boolean {
  return error.name === 'InternalError' && error.message === 'interrupted';
}

function isMemory(error: Thrown): boolean {
  return error.message === 'out of memory';
}

function hostFunctions(context: QuickJSContext): QuickJSHandle[] {
  const read = (handle: QuickJSHandle | undefined): unknown => {
    if (handle === undefined) return undefined;
    const type = context.typeof(handle);
    if (type === 'string') return context.getString(handle);
    if (type === 'undefined') return undefined;
    if (type === 'object') {
      try {
        // A copy: the view points into the instance's memory, which the next allocation may move.
        return new Uint8Array(context.getArrayBuffer(handle).consume((view) => view.value.slice()));
      } catch {
        return context.dump(handle) as unknown;
      }
    }
    return context.dump(handle) as unknown;
  };
  const answer = (compute: () => string | Uint8Array | boolean) => {
    // Time in host code counts toward the limit. QuickJS asks the interrupt handler only every
    // few thousand operations, which is long when each is a slow hash; so a host call past the
    // deadline refuses to run, and a script that swallows that error spins only until the next
    // check.
    if (performance.now() > current.deadline) {
      current.interrupted = true;
      return { error: context.newError({ name: 'InternalError', message: 'interrupted' }) };
    }
    try {
      const value = compute();
      if (typeof value === 'boolean') return value ? context.true : context.false;
      if (typeof value === 'string') return context.newString(value);
      return context.newArrayBuffer(value.slice().buffer);
    } catch (error) {
      const name = error instanceof Error ? error.name : 'Error';
      return { error: context.newError({ name, message: error instanceof Error ? error.message : String(error) }) };
    }
  };
  const log = context.newFunction('hostLog', (idHandle, levelHandle, textHandle) => {
    const id = context.getNumber(idHandle);
    if (id !== current.id || id === 0) return; // top-level code at compile time
    const level = context.getString(levelHandle);
    if (level === 'truncated' || current.logs.length >= SANDBOX_LIMITS.logLinesPerCall) {
      current.truncated = true;
      return;
    }
    const lineLevel = level === 'warn' || level === 'error' ? level : 'log';
    current.logs.push({ level: lineLevel, message: context.getString(textHandle).slice(0, SANDBOX_LIMITS.logLineChars) });
  });
  const hmac = context.newFunction('hostHmac', (alg, key, data, encoding) =>
    answer(() => hostHmac(read(alg), read(key), read(data), read(encoding))));
  const hash = context.newFunction('hostHash', (alg, data, encoding) =>
    answer(() => hostHash(read(alg), read(data), read(encoding))));
  const equal = context.newFunction('hostTimingSafeEqual', (a, b) =>
    answer(() => hostTimingSafeEqual(read(a), read(b))));
  // invokeBatch's step between two calls: the previous call's answer in, the next call started.
  const next = context.newFunction('hostNext', (rawHandle) => {
    // Always a string from the prelude; '' when no call has answered yet.
    const raw = context.getString(rawHandle);
    return packedStep(raw === '' ? undefined : raw) ? context.true : context.false;
  });
  return [log, hmac, hash, equal, next];
}

/** A SyntaxError from the parser has a bare location frame ("    at fn.js:3:27"); one thrown by
 * running code has a function frame ("    at <eval> (fn.js:2:14)"). */
function syntaxLocation(error: Thrown, filename: string): { line: number; column: number } | undefined {
  if (error.name !== 'SyntaxError') return undefined;
  const first = error.stack.split('\n')[0]?.trim() ?? '';
  const prefix = `at ${filename}:`;
  const match = first.startsWith(prefix) ? /^(\d+):(\d+)$/.exec(first.slice(prefix.length)) : null;
  return match ? { line: Number(match[1]), column: Number(match[2]) } : undefined;
}

/** QuickJS names what it expected at the point the input ran out ("invalid property name" for
 * `return {`); saying the input ended is what tells the operator to look for a missing brace. */
function syntaxDetail(message: string, source: string, where: { line: number; column: number }): string {
  const lines = source.split('\n');
  const last = lines[lines.length - 1] ?? '';
  const atEnd = where.line > lines.length || (where.line === lines.length && where.column > last.trimEnd().length);
  // Capitalized as a sentence, as operators know these messages from browsers and Node.
  const text = atEnd ? 'unexpected end of input' : message;
  return text.charAt(0).toUpperCase() + text.slice(1);
}

function initFailure(error: Thrown, spec: ScriptSpec): CompileFailure {
  if (current.interrupted || isTimeout(error)) return { reason: 'init-timeout', detail: `top-level code ran longer than ${spec.timeoutMs} ms` };
  if (isMemory(error)) return { reason: 'init-memory', detail: 'top-level code exceeded the memory limit' };
  const line = lineFromStack(error.stack, spec.filename);
  const detail = error.name ? `${error.name}: ${error.message}` : error.message;
  return line === undefined ? { reason: 'init-threw', detail } : { reason: 'init-threw', detail, line };
}

async function createInstance(spec: ScriptSpec): Promise<Instance> {
  const maxPages = Math.max(INITIAL_PAGES, (spec.memoryMb + ENGINE_MB) * PAGES_PER_MB);
  const { memory, heap } = cappedMemory(maxPages);
  const module = await newQuickJSWASMModuleFromVariant(newVariant(variant, { wasmModule, wasmMemory: memory }));
  const runtime = module.newRuntime();
  runtime.setInterruptHandler(() => {
    // Once past the deadline every check says stop, so code that catches the interruption (the
    // prelude, an async function) cannot keep running.
    if (performance.now() <= current.deadline) return false;
    current.interrupted = true;
    return true;
  });
  const context = runtime.newContext();
  const fail = (failure: CompileFailure): never => {
    throw new CompileFailed(failure);
  };
  try {
    current = { id: 0, deadline: performance.now() + SETUP_TIMEOUT_MS, logs: [], truncated: false, interrupted: false };
    const setup = context.unwrapResult(context.evalCode(PRELUDE_SOURCE, 'gatehouse:prelude'));
    const config = JSON.stringify({
      maxLines: SANDBOX_LIMITS.logLinesPerCall,
      maxChars: SANDBOX_LIMITS.logLineChars,
      requireObject: spec.requireObject,
      maxResultChars: spec.maxResultChars,
    });
    const configHandle = context.newString(config);
    const hosts = hostFunctions(context);
    const bindEntry = context.unwrapResult(context.callFunction(setup, context.undefined, configHandle, ...hosts));
    for (const handle of [setup, configHandle, ...hosts]) handle.dispose();

    current = { id: 0, deadline: performance.now() + spec.timeoutMs, logs: [], truncated: false, interrupted: false };
    // Always a classic script: QuickJS would otherwise detect `export` and run it as a module.
    const ran = context.evalCode(spec.source, spec.filename, { type: 'global' });
    if (ran.error) {
      const error = readError(context, ran.error);
      if (current.interrupted) fail({ reason: 'init-timeout', detail: `top-level code ran longer than ${spec.timeoutMs} ms` });
      const where = syntaxLocation(error, spec.filename);
      if (where) fail({ reason: 'syntax', detail: syntaxDetail(error.message, spec.source, where), ...where });
      fail(initFailure(error, spec));
    } else {
      ran.value.dispose();
    }
    const lookup = context.evalCode(entryLookupSource(spec.entry), 'gatehouse:entry');
    if (lookup.error) fail(initFailure(readError(context, lookup.error), spec));
    const entry = (lookup as { value: QuickJSHandle }).value;
    if (context.typeof(entry) !== 'function') {
      entry.dispose();
      fail({
        reason: 'missing-entry',
        detail: `the script does not define a function named ${spec.entry} (a top-level function or module.exports.${spec.entry})`,
      });
    }
    const pair = context.unwrapResult(context.callFunction(bindEntry, context.undefined, entry));
    const invoke = context.getProp(pair, 0);
    const invokeBatch = context.getProp(pair, 1);
    for (const handle of [pair, entry, bindEntry]) handle.dispose();
    return { runtime, context, invoke, invokeBatch, heap };
  } catch (error) {
    // Nothing is freed inside: the instance is dropped whole (see `scripts`).
    if (error instanceof CompileFailed) throw error;
    // The prelude itself failed: out of memory at setup, or a wasm trap.
    throw new CompileFailed({ reason: 'init-memory', detail: `the sandbox could not be set up: ${(error as Error).message}` });
  }
}


function argHandle(context: QuickJSContext, arg: PreparedArg): QuickJSHandle {
  switch (arg.code) {
    case 'j': return context.newString(arg.json);
    case 'b': return context.newArrayBuffer(arg.bytes.buffer.slice(arg.bytes.byteOffset, arg.bytes.byteOffset + arg.bytes.byteLength));
    case 'r': {
      const value = arg.value;
      if (value === null) return context.null;
      if (value === undefined) return context.undefined;
      if (typeof value === 'string') return context.newString(value);
      if (typeof value === 'number') return context.newNumber(value);
      return value ? context.true : context.false;
    }
  }
}

type Outcome = { raw: string } | { error: { kind: InvokeErrorKind; message: string } };

function failure(error: Thrown, timeoutMs: number, spec: ScriptSpec): Outcome {
  if (isTimeout(error)) return { error: { kind: 'timeout', message: `ran longer than ${timeoutMs} ms` } };
  if (isMemory(error)) return { error: { kind: 'memory', message: `memory limit of ${spec.memoryMb} MB reached` } };
  return { error: { kind: 'internal', message: error.name ? `${error.name}: ${error.message}` : error.message } };
}

/** A call answered with a promise: run what it queued. No timers or I/O exist in here, so whatever
 * is still pending afterwards can never settle. */
function settlePromise(instance: Instance, value: QuickJSHandle, timeoutMs: number, spec: ScriptSpec): Outcome {
  const { context, runtime } = instance;
  const jobs = runtime.executePendingJobs();
  if (jobs.error) return failure(readError(context, jobs.error), timeoutMs, spec);
  const state = context.getPromiseState(value);
  if (state.type === 'pending') return { raw: 's' };
  if (state.type === 'rejected') return failure(readError(context, state.error), timeoutMs, spec);
  return { raw: state.value.consume((v) => context.getString(v)) };
}

function runCall(instance: Instance, call: CallRequest, spec: ScriptSpec): Outcome {
  const { context } = instance;
  const codes = call.args.map((arg) => arg.code === 'r' ? 'r' : arg.code).join('');
  const handles = [context.newNumber(current.id), context.newString(codes), ...call.args.map((arg) => argHandle(context, arg))];
  const result = context.callFunction(instance.invoke, context.undefined, ...handles);
  for (const handle of handles) handle.dispose();
  if (result.error) return failure(readError(context, result.error), call.timeoutMs, spec);
  const value = result.value;
  try {
    if (context.typeof(value) === 'string') return { raw: context.getString(value) };
    return settlePromise(instance, value, call.timeoutMs, spec);
  } finally {
    value.dispose();
  }
}

/**
 * What a finished call's outcome becomes once its instance is looked at, and whether the instance
 * must be dropped before the next call.
 */
function checkInstance(instance: Instance, outcome: Outcome, timeoutMs: number, spec: ScriptSpec): { outcome: Outcome; drop: boolean } {
  const exhausted = instance.heap.exhausted;
  if (current.interrupted) {
    outcome = { error: { kind: 'timeout', message: `ran longer than ${timeoutMs} ms` } };
  } else if ('raw' in outcome && outcome.raw === 's' && exhausted) {
    // Out of memory inside a promise job never reaches us: QuickJS makes it the rejection of
    // a promise nobody awaits (a chain of promises each resolved with the next one grows
    // until then), and the call ends with the handler's promise pending. The full heap, not
    // a promise that could never settle, is what stopped it.
    outcome = { error: { kind: 'memory', message: `memory limit of ${spec.memoryMb} MB reached` } };
  }
  // Jobs still queued after a call belong to work that was cut off (a promise chain past its
  // deadline, a flood of microtasks); run later, they would spend the next call's time.
  const leftover = instance.runtime.hasPendingJob();
  // A memory failure, or a script that caught one and carried on with a full heap: the next
  // call gets a fresh instance, as V8 disposed an isolate at its heap cap.
  const drop = ('error' in outcome && outcome.error.kind === 'memory') || ('raw' in outcome && outcome.raw[0] === 'm') || exhausted || leftover;
  return { outcome, drop };
}

/**
 * A script's instance made anew inside a batch (the last one was dropped): the host hears of it
 * first, so that its watchdog gives the batch a compile's limit more (the prelude's setup and the
 * top-level code's limit) instead of taking a worker running long top-level code for a stuck one.
 */
async function rebuild(scriptId: number, spec: ScriptSpec): Promise<Instance> {
  port?.postMessage({ type: 'rebuilding', scriptId } satisfies FromWorker);
  return createInstance(spec);
}

function restartFailure(error: unknown): Outcome {
  if (error instanceof CompileFailed) {
    const kind: InvokeErrorKind = error.failure.reason === 'init-timeout' ? 'timeout'
      : error.failure.reason === 'init-memory' ? 'memory' : 'threw';
    return { error: { kind, message: `restarting the script failed: ${error.message}` } };
  }
  return { error: { kind: 'internal', message: (error as Error).message } };
}

async function answerCalls(scriptId: number, calls: CallRequest[]): Promise<CallAnswer[]> {
  const script = scripts.get(scriptId);
  const answers: CallAnswer[] = [];
  let restarted = false;
  for (const call of calls) {
    const started = performance.now();
    current = { id: call.callId, deadline: started + call.timeoutMs, logs: [], truncated: false, interrupted: false };
    let outcome: Outcome;
    if (!script) {
      outcome = DISPOSED;
    } else {
      try {
        if (!script.instance) {
          script.instance = await rebuild(scriptId, script.spec);
          restarted = true;
        }
        // Anew: a rebuild ran the script's top-level code under a `current` of its own (id 0,
        // whose console lines are dropped), which must not be the call's.
        current = { id: call.callId, deadline: performance.now() + call.timeoutMs, logs: [], truncated: false, interrupted: false };
        script.instance.heap.exhausted = false;
        const checked = checkInstance(script.instance, runCall(script.instance, call, script.spec), call.timeoutMs, script.spec);
        outcome = checked.outcome;
        if (checked.drop) script.instance = undefined;
      } catch (error) {
        // A wasm trap (or a bug here): the instance cannot be trusted any more.
        if (!(error instanceof CompileFailed)) script.instance = undefined;
        outcome = restartFailure(error);
      }
    }
    answers.push({
      callId: call.callId,
      ...outcome,
      logs: current.logs,
      truncated: current.truncated,
      durationMs: performance.now() - started,
      restarted,
    });
    restarted = false;
  }
  return answers;
}

const DISPOSED: Outcome = { error: { kind: 'disposed', message: 'the script has been disposed' } };

/** A packed batch running in one crossing into an instance; hostNext (packedStep) moves it on. */
interface PackedRun {
  instance: Instance;
  spec: ScriptSpec;
  message: PackedCalls;
  answers: CallAnswer[];
  /** The next call to start, and the call running (-1: none). */
  next: number;
  active: number;
  started: number;
  /** The instance was created for this run: said on its first answer. */
  restarted: boolean;
  /** A call left the instance unfit (memory, queued jobs): the run stops before the next call. */
  drop: boolean;
}

let packed: PackedRun | undefined;

function endPacked(run: PackedRun, outcome: Outcome): void {
  const k = run.active;
  run.active = -1;
  const checked = checkInstance(run.instance, outcome, run.message.timeouts[k] as number, run.spec);
  if (checked.drop) run.drop = true;
  run.answers[k] = {
    callId: run.message.callIds[k] as number,
    ...checked.outcome,
    logs: current.logs,
    truncated: current.truncated,
    durationMs: performance.now() - run.started,
    restarted: run.restarted,
  };
  run.restarted = false;
}

/** hostNext: ends the running call with its answer and starts the next; true: the batch stops here. */
function packedStep(raw: string | undefined): boolean {
  const run = packed;
  if (run === undefined) return true;
  if (run.active >= 0) endPacked(run, raw === undefined ? { error: { kind: 'internal', message: 'no answer from the sandbox' } } : { raw });
  if (run.drop || run.next >= run.message.callIds.length) return true;
  const k = run.next++;
  run.active = k;
  run.started = performance.now();
  // The same per-call state as a call of its own: its own time limit, console and heap watch.
  current = { id: k + 1, deadline: run.started + (run.message.timeouts[k] as number), logs: [], truncated: false, interrupted: false };
  run.instance.heap.exhausted = false;
  return false;
}

/** Fails the call running (or, when none has started, the next one) with `outcome`, unchecked. */
function failPacked(run: PackedRun, outcome: Outcome, check: boolean): void {
  if (run.active < 0) {
    run.active = run.next++;
    run.started = performance.now();
  }
  if (check) {
    endPacked(run, outcome);
    return;
  }
  const k = run.active;
  run.active = -1;
  run.drop = true;
  run.answers[k] = {
    callId: run.message.callIds[k] as number, ...outcome, logs: current.logs, truncated: current.truncated,
    durationMs: performance.now() - run.started, restarted: run.restarted,
  };
  run.restarted = false;
}

/**
 * Packed calls: one crossing into QuickJS runs them all (the prelude's invokeBatch), with every
 * guarantee of a call of its own: each call's time limit starts at its own start (hostNext), a
 * failing call ends the crossing and the next crossing resumes after it, and a call that leaves the
 * instance unfit has the rest run on a fresh one.
 */
async function answerPacked(scriptId: number, message: PackedCalls): Promise<CallAnswer[]> {
  const script = scripts.get(scriptId);
  const count = message.callIds.length;
  const answers: CallAnswer[] = [];
  let next = 0;
  while (next < count) {
    const started = performance.now();
    if (!script) {
      answers[next] = { callId: message.callIds[next] as number, ...DISPOSED, logs: [], truncated: false, durationMs: 0, restarted: false };
      next++;
      continue;
    }
    let restarted = false;
    if (!script.instance) {
      try {
        script.instance = await rebuild(scriptId, script.spec);
        restarted = true;
      } catch (error) {
        answers[next] = {
          callId: message.callIds[next] as number, ...restartFailure(error), logs: [], truncated: false,
          durationMs: performance.now() - started, restarted: false,
        };
        next++;
        continue;
      }
    }
    const instance = script.instance;
    const run: PackedRun = { instance, spec: script.spec, message, answers, next, active: -1, started, restarted, drop: false };
    packed = run;
    // Until the first hostNext the prelude runs under a limit of its own, not a finished call's spent one.
    current = { id: 0, deadline: performance.now() + (message.timeouts[next] as number), logs: [], truncated: false, interrupted: false };
    try {
      const { context } = instance;
      const handles = [context.newArrayBuffer(message.buffer), context.newNumber(next)];
      const result = context.callFunction(instance.invokeBatch, context.undefined, ...handles);
      for (const handle of handles) handle.dispose();
      if (result.error) {
        const error = readError(context, result.error);
        failPacked(run, failure(error, message.timeouts[run.active < 0 ? run.next : run.active] as number, script.spec), true);
      } else {
        const value = result.value;
        try {
          // The running call answered with a promise: invokeBatch stopped there.
          if (run.active >= 0) endPacked(run, settlePromise(instance, value, message.timeouts[run.active] as number, script.spec));
        } finally {
          value.dispose();
        }
      }
    } catch (error) {
      // A wasm trap (or a bug here): the instance cannot be trusted any more.
      failPacked(run, { error: { kind: 'internal', message: (error as Error).message } }, false);
    } finally {
      packed = undefined;
    }
    if (run.drop) script.instance = undefined;
    next = run.next;
  }
  return answers;
}

/** Messages are handled strictly in order: a compile must finish before that script's calls. */
let chain: Promise<void> = Promise.resolve();

async function handle(message: ToWorker): Promise<void> {
  switch (message.type) {
    case 'compile': {
      let reply: FromWorker;
      try {
        const instance = await createInstance(message.spec);
        scripts.set(message.scriptId, { spec: message.spec, instance });
        reply = { type: 'compiled', scriptId: message.scriptId };
      } catch (error) {
        reply = error instanceof CompileFailed
          ? { type: 'compiled', scriptId: message.scriptId, failure: error.failure }
          : { type: 'compiled', scriptId: message.scriptId, internal: (error as Error).message };
      }
      port?.postMessage(reply);
      return;
    }
    case 'calls': {
      const answers = await answerCalls(message.scriptId, message.calls);
      port?.postMessage({ type: 'answers', scriptId: message.scriptId, answers } satisfies FromWorker);
      return;
    }
    case 'packed': {
      const answers = await answerPacked(message.scriptId, message);
      port?.postMessage({ type: 'answers', scriptId: message.scriptId, answers } satisfies FromWorker);
      return;
    }
    case 'dispose': {
      scripts.delete(message.scriptId);
      return;
    }
  }
}

port.on('message', (message: ToWorker) => {
  chain = chain.then(() => handle(message));
});
// Booting (this module, its imports, the wasm module's compilation) is not a script's time.
port.postMessage({ type: 'ready' } satisfies FromWorker);
