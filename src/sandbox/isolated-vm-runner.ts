import ivm from 'isolated-vm';
import { performance } from 'node:perf_hooks';
import { lineFromStack, parseSyntaxError, ScriptCompileError } from './errors.ts';
import { hostHash, hostHmac, hostTimingSafeEqual } from './host-crypto.ts';
import { entryLookupSource, PRELUDE_SOURCE } from './prelude.ts';
import {
  INVOKE_ERROR_KINDS, SANDBOX_LIMITS,
  type CompiledScript, type CompileOptions, type InvokeError, type InvokeErrorKind, type InvokeOptions,
  type InvokeResult, type JsonValue, type LogLine, type SandboxArg, type ScriptRunner, type ScriptStats,
} from './types.ts';

/*
 * One isolate per compiled script, created at compile time and reused by every call. Calls are
 * queued here and handed to the isolate `maxConcurrent` at a time with async `apply`, so the event
 * loop never waits for a script. V8 runs them one after another inside the isolate, which is also
 * what makes console attribution simple: a call's id is "current" from its start until its
 * microtasks have drained.
 */

export interface IsolatedVmRunnerOptions {
  /** isolated-vm reports that V8 lost control of an isolate; its advice is to stop the process.
   * The default writes `sandbox_catastrophic_error` to stderr. */
  onCatastrophicError?: (message: string) => void;
}

interface ScriptSpec {
  source: string;
  entry: string;
  filename: string;
  timeoutMs: number;
  memoryMb: number;
  requireObject: boolean;
  maxResultChars: number;
  maxConcurrent: number;
  maxQueued: number;
}

interface CallRecord {
  logs: LogLine[];
  truncated: boolean;
  /** performance.now() after which the call can only be a promise that never settles. */
  deadline: number;
}

/** A live isolate with the operator's script loaded. */
interface Instance {
  isolate: ivm.Isolate;
  invoke: ivm.Reference | undefined;
  calls: Map<number, CallRecord>;
  /** Set when we stop using this isolate; calls still in it are reported with this kind. */
  retiredFor: 'memory' | 'disposed' | undefined;
}

/** An argument ready to cross: JSON text (parsed inside), a primitive, or bytes of its own. */
type PreparedArg =
  | { code: 'j'; json: string }
  | { code: 'r'; value: string | number | boolean | null | undefined }
  | { code: 'b'; bytes: Uint8Array };

type Outcome = { value: JsonValue } | { error: InvokeError };

interface Job {
  args: PreparedArg[];
  timeoutMs: number;
  resolve: (result: InvokeResult) => void;
}

const TIMED_OUT = 'Script execution timed out.';
const MEMORY_LIMIT = 'memory limit';
const ARRAY_BUFFER_FAILED = 'Array buffer allocation failed';
const OVERDUE_GRACE_MS = 10;

function checkRange(name: keyof typeof SANDBOX_LIMITS, value: number | undefined): number {
  const range = SANDBOX_LIMITS[name];
  if (typeof range !== 'object') throw new TypeError(`${name} is not a ranged limit`);
  if (value === undefined) return range.default;
  if (!Number.isInteger(value) || value < range.min || value > range.max) {
    throw new RangeError(`${name} must be an integer from ${range.min} to ${range.max}, got ${value}`);
  }
  return value;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}

function prepareArg(arg: SandboxArg): PreparedArg {
  // A copy with its own ArrayBuffer: copying a pooled Buffer directly would hand the script the
  // whole 8 KiB pool slab, with other messages' bytes in it.
  if (arg instanceof Uint8Array) return { code: 'b', bytes: new Uint8Array(arg) };
  if (arg === null || typeof arg === 'string' || typeof arg === 'number' || typeof arg === 'boolean' || arg === undefined) {
    return { code: 'r', value: arg };
  }
  const json = JSON.stringify(arg);
  if (typeof json !== 'string') throw new TypeError('sandbox arguments must be JSON values or Uint8Array');
  return { code: 'j', json };
}

