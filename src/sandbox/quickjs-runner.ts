import { availableParallelism, endianness } from 'node:os';
import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import { lineFromStack, ScriptCompileError } from './errors.ts';
import {
  INVOKE_ERROR_KINDS, SANDBOX_LIMITS,
  type CompiledScript, type CompileOptions, type InvokeError, type InvokeErrorKind, type InvokeOptions,
  type InvokeResult, type JsonValue, type SandboxArg, type ScriptRunner, type ScriptStats,
} from './types.ts';
import {
  packCalls, SETUP_TIMEOUT_MS,
  type CallAnswer, type FromWorker, type PreparedArg, type ScriptSpec, type ToWorker,
} from './worker-protocol.ts';

/*
 * Operator scripts run in QuickJS compiled to WebAssembly, on a small pool of worker threads
 * (quickjs-worker.ts): nothing here is bound to V8's ABI, and a running script never holds the
 * event loop. Each compiled script lives on one worker, in its own QuickJS instance with its own
 * capped memory. Calls are queued here and handed to the worker `maxConcurrent` at a time; the
 * calls queued in one turn of the event loop go in one message, so at saturation a thread hop is
 * paid per batch, not per call.
 *
 * A watchdog per worker catches what the interrupt handler cannot (a loop inside QuickJS's C code,
 * such as a join over a billion holes, in a call or in a script's top-level code): when the worker
 * has said nothing for longer than the work it is on may take (a batch: the sum of its calls'
 * limits, and a compile's limit for each rebuild of the script's instance it does — a memory
 * failure drops the instance, and the next call runs the top-level code again; a compile: the
 * prelude's setup and the script's limit for its top-level code) plus a grace, it is terminated
 * and replaced, and its scripts are recompiled on the new one. The worker answers its work in the
 * order it was sent, so the work it is on is the oldest unanswered. Time is counted from the
 * worker's last answer (or its boot), not from sending, so a worker busy booting (it says when
 * it is ready) or answering earlier work is never mistaken for a stuck one. The watchdog looks once
 * a second (one timer per worker, not one per call); work overstays by its grace at least, so the
 * second it may take to notice is noise.
 */

export interface QuickJsRunnerOptions {
  /** Worker threads that run scripts; default: the machine's parallelism, at most 4. */
  workers?: number;
  /**
   * Scheduling niceness of the worker threads (Linux; 0 to 19, default 0). Background work such as
   * payload parsing runs at 19 (PARSING_NICENESS), so that on a busy core the event loop forwarding MQTT traffic gets
   * the CPU first and the scripts take what is left.
   */
  niceness?: number;
}

/** How long past its batch's time limits a worker may stay silent before it is replaced. */
// Generous: it only backs up the interrupt handler, and a loaded machine must not trip it.
const STUCK_GRACE_MS = 5000;

/** How often a worker's watchdog looks at the batch it is working on. */
const WATCHDOG_TICK_MS = 1000;

/** Bytes arguments beyond the script's memory cap are refused before they are copied in. */
const MB = 1024 * 1024;

const FROM_SOURCE = import.meta.url.endsWith('.ts');

/** Arguments packed into one message at most (a call with more goes alone). */
const PACK_BYTES = 256 * 1024;

/** Packed calls are read by WebAssembly, which is little-endian. */
const LITTLE_ENDIAN = endianness() === 'LE';

function startWorker(niceness: number): Worker {
  const workerData = { niceness };
  if (!FROM_SOURCE) {
    // Bundled into dist/ (scripts/build.mjs) beside the entry that imports this module.
    return new Worker(new URL('./sandbox-worker.mjs', import.meta.url), { workerData });
  }
  // Run from TypeScript sources (tests, tsx): Node 20 does not apply the parent's `--import tsx`
  // to a worker's entry, so the worker loads its module through tsx's API.
  const href = JSON.stringify(new URL('./quickjs-worker.ts', import.meta.url).href);
  return new Worker(`import('tsx/esm/api').then((tsx) => tsx.tsImport(${href}, ${href}))`, { eval: true, workerData });
}

