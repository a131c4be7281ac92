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

/** Calls whose arguments are packed in one buffer (`packCalls`), transferred, not copied. */
export interface PackedCalls {
  callIds: number[];
  timeouts: number[];
  buffer: ArrayBuffer;
}

export type ToWorker =
  | { type: 'compile'; scriptId: number; spec: ScriptSpec }
  | { type: 'calls'; scriptId: number; calls: CallRequest[] }
  | ({ type: 'packed'; scriptId: number } & PackedCalls)
  | { type: 'dispose'; scriptId: number };

/*
 * A packed batch: one ArrayBuffer, copied into the script's QuickJS memory in one piece and read
 * there by the prelude's invokeBatch (prelude.ts). Packing costs the event loop a few stores per
 * argument, where structured-cloning the calls cost an object, an array and an ArrayBuffer each.
 * Little-endian, as WebAssembly memory is (a big-endian host sends `calls` instead).
 *
 *   Int32 [0] calls, [1] byte offset of the text, [2] byte offset of the bytes, [3] Int32 words of
 *         this header; then per call: its argument count, and per argument (kind, start, length)
 *   text  UTF-16 code units: strings, JSON text and numbers (numberText: exact both ways), so that
 *         NUL and lone surrogates cross unchanged; start and length in code units
 *   bytes the Uint8Array arguments; start and length in bytes
 *
 * Kinds: 0 undefined, 1 null, 2 false, 3 true, 4 number, 5 string, 6 JSON text, 7 bytes.
 */
/** String(n) is read back exactly by Number(), except that it writes -0 as "0". */
function numberText(value: number): string {
  return Object.is(value, -0) ? '-0' : String(value);
}

export function packCalls(calls: readonly (readonly PreparedArg[])[]): ArrayBuffer {
  let words = 4;
  let units = 0;
  let bytes = 0;
  for (const args of calls) {
    words += 1 + 3 * args.length;
    for (const arg of args) {
      if (arg.code === 'b') bytes += arg.bytes.byteLength;
      else if (arg.code === 'j') units += arg.json.length;
      else if (typeof arg.value === 'string') units += arg.value.length;
      else if (typeof arg.value === 'number') units += numberText(arg.value).length;
    }
  }
  const textStart = words * 4;
  // The bytes start on a 4-byte boundary, where the header's alignment leaves them.
  const bytesStart = textStart + units * 2 + ((units * 2) % 4);
  const buffer = new ArrayBuffer(bytesStart + bytes);
  const head = new Int32Array(buffer, 0, words);
  const text = new Uint16Array(buffer, textStart, units);
  const raw = new Uint8Array(buffer, bytesStart, bytes);
  head[0] = calls.length;
  head[1] = textStart;
  head[2] = bytesStart;
  head[3] = words;
  let at = 4;
  let unit = 0;
  let byte = 0;
  const putText = (value: string): void => {
    head[at++] = unit;
    head[at++] = value.length;
    for (let i = 0; i < value.length; i++) text[unit++] = value.charCodeAt(i);
  };
  for (const args of calls) {
    head[at++] = args.length;
    for (const arg of args) {
      if (arg.code === 'b') {
        head[at++] = 7;
        head[at++] = byte;
        head[at++] = arg.bytes.byteLength;
        raw.set(arg.bytes, byte);
        byte += arg.bytes.byteLength;
        continue;
      }
      if (arg.code === 'j') {
        head[at++] = 6;
        putText(arg.json);
        continue;
      }
      const value = arg.value;
      if (typeof value === 'string') {
        head[at++] = 5;
        putText(value);
      } else if (typeof value === 'number') {
        head[at++] = 4;
        putText(numberText(value));
      } else {
        head[at++] = value === undefined ? 0 : value === null ? 1 : value ? 3 : 2;
        head[at++] = 0;
        head[at++] = 0;
      }
    }
  }
  return buffer;
}

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
  /**
   * About to rebuild a script's instance (dropped after a memory failure) inside the batch it is
   * on: its top-level code runs again there, which the batch's calls' limits do not cover.
   */
  | { type: 'rebuilding'; scriptId: number }
  | { type: 'answers'; scriptId: number; answers: CallAnswer[] };