function transfer(arg: PreparedArg): ivm.Transferable {
  switch (arg.code) {
    case 'j': return arg.json;
    case 'r': return arg.value;
    case 'b': return new ivm.ExternalCopy(arg.bytes).copyInto({ release: true });
  }
}

function compileFailure(error: unknown, filename: string, timeoutMs: number): ScriptCompileError {
  const message = messageOf(error);
  if (message === TIMED_OUT) return new ScriptCompileError('init-timeout', `top-level code ran longer than ${timeoutMs} ms`);
  if (message.includes(MEMORY_LIMIT) || message === ARRAY_BUFFER_FAILED) {
    return new ScriptCompileError('init-memory', 'top-level code exceeded the memory limit');
  }
  const name = error instanceof Error ? error.name : '';
  const stack = error instanceof Error ? error.stack ?? '' : '';
  return new ScriptCompileError('init-threw', name ? `${name}: ${message}` : message, lineFromStack(stack, filename));
}

async function createInstance(spec: ScriptSpec, onCatastrophicError: (message: string) => void): Promise<Instance> {
  const isolate = new ivm.Isolate({ memoryLimit: spec.memoryMb, onCatastrophicError });
  const instance: Instance = { isolate, invoke: undefined, calls: new Map(), retiredFor: undefined };
  try {
    const context = await isolate.createContext();
    const onLog = (id: unknown, level: unknown, text: unknown): void => {
      const call = instance.calls.get(id as number);
      if (!call) return; // top-level code at compile time, or a call that already answered
      if (level === 'truncated' || call.logs.length >= SANDBOX_LIMITS.logLinesPerCall) {
        call.truncated = true;
        return;
      }
      const lineLevel = level === 'warn' || level === 'error' ? level : 'log';
      call.logs.push({ level: lineLevel, message: String(text).slice(0, SANDBOX_LIMITS.logLineChars) });
    };
    const prelude = await isolate.compileScript(PRELUDE_SOURCE, { filename: 'gatehouse:prelude' });
    const setup = await prelude.run(context, { reference: true, timeout: 5000 });
    const config = {
      maxLines: SANDBOX_LIMITS.logLinesPerCall,
      maxChars: SANDBOX_LIMITS.logLineChars,
      requireObject: spec.requireObject,
      maxResultChars: spec.maxResultChars,
    };
    const bindEntry = await setup.apply(undefined, [
      new ivm.ExternalCopy(config).copyInto({ release: true }),
      new ivm.Callback(onLog),
      new ivm.Callback(hostHmac),
      new ivm.Callback(hostHash),
      new ivm.Callback(hostTimingSafeEqual),
    ], { result: { reference: true }, timeout: 5000 }) as ivm.Reference;
    setup.release();

    let script: ivm.Script;
    try {
      script = await isolate.compileScript(spec.source, { filename: spec.filename });
    } catch (error) {
      const { detail, line, column } = parseSyntaxError(messageOf(error));
      throw new ScriptCompileError('syntax', detail, line, column);
    }
    try {
      // By reference so a large completion value is not copied out.
      (await script.run(context, { timeout: spec.timeoutMs, reference: true })).release();
    } catch (error) {
      throw compileFailure(error, spec.filename, spec.timeoutMs);
    }
    script.release();

    let entry: ivm.Reference;
    try {
      const lookup = await isolate.compileScript(entryLookupSource(spec.entry), { filename: 'gatehouse:entry' });
      entry = await lookup.run(context, { timeout: spec.timeoutMs, reference: true });
      lookup.release();
    } catch (error) {
      throw compileFailure(error, spec.filename, spec.timeoutMs);
    }
    if (entry.typeof !== 'function') {
      entry.release();
      throw new ScriptCompileError('missing-entry',
        `the script does not define a function named ${spec.entry} (a top-level function or module.exports.${spec.entry})`);
    }
    instance.invoke = await bindEntry.apply(undefined, [entry.derefInto({ release: true })], {
      result: { reference: true }, timeout: 5000,
    }) as ivm.Reference;
    bindEntry.release();
    return instance;
  } catch (error) {
    if (!isolate.isDisposed) isolate.dispose();
    throw error;
  }
}

