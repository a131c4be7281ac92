import type { CompileFailureReason } from './errors.ts';
import type { InvokeErrorKind, LogLine } from './types.ts';

/*
 * Messages between QuickJsRunner (event-loop thread) and its sandbox workers. Everything here is
 * structured-cloned by postMessage, so nothing the worker sends can alias the host's objects.
 */

/**
 * The longest the worker's own setup of a script's instance (the prelude) may run before the script's
 * top-level code: the interrupt handler's deadline there, and part of a compile's limit for the watchdog.
 */
export const SETUP_TIMEOUT_MS = 5000;

/** What a worker needs to (re)create a script's QuickJS instance. */
export interface ScriptSpec {
  source: string;
  entry: string;
  filename: string;
  timeoutMs: number;
  memoryMb: number;
  requireObject: boolean;
  maxResultChars: number;
}

/** An argument ready to cross: JSON text (parsed inside), a primitive, or bytes of its own. */
export type PreparedArg =
  | { code: 'j'; json: string }
  | { code: 'r'; value: string | number | boolean | null | undefined }
  | { code: 'b'; bytes: Uint8Array };

export interface CallRequest {
  callId: number;
  args: PreparedArg[];
  timeoutMs: number;
}

export type ToWorker =
  | { type: 'compile'; scriptId: number; spec: ScriptSpec }
  | { type: 'calls'; scriptId: number; calls: CallRequest[] }
  | { type: 'dispose'; scriptId: number };

export interface CompileFailure {
  reason: CompileFailureReason;
  detail: string;
  line?: number;
  column?: number;
}

/** One call's answer: `raw` is the prelude's answer string (see prelude.ts), else `error`. */
export interface CallAnswer {
  callId: number;
  raw?: string;
  error?: { kind: InvokeErrorKind; message: string };
  logs: LogLine[];
  truncated: boolean;
  durationMs: number;
  /** The script's instance was created anew (after a memory failure) before this call ran. */
  restarted: boolean;
}

export type FromWorker =
  /** Booted: from now on, the worker's silence counts against the work it was given. */
  | { type: 'ready' }
  | { type: 'compiled'; scriptId: number; failure?: CompileFailure; internal?: string }
  | { type: 'answers'; scriptId: number; answers: CallAnswer[] };