type Outcome = { value: JsonValue } | { error: InvokeError };

interface Job {
  args: PreparedArg[];
  bytes: number;
  timeoutMs: number;
  resolve: (result: InvokeResult) => void;
}

interface InFlight {
  job: Job;
  script: QuickJsScript;
}

/** Calls sent in one message; the worker answers them in one message, batches in order. */
interface Batch {
  callIds: number[];
  /**
   * The longest the worker may take over it: the sum of the calls' time limits, and a compile's
   * limit for each rebuild of the script's instance it does meanwhile (`rebuilding`).
   */
  limitMs: number;
  /** A compile's limit for the script: what each rebuild adds to `limitMs`. */
  rebuildMs: number;
  /** Its place among the messages the worker answers in order (compiles and batches). */
  seq: number;
}

interface PendingCompile {
  resolve: (reply: Extract<FromWorker, { type: 'compiled' }>) => void;
  /** The longest the worker may take over it: the prelude's setup and the top-level code's limit. */
  limitMs: number;
  /** The script's limit, which its top-level code runs under. */
  timeoutMs: number;
  seq: number;
}

/** The limits an operator may choose within a range (the others are fixed numbers). */
type RangedLimit = { [K in keyof typeof SANDBOX_LIMITS]: (typeof SANDBOX_LIMITS)[K] extends object ? K : never }[keyof typeof SANDBOX_LIMITS];

function checkRange(name: RangedLimit, value: number | undefined): number {
  const range = SANDBOX_LIMITS[name];
  if (value === undefined) return range.default;
  if (!Number.isInteger(value) || value < range.min || value > range.max) {
    throw new RangeError(`${name} must be an integer from ${range.min} to ${range.max}, got ${value}`);
  }
  return value;
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}

function prepareArg(arg: SandboxArg): PreparedArg {
  // A copy with its own ArrayBuffer: posting a pooled Buffer would hand the worker the whole
  // 8 KiB pool slab, with other messages' bytes in it.
  if (arg instanceof Uint8Array) return { code: 'b', bytes: new Uint8Array(arg) };
  if (arg === null || typeof arg === 'string' || typeof arg === 'number' || typeof arg === 'boolean' || arg === undefined) {
    return { code: 'r', value: arg };
  }
  const json = JSON.stringify(arg);
  if (typeof json !== 'string') throw new TypeError('sandbox arguments must be JSON values or Uint8Array');
  return { code: 'j', json };
}

function argBytes(arg: PreparedArg): number {
  if (arg.code === 'b') return arg.bytes.byteLength;
  if (arg.code === 'j') return arg.json.length * 3;
  return typeof arg.value === 'string' ? arg.value.length * 3 : 0;
}

function emptyFailures(): Record<InvokeErrorKind, number> {
  return Object.fromEntries(INVOKE_ERROR_KINDS.map((kind) => [kind, 0])) as Record<InvokeErrorKind, number>;
}

/** One worker thread and the scripts placed on it. */
class WorkerHost {
  readonly scripts = new Set<QuickJsScript>();
  readonly #compiles = new Map<number, PendingCompile>();
  readonly #inFlight = new Map<number, InFlight>();
  readonly #onLost: (host: WorkerHost, reason: string) => void;
  #worker: Worker;
  readonly #batches: Batch[] = [];
  /** performance.now() of the worker's last message, or of sending to an idle worker. */
  #lastProgress = 0;
  /** Compiles and batches sent: the worker answers them in the order of these numbers. */
  #sent = 0;
  #watchdog: NodeJS.Timeout | undefined;
  #lost = false;
  /** The worker said it booted: until then its silence is not the work's. */
  #ready = false;

  constructor(onLost: (host: WorkerHost, reason: string) => void, niceness: number) {
    this.#onLost = onLost;
    this.#worker = startWorker(niceness);
    this.#worker.unref();
    this.#worker.on('message', (message: FromWorker) => this.#receive(message));
    this.#worker.on('error', (error) => this.#lose(`sandbox worker failed: ${error.message}`));
    this.#worker.on('exit', (code) => this.#lose(`sandbox worker exited with code ${code}`));
    this.#startWatchdog();
  }