function emptyFailures(): Record<InvokeErrorKind, number> {
  return Object.fromEntries(INVOKE_ERROR_KINDS.map((kind) => [kind, 0])) as Record<InvokeErrorKind, number>;
}

class IsolatedVmScript implements CompiledScript {
  readonly #spec: ScriptSpec;
  readonly #onCatastrophicError: (message: string) => void;
  readonly #onDispose: (script: IsolatedVmScript) => void;
  #instance: Instance | undefined;
  #restarting = false;
  #disposed = false;
  #inFlight = 0;
  #watchdog: NodeJS.Timeout | undefined;
  #watchdogAt = Infinity;
  #nextId = 1;
  readonly #queue: Job[] = [];
  readonly #stats = { calls: 0, succeeded: 0, failures: emptyFailures(), restarts: 0, totalMs: 0 };

  constructor(spec: ScriptSpec, instance: Instance, onCatastrophicError: (message: string) => void,
    onDispose: (script: IsolatedVmScript) => void) {
    this.#spec = spec;
    this.#instance = instance;
    this.#onCatastrophicError = onCatastrophicError;
    this.#onDispose = onDispose;
  }

  invoke(args: readonly SandboxArg[], options: InvokeOptions = {}): Promise<InvokeResult> {
    this.#stats.calls++;
    if (this.#disposed) return Promise.resolve(this.#fail('disposed', 'the script has been disposed'));
    const canStart = this.#instance !== undefined && this.#inFlight < this.#spec.maxConcurrent;
    if (!canStart && this.#queue.length >= this.#spec.maxQueued) {
      return Promise.resolve(this.#fail('busy', `too many calls waiting (${this.#queue.length})`));
    }
    let timeoutMs: number;
    let prepared: PreparedArg[];
    try {
      // Caller mistakes (not the script's) reject the promise.
      timeoutMs = options.timeoutMs === undefined ? this.#spec.timeoutMs : checkRange('timeoutMs', options.timeoutMs);
      prepared = args.map(prepareArg);
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new TypeError(String(error)));
    }
    return new Promise((resolve) => {
      this.#queue.push({ args: prepared, timeoutMs, resolve });
      this.#pump();
    });
  }

  stats(): ScriptStats {
    return {
      ...this.#stats,
      failures: { ...this.#stats.failures },
      totalMs: round(this.#stats.totalMs),
      inFlight: this.#inFlight,
      queued: this.#queue.length,
    };
  }

  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    for (const job of this.#queue.splice(0)) job.resolve(this.#fail('disposed', 'the script has been disposed'));
    if (this.#instance) this.#retire(this.#instance, 'disposed');
    clearTimeout(this.#watchdog);
    this.#watchdog = undefined;
    this.#onDispose(this);
  }

  #pump(): void {
    while (this.#queue.length > 0 && this.#inFlight < this.#spec.maxConcurrent) {
      let instance = this.#instance;
      // V8 disposes an isolate that hits its heap cap; do not hand it calls while the failing
      // call's answer is still on its way.
      if (instance?.isolate.isDisposed) {
        this.#retire(instance, 'memory');
        instance = undefined;
      }
      if (!instance) {
        this.#restart();
        return;
      }
      const job = this.#queue.shift();
      if (job) void this.#run(instance, job);
    }
  }

  #restart(): void {
    if (this.#restarting || this.#disposed) return;
    this.#restarting = true;
    createInstance(this.#spec, this.#onCatastrophicError).then((instance) => {
      this.#restarting = false;
      if (this.#disposed) {
        instance.isolate.dispose();
        return;
      }
      this.#instance = instance;
      this.#stats.restarts++;
      this.#pump();
    }, (error: unknown) => {
      // Top-level code that worked at compile time failed now. Answer the waiting calls; the
      // next call tries again.
      this.#restarting = false;
      const kind: InvokeErrorKind = error instanceof ScriptCompileError
        ? (error.reason === 'init-timeout' ? 'timeout' : error.reason === 'init-memory' ? 'memory' : 'threw')
        : 'internal';
      const message = `restarting the script failed: ${messageOf(error)}`;
      for (const job of this.#queue.splice(0)) job.resolve(this.#fail(kind, message));
    });
  }

  async #run(instance: Instance, job: Job): Promise<void> {
    const id = this.#nextId++;
    const started = performance.now();
    const call: CallRecord = { logs: [], truncated: false, deadline: started + job.timeoutMs + OVERDUE_GRACE_MS };
    instance.calls.set(id, call);
    this.#inFlight++;
    this.#armWatchdog(call.deadline);
    let outcome: Outcome;
    try {
      const codes = job.args.map((arg) => arg.code === 'j' ? 'j' : 'r').join('');
      const raw: unknown = await instance.invoke?.apply(undefined, [id, codes, ...job.args.map(transfer)], {
        timeout: job.timeoutMs, result: { promise: true },
      });
      outcome = this.#decode(raw);
    } catch (error) {
      outcome = this.#classify(error, instance, job.timeoutMs);
    }
    instance.calls.delete(id);
    this.#inFlight--;
    const durationMs = round(performance.now() - started);
    const base = { logs: call.logs, logsTruncated: call.truncated, durationMs };
    this.#stats.totalMs += durationMs;
    if ('error' in outcome) {
      this.#stats.failures[outcome.error.kind]++;
      if (outcome.error.kind === 'memory') this.#retire(instance, 'memory');
      job.resolve({ ok: false, error: outcome.error, ...base });
    } else {
      this.#stats.succeeded++;
      job.resolve({ ok: true, value: outcome.value, ...base });
    }
    this.#pump();
  }

  #decode(raw: unknown): Outcome {
    if (typeof raw !== 'string' || raw.length === 0) return { error: { kind: 'internal', message: 'unexpected answer from the isolate' } };
    const body = raw.slice(1);
    switch (raw[0]) {
      case 'v':
        return { value: JSON.parse(body) as JsonValue };
      case 'b':
        return { error: { kind: 'bad-result', message: body } };
      case 'm':
        return { error: { kind: 'memory', message: `memory limit of ${this.#spec.memoryMb} MB reached: ${body}` } };
      case 's':
        return { error: { kind: 'timeout', message: 'the function awaited a promise that never settled' } };
      case 't': {
        const { name, message, stack } = JSON.parse(body) as { name: string; message: string; stack: string };
        const line = lineFromStack(stack, this.#spec.filename);
        const text = name ? `${name}: ${message}` : message;
        return { error: { kind: 'threw', message: line === undefined ? text : `${text} (line ${line})`, ...(line === undefined ? {} : { line }) } };
      }
      default:
        return { error: { kind: 'internal', message: 'unexpected answer from the isolate' } };
    }
  }

  #classify(error: unknown, instance: Instance, timeoutMs: number): Outcome {
    const message = messageOf(error);
    if (instance.retiredFor === 'disposed') return { error: { kind: 'disposed', message: 'the script has been disposed' } };
    if (message === TIMED_OUT) return { error: { kind: 'timeout', message: `ran longer than ${timeoutMs} ms` } };
    if (message.includes(MEMORY_LIMIT) || message === ARRAY_BUFFER_FAILED) {
      // The second: arguments too big to copy into the isolate.
      return { error: { kind: 'memory', message: `memory limit of ${this.#spec.memoryMb} MB reached` } };
    }
    if (instance.retiredFor === 'memory' || instance.isolate.isDisposed) {
      // A call that was waiting in the isolate when another call exhausted its memory.
      return { error: { kind: 'memory', message: `memory limit of ${this.#spec.memoryMb} MB reached by another call in the same isolate` } };
    }
    return { error: { kind: 'internal', message } };
  }

  /*
   * Only a promise that can never settle outlives the isolate's own timeout. One timer per script
   * (not one per call, which costs a third of the throughput) looks for calls past their deadline
   * and asks the isolate to settle them (see prelude.ts).
   */
  #armWatchdog(at: number): void {
    if (this.#watchdog !== undefined) {
      if (this.#watchdogAt <= at) return;
      clearTimeout(this.#watchdog);
    }
    this.#watchdogAt = at;
    this.#watchdog = setTimeout(() => {
      this.#watchdog = undefined;
      this.#checkOverdue();
    }, Math.max(1, at - performance.now()));
  }

  #checkOverdue(): void {
    const instance = this.#instance;
    if (!instance || instance.calls.size === 0) return;
    const now = performance.now();
    let next = Infinity;
    let overdue = false;
    for (const call of instance.calls.values()) {
      if (call.deadline <= now) overdue = true;
      else next = Math.min(next, call.deadline);
    }
    if (overdue) this.#settleStale(instance);
    // An overdue call may sit behind a looping one; look again soon.
    this.#armWatchdog(Math.min(next, now + (overdue ? OVERDUE_GRACE_MS * 5 : Infinity)));
  }

