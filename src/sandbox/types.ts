/** A value that survives `JSON.stringify` → `JSON.parse` unchanged. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** What a caller may hand to a script: JSON values, plus raw bytes (copied, never shared). */
export type SandboxArg = JsonValue | Uint8Array;

/** The function names an operator script may be asked to define. */
export type EntryName = 'handler' | 'transformPayload';

/** Ranges and defaults that the API validates against before calling `compile`. */
export const SANDBOX_LIMITS = Object.freeze({
  memoryMb: { min: 8, max: 256, default: 32 },
  timeoutMs: { min: 1, max: 60_000, default: 1000 },
  maxConcurrent: { min: 1, max: 1024, default: 8 },
  maxQueued: { min: 0, max: 100_000, default: 256 },
  maxResultChars: { min: 1, max: 16 * 1024 * 1024, default: 1024 * 1024 },
  batchWindowMs: { min: 0, max: 100, default: 0 },
  logLinesPerCall: 50,
  logLineChars: 500,
});

export interface CompileOptions {
  /** The source is a classic script that defines the entry as a top-level function (or assigns it
   * to `module.exports` / `exports`). The only kind today. */
  kind: 'module-function';
  entry: EntryName;
  /** Per-call time limit unless `invoke` overrides it; also bounds the script's top-level code. */
  timeoutMs?: number;
  /** Heap cap of the script's sandbox, ArrayBuffers included: the cap of its WebAssembly memory
   * beyond the engine's own 16 MB. */
  memoryMb?: number;
  /** Shown in stack traces and used to find the operator's line in them. */
  filename?: string;
  /** `object` (default): the result must be a plain JSON object. `json`: any JSON value. */
  result?: 'object' | 'json';
  /** Calls handed to the sandbox worker at once (one message); it runs them one after another,
   * but batching them avoids a thread hop per call. */
  maxConcurrent?: number;
  /** Calls waiting beyond `maxConcurrent`; one more is answered `busy` at once. */
  maxQueued?: number;
  /**
   * How long a call may wait for others to go with it to the worker (0: at the next microtask, the
   * default). Each hand-over costs two thread hops whatever it carries; for calls that nobody waits
   * on (payload parsing after delivery) a few milliseconds turn one hop per call into one per batch.
   */
  batchWindowMs?: number;
  /** Largest serialized result, in UTF-16 code units; a bigger one is `bad-result`. */
  maxResultChars?: number;
}

export interface InvokeOptions {
  timeoutMs?: number;
}

export type LogLevel = 'log' | 'warn' | 'error';

export interface LogLine {
  level: LogLevel;
  message: string;
}

/**
 * Why a call produced no value. `timeout`: over its time limit, or awaited something that can
 * never settle. `memory`: the script hit its heap cap (its sandbox is recreated on the next call).
 * `threw`: the script threw or rejected. `bad-result`: the value was not JSON (or not an object
 * when one is required). `busy`: the queue was full. `disposed`: the script was disposed.
 * `internal`: the sandbox failed in a way none of the above explains (a wasm trap, a lost worker).
 */
export type InvokeErrorKind = 'timeout' | 'memory' | 'threw' | 'bad-result' | 'busy' | 'disposed' | 'internal';

export const INVOKE_ERROR_KINDS: readonly InvokeErrorKind[] = Object.freeze([
  'timeout', 'memory', 'threw', 'bad-result', 'busy', 'disposed', 'internal',
]);

export interface InvokeError {
  kind: InvokeErrorKind;
  /** For the operator, e.g. `Error: bad signature (line 7)`. */
  message: string;
  /** The operator's line the error was thrown from, when the stack shows it. */
  line?: number;
}

interface InvokeOutcome {
  /** Console output of this call, at most `SANDBOX_LIMITS.logLinesPerCall` lines. */
  logs: LogLine[];
  /** True when console output was dropped because of the line limit. */
  logsTruncated: boolean;
  /** Time the sandbox worker spent on this call, from its start to its answer. Time in our queue
   * and behind other calls is not counted. */
  durationMs: number;
}

export type InvokeResult =
  | ({ ok: true; value: JsonValue } & InvokeOutcome)
  | ({ ok: false; error: InvokeError } & InvokeOutcome);

/** Counters of one compiled script, a plain object for metrics. */
export interface ScriptStats {
  calls: number;
  succeeded: number;
  failures: Record<InvokeErrorKind, number>;
  /** Sandboxes recreated after a memory failure or a lost worker. */
  restarts: number;
  /** Sum of `durationMs` over all calls. */
  totalMs: number;
  inFlight: number;
  queued: number;
  /** Hand-overs to the sandbox worker: one message carrying up to `maxConcurrent` calls each. */
  batches: number;
}

/** One compiled operator script. It never throws for faults of the script itself. */
export interface CompiledScript {
  invoke(args: readonly SandboxArg[], options?: InvokeOptions): Promise<InvokeResult>;
  stats(): ScriptStats;
  /** Frees the script's sandbox; pending and later calls answer `disposed`. */
  dispose(): void;
}

/** Compiles operator JavaScript into callable scripts. Backend-neutral: QuickJS on WebAssembly today. */
export interface ScriptRunner {
  /** Rejects with `ScriptCompileError` when the source does not parse, its top-level code fails,
   * or it does not define the entry function. */
  compile(source: string, options: CompileOptions): Promise<CompiledScript>;
  /** Disposes every script this runner compiled. */
  dispose(): void;
}