  get lost(): boolean {
    return this.#lost;
  }

  send(message: ToWorker): void {
    if (!this.#lost) this.#worker.postMessage(message);
  }

  compile(scriptId: number, spec: ScriptSpec): Promise<Extract<FromWorker, { type: 'compiled' }>> {
    return new Promise((resolve) => {
      this.#markBusy();
      this.#compiles.set(scriptId, { resolve, limitMs: SETUP_TIMEOUT_MS + spec.timeoutMs, timeoutMs: spec.timeoutMs, seq: ++this.#sent });
      this.#updateRef();
      this.send({ type: 'compile', scriptId, spec });
    });
  }

  /**
   * Hands calls to the worker. Calls go packed in one buffer (one crossing into QuickJS for them all,
   * see worker-protocol.ts), at most PACK_BYTES of arguments a message so that a batch never holds
   * much of a script's memory at once; a call with larger arguments, or alone, goes by itself.
   */
  call(script: QuickJsScript, scriptId: number, batch: { callId: number; job: Job }[]): void {
    let group: { callId: number; job: Job }[] = [];
    let groupBytes = 0;
    for (const item of batch) {
      if (group.length > 0 && (groupBytes + item.job.bytes > PACK_BYTES || item.job.bytes > PACK_BYTES)) {
        this.#send(script, scriptId, group);
        group = [];
        groupBytes = 0;
      }
      group.push(item);
      groupBytes += item.job.bytes;
    }
    if (group.length > 0) this.#send(script, scriptId, group);
  }

  #send(script: QuickJsScript, scriptId: number, group: { callId: number; job: Job }[]): void {
    this.#markBusy();
    const callIds: number[] = [];
    const timeouts: number[] = [];
    let limitMs = 0;
    for (const { callId, job } of group) {
      this.#inFlight.set(callId, { job, script });
      callIds.push(callId);
      timeouts.push(job.timeoutMs);
      limitMs += job.timeoutMs;
    }
    this.#batches.push({ callIds, limitMs, rebuildMs: SETUP_TIMEOUT_MS + script.spec.timeoutMs, seq: ++this.#sent });
    this.#updateRef();
    if (group.length > 1 && LITTLE_ENDIAN) {
      const buffer = packCalls(group.map(({ job }) => job.args));
      if (!this.#lost) this.#worker.postMessage({ type: 'packed', scriptId, callIds, timeouts, buffer } satisfies ToWorker, [buffer]);
      return;
    }
    // Bytes go by copy (structured clone), never transferred: the caller keeps its buffers.
    this.send({ type: 'calls', scriptId, calls: group.map(({ callId, job }) => ({ callId, args: job.args, timeoutMs: job.timeoutMs })) });
  }

  /** Stops waiting for these calls (their script was disposed); a late answer is dropped. */
  forget(callIds: Iterable<number>): void {
    for (const id of callIds) this.#inFlight.delete(id);
    this.#updateRef();
  }

  terminate(): void {
    this.#lost = true;
    clearInterval(this.#watchdog);
    void this.#worker.terminate();
  }

  /** Work sent to an idle worker is timed from now (its last message may be long ago). */
  #markBusy(): void {
    if (this.#batches.length === 0 && this.#compiles.size === 0) this.#lastProgress = performance.now();
  }

  #receive(message: FromWorker): void {
    if (message.type === 'rebuilding') {
      this.#rebuilding();
      return;
    }
    this.#lastProgress = performance.now();
    if (message.type === 'ready') {
      this.#ready = true;
    } else if (message.type === 'compiled') {
      const pending = this.#compiles.get(message.scriptId);
      this.#compiles.delete(message.scriptId);
      pending?.resolve(message);
    } else {
      // The worker answers whole batches, in the order they were sent.
      if (this.#batches.length > 0) this.#batches.shift();
      for (const answer of message.answers) {
        const entry = this.#inFlight.get(answer.callId);
        if (!entry) continue;
        this.#inFlight.delete(answer.callId);
        entry.script.settle(entry.job, answer);
      }
    }
    this.#updateRef();
  }

  /**
   * The worker is rebuilding a script's instance inside the batch it is on (the oldest: it answers in
   * order, and a compile never rebuilds), running the script's top-level code again: the batch may
   * take a compile's limit more. The clock goes on from the batch's start (this is no answer), so a
   * rebuild stuck in native code is found once the calls' limits and the rebuilds' have passed.
   */
  #rebuilding(): void {
    const batch = this.#batches[0];
    if (batch !== undefined) batch.limitMs += batch.rebuildMs;
  }

  // An idle worker must not keep the process alive; one with work outstanding must.
  #updateRef(): void {
    if (this.#lost) return;
    if (this.#inFlight.size > 0 || this.#compiles.size > 0) this.#worker.ref();
    else this.#worker.unref();
  }

  // Unref'd: an idle runner must not keep the process alive (a worker with work outstanding does).
  #startWatchdog(): void {
    this.#watchdog = setInterval(() => this.#checkStuck(), WATCHDOG_TICK_MS);
    this.#watchdog.unref();
  }

  #checkStuck(): void {
    if (!this.#ready) return;
    // The work the worker is on: the oldest batch or compile (it answers them in the order sent). A
    // compile sent behind a stuck batch waits like any batch, and must not hide the stuck one.
    let oldest: Batch | PendingCompile | undefined = this.#batches[0];
    for (const compile of this.#compiles.values()) if (oldest === undefined || compile.seq < oldest.seq) oldest = compile;
    if (oldest === undefined) return;
    if (performance.now() - this.#lastProgress <= oldest.limitMs + STUCK_GRACE_MS) return;
    this.#lose('callIds' in oldest
      ? 'a sandbox call overstayed its time limit in the worker; the worker was replaced'
      : 'a script\'s top-level code overstayed its time limit in the worker; the worker was replaced', oldest);
  }

  /**
   * Answers every call and compile this worker still owes, and has it replaced. `stuck`: the batch
   * (its calls answered timeout) or the compile (answered init-timeout) the worker was stuck in; the
   * rest is answered internal. The host is dropped after, so its tables are left as they are.
   */
  #lose(reason: string, stuck?: Batch | PendingCompile): void {
    if (this.#lost) return;
    this.terminate();
    const stuckCalls = new Set(stuck !== undefined && 'callIds' in stuck ? stuck.callIds : []);
    const behind = stuck === undefined ? reason : `${reason} (this call was waiting behind the stuck one)`;
    for (const [callId, entry] of this.#inFlight) {
      entry.script.settle(entry.job, undefined, stuckCalls.has(callId) ? { kind: 'timeout', message: reason } : { kind: 'internal', message: behind });
    }
    for (const [scriptId, compile] of this.#compiles) {
      compile.resolve(compile === stuck
        ? { type: 'compiled', scriptId, failure: { reason: 'init-timeout', detail: `top-level code ran longer than ${compile.timeoutMs} ms; the worker was replaced` } }
        : { type: 'compiled', scriptId, internal: reason });
    }
    this.#onLost(this, reason);
  }
}

let nextScriptId = 1;
let nextCallId = 1;

class QuickJsScript implements CompiledScript {
  readonly id = nextScriptId++;
  readonly #spec: ScriptSpec;
  readonly #maxConcurrent: number;
  readonly #maxQueued: number;
  readonly #batchWindowMs: number;
  /** Set while calls wait for the batch window to close. */
  #window: NodeJS.Timeout | undefined;
  readonly #onDispose: (script: QuickJsScript) => void;
  #host: WorkerHost;
  #disposed = false;
  #pumpScheduled = false;
  readonly #queue: Job[] = [];
  readonly #inFlight = new Map<Job, number>();
  readonly #stats = { calls: 0, succeeded: 0, failures: emptyFailures(), restarts: 0, totalMs: 0, batches: 0 };

  constructor(spec: ScriptSpec, limits: { maxConcurrent: number; maxQueued: number; batchWindowMs: number }, host: WorkerHost,
    onDispose: (script: QuickJsScript) => void) {
    this.#spec = spec;
    this.#maxConcurrent = limits.maxConcurrent;
    this.#maxQueued = limits.maxQueued;
    this.#batchWindowMs = limits.batchWindowMs;
    this.#host = host;
    this.#onDispose = onDispose;
  }

  get spec(): ScriptSpec {
    return this.#spec;
  }

  /** Moves the script to a new worker after its old one was lost; its instance is rebuilt there. */
  moveTo(host: WorkerHost): void {
    this.#host = host;
    host.scripts.add(this);
    void host.compile(this.id, this.#spec);
    this.#stats.restarts++;
    this.#schedulePump(true);
  }

  invoke(args: readonly SandboxArg[], options: InvokeOptions = {}): Promise<InvokeResult> {
    this.#stats.calls++;
    if (this.#disposed) return Promise.resolve(this.#fail('disposed', 'the script has been disposed'));
    // Calls handed over at the next pump are still in the queue: count them as started.
    if (this.#inFlight.size + this.#queue.length >= this.#maxConcurrent + this.#maxQueued) {
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
    const bytes = prepared.reduce((sum, arg) => sum + argBytes(arg), 0);
    if (bytes > this.#spec.memoryMb * MB) {
      return Promise.resolve(this.#fail('memory', `memory limit of ${this.#spec.memoryMb} MB reached: the arguments alone are ${Math.ceil(bytes / MB)} MB`));
    }
    return new Promise((resolve) => {
      this.#queue.push({ args: prepared, bytes, timeoutMs, resolve });
      this.#schedulePump();
    });
  }

  stats(): ScriptStats {
    return {
      ...this.#stats,
      failures: { ...this.#stats.failures },
      totalMs: round(this.#stats.totalMs),
      inFlight: this.#inFlight.size,
      queued: this.#queue.length,
    };
  }

  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    clearTimeout(this.#window);
    this.#window = undefined;
    for (const job of this.#queue.splice(0)) job.resolve(this.#fail('disposed', 'the script has been disposed'));
    this.#host.forget(this.#inFlight.values());
    for (const job of [...this.#inFlight.keys()]) {
      this.#inFlight.delete(job);
      job.resolve(this.#fail('disposed', 'the script has been disposed'));
    }
    this.#host.send({ type: 'dispose', scriptId: this.id });
    this.#host.scripts.delete(this);
    this.#onDispose(this);
  }

  /** An answer from the worker (or, with `error`, the worker's loss). */
  settle(job: Job, answer: CallAnswer | undefined, error?: InvokeError): void {
    if (!this.#inFlight.delete(job)) return;
    if (answer?.restarted) this.#stats.restarts++;
    const outcome: Outcome = answer ? this.#decode(answer) : { error: error ?? { kind: 'internal', message: 'no answer' } };
    const durationMs = round(answer?.durationMs ?? 0);
    const base = { logs: answer?.logs ?? [], logsTruncated: answer?.truncated ?? false, durationMs };
    this.#stats.totalMs += durationMs;
    if ('error' in outcome) {
      this.#stats.failures[outcome.error.kind]++;
      job.resolve({ ok: false, error: outcome.error, ...base });
    } else {
      this.#stats.succeeded++;
      job.resolve({ ok: true, value: outcome.value, ...base });
    }
    if (this.#queue.length > 0) this.#schedulePump(true);
  }

  /** `now`: the calls waiting go at the next microtask (room opened for calls that already waited). */
  #schedulePump(now = false): void {
    if (this.#pumpScheduled || this.#disposed) return;
    // Within a batch window, new calls gather until it closes or a whole batch is waiting.
    if (!now && this.#batchWindowMs > 0 && this.#queue.length < this.#maxConcurrent) {
      this.#window ??= setTimeout(() => {
        this.#window = undefined;
        this.#pump();
      }, this.#batchWindowMs);
      return;
    }
    clearTimeout(this.#window);
    this.#window = undefined;
    this.#pumpScheduled = true;
    queueMicrotask(() => {
      this.#pumpScheduled = false;
      this.#pump();
    });
  }

  #pump(): void {
    if (this.#disposed || this.#host.lost) return;
    const batch: { callId: number; job: Job }[] = [];
    while (this.#queue.length > 0 && this.#inFlight.size < this.#maxConcurrent) {
      const job = this.#queue.shift() as Job;
      const callId = nextCallId++;
      this.#inFlight.set(job, callId);
      batch.push({ callId, job });
    }
    if (batch.length === 0) return;
    this.#stats.batches++;
    this.#host.call(this, this.id, batch);
  }

  #decode(answer: CallAnswer): Outcome {
    if (answer.error) return { error: answer.error };
    const raw = answer.raw;
    if (typeof raw !== 'string' || raw.length === 0) return { error: { kind: 'internal', message: 'unexpected answer from the sandbox' } };
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
        return { error: { kind: 'internal', message: 'unexpected answer from the sandbox' } };
    }
  }

  #fail(kind: InvokeErrorKind, message: string): InvokeResult {
    this.#stats.failures[kind]++;
    return { ok: false, error: { kind, message }, logs: [], logsTruncated: false, durationMs: 0 };
  }
}

/** The QuickJS/WebAssembly backend of `ScriptRunner`. */
export class QuickJsRunner implements ScriptRunner {
  readonly #size: number;
  readonly #niceness: number;
  readonly #hosts: WorkerHost[] = [];
  readonly #live = new Set<QuickJsScript>();

  constructor(options: QuickJsRunnerOptions = {}) {
    const size = options.workers ?? Math.min(4, availableParallelism());
    if (!Number.isInteger(size) || size < 1 || size > 64) throw new RangeError(`workers must be an integer from 1 to 64, got ${size}`);
    this.#size = size;
    const niceness = options.niceness ?? 0;
    if (!Number.isInteger(niceness) || niceness < 0 || niceness > 19) throw new RangeError(`niceness must be an integer from 0 to 19, got ${niceness}`);
    this.#niceness = niceness;
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
    };
    const limits = {
      maxConcurrent: checkRange('maxConcurrent', options.maxConcurrent),
      maxQueued: checkRange('maxQueued', options.maxQueued),
      batchWindowMs: checkRange('batchWindowMs', options.batchWindowMs),
    };
    const host = this.#leastLoaded();
    const script = new QuickJsScript(spec, limits, host, (s) => {
      this.#live.delete(s);
    });
    const reply = await host.compile(script.id, spec);
    if (reply.failure) {
      const { reason, detail, line, column } = reply.failure;
      throw new ScriptCompileError(reason, detail, line, column);
    }
    if (reply.internal !== undefined) throw new Error(reply.internal);
    host.scripts.add(script);
    this.#live.add(script);
    return script;
  }

  dispose(): void {
    for (const script of [...this.#live]) script.dispose();
    for (const host of this.#hosts.splice(0)) host.terminate();
  }

  #leastLoaded(): WorkerHost {
    if (this.#hosts.length < this.#size) {
      const host = new WorkerHost((lost) => this.#replace(lost), this.#niceness);
      this.#hosts.push(host);
      return host;
    }
    return this.#hosts.reduce((best, host) => host.scripts.size < best.scripts.size ? host : best);
  }

  #replace(lost: WorkerHost): void {
    const index = this.#hosts.indexOf(lost);
    if (index < 0) return;
    const host = new WorkerHost((next) => this.#replace(next), this.#niceness);
    this.#hosts[index] = host;
    for (const script of lost.scripts) script.moveTo(host);
    lost.scripts.clear();
  }
}