  #settleStale(instance: Instance): void {
    if (instance.retiredFor || instance.isolate.isDisposed || !instance.invoke) return;
    instance.invoke.apply(undefined, [0, ''], { timeout: 1000, result: { promise: true } }).catch(() => undefined);
  }

  #retire(instance: Instance, why: 'memory' | 'disposed'): void {
    if (instance.retiredFor) return;
    instance.retiredFor = why;
    if (this.#instance === instance) this.#instance = undefined;
    instance.invoke?.release();
    if (!instance.isolate.isDisposed) instance.isolate.dispose();
  }

  #fail(kind: InvokeErrorKind, message: string): InvokeResult {
    this.#stats.failures[kind]++;
    return { ok: false, error: { kind, message }, logs: [], logsTruncated: false, durationMs: 0 };
  }
}

/** The isolated-vm backend of `ScriptRunner`. Needs `node --no-node-snapshot`. */
export class IsolatedVmRunner implements ScriptRunner {
  readonly #onCatastrophicError: (message: string) => void;
  readonly #live = new Set<IsolatedVmScript>();

  constructor(options: IsolatedVmRunnerOptions = {}) {
    this.#onCatastrophicError = options.onCatastrophicError ?? ((message) => {
      process.stderr.write(`${JSON.stringify({ event: 'sandbox_catastrophic_error', message })}\n`);
    });
  }

  async compile(source: string, options: CompileOptions): Promise<CompiledScript> {
    if (options.kind !== 'module-function') throw new TypeError(`unknown script kind ${String(options.kind)}`);
    if (typeof source !== 'string') throw new TypeError('source must be a string');
    const spec: ScriptSpec = {
      source,
      entry: options.entry,
      filename: options.filename ?? `${options.entry}.js`,
      timeoutMs: checkRange('timeoutMs', options.timeoutMs),
      memoryMb: checkRange('memoryMb', options.memoryMb),
      requireObject: (options.result ?? 'object') === 'object',
      maxResultChars: checkRange('maxResultChars', options.maxResultChars),
      maxConcurrent: checkRange('maxConcurrent', options.maxConcurrent),
      maxQueued: checkRange('maxQueued', options.maxQueued),
    };
    const instance = await createInstance(spec, this.#onCatastrophicError);
    const script = new IsolatedVmScript(spec, instance, this.#onCatastrophicError, (s) => this.#live.delete(s));
    this.#live.add(script);
    return script;
  }

  dispose(): void {
    for (const script of [...this.#live]) script.dispose();
  }
}
