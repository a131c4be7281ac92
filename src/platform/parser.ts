/**
 * A gateway's data parsing: its `transformPayload` compiled once per script version in the parsing
 * sandbox (worker threads at a lower priority), run on each uplink after the message has already been
 * routed to MQTT subscribers. MQTT never waits for it. When parsing cannot keep up, what waits for the
 * script is bounded per gateway in messages (`maxPending`) and in payload bytes (`maxPendingBytes`);
 * a message beyond either bound is not parsed (stored and streamed with its parse error, counted as
 * `dropped`): a slow or looping script, or a core busy forwarding MQTT, costs the gateway parsed
 * output, never its MQTT traffic and never unbounded memory.
 */
import type { Logger } from '../core/logger.ts';
import type { DataParsingConfig } from '../registry/index.ts';
import { ScriptCompileError, type CompiledScript, type ScriptRunner } from '../sandbox/index.ts';

export const TRANSFORM_FILENAME = 'transformPayload.js';

const DEFAULT_MAX_PENDING_BYTES = 16 * 1024 * 1024;

export interface ParsingLimits {
  /** Per message. */
  timeoutMs: number;
  memoryMb: number;
  /** Messages waiting for the script per gateway; more are dropped unparsed. */
  maxPending: number;
  /** Payload and topic bytes waiting for the script per gateway; more are dropped unparsed (default 16 MiB). */
  maxPendingBytes?: number;
  /** Messages handed to the sandbox worker in one batch (default 64). */
  batchSize?: number;
  /**
   * How long a message may wait for others to share its trip to the sandbox worker (default 2 ms).
   * Every trip costs two thread hops whatever it carries; parsing happens after delivery and nobody
   * waits on it, so at a few thousand messages a second a short wait turns a hop per message into a
   * hop per batch.
   */
  batchWindowMs?: number;
}

export type ParseOutcome =
  | { ok: true; value: Record<string, unknown> }
  | { ok: false; kind: string; error: string };

export interface ParsingCounters {
  parsed: number;
  failed: number;
  dropped: number;
}

/** A gateway's counters and whether a compiled script runs on its messages (`GET /gateways/:id/parsing`). */
export type ParsingStats = ParsingCounters & { enabled: boolean };

const DROPPED: ParseOutcome = Object.freeze({ ok: false, kind: 'dropped', error: 'not parsed: the parsing queue of this gateway is full' });

export class GatewayParser {
  readonly counters: ParsingCounters = { parsed: 0, failed: 0, dropped: 0 };
  #source: string | null = null;
  /** The compiled script (or why it does not compile) for `#source`. */
  #compiled: Promise<CompiledScript | string> | null = null;
  #pending = 0;
  #pendingBytes = 0;
  readonly #maxPendingBytes: number;
  readonly #runner: ScriptRunner;
  readonly #limits: ParsingLimits;
  readonly #log: Logger;

  constructor(runner: ScriptRunner, limits: ParsingLimits, log: Logger) {
    this.#runner = runner;
    this.#limits = limits;
    this.#maxPendingBytes = limits.maxPendingBytes ?? DEFAULT_MAX_PENDING_BYTES;
    this.#log = log;
  }

  /** Takes the gateway's (possibly edited) parsing settings; recompiles only when the script changed. */
  configure(config: DataParsingConfig): void {
    const source = config.enabled && config.script !== null && config.script.trim() !== '' ? config.script : null;
    if (source === this.#source) return;
    const previous = this.#compiled;
    this.#source = source;
    this.#compiled = source === null ? null : this.#compile(source);
    // Calls already handed to the old script finish with 'disposed' and are counted as failures.
    if (previous !== null) void previous.then((s) => typeof s !== 'string' && s.dispose());
  }

  get enabled(): boolean {
    return this.#compiled !== null;
  }

  /** Null when parsing is off; the outcome itself when the message is not parsed (dropped). Never rejects. */
  parse(topic: string, payload: Buffer): Promise<ParseOutcome> | ParseOutcome | null {
    const compiled = this.#compiled;
    if (compiled === null) return null;
    // A topic is at most 65,535 bytes of UTF-8; its UTF-16 length is close enough for a bound.
    const bytes = payload.byteLength + topic.length;
    if (this.#pending >= this.#limits.maxPending || this.#pendingBytes + bytes > this.#maxPendingBytes) {
      this.counters.dropped++;
      return DROPPED;
    }
    this.#pending++;
    this.#pendingBytes += bytes;
    return this.#run(compiled, topic, payload).finally(() => {
      this.#pending--;
      this.#pendingBytes -= bytes;
    });
  }

  dispose(): void {
    this.configure({ enabled: false, script: null });
  }

  async #run(compiled: Promise<CompiledScript | string>, topic: string, payload: Buffer): Promise<ParseOutcome> {
    const script = await compiled;
    if (typeof script === 'string') {
      this.counters.failed++;
      return { ok: false, kind: 'compile', error: script };
    }
    const result = await script.invoke([topic, new Uint8Array(payload.buffer, payload.byteOffset, payload.byteLength)]);
    if (result.ok) {
      this.counters.parsed++;
      return { ok: true, value: result.value as Record<string, unknown> };
    }
    if (result.error.kind === 'busy') {
      this.counters.dropped++;
      return DROPPED;
    }
    this.counters.failed++;
    return { ok: false, kind: result.error.kind, error: `${result.error.kind}: ${result.error.message}` };
  }

  async #compile(source: string): Promise<CompiledScript | string> {
    try {
      return await this.#runner.compile(source, {
        kind: 'module-function', entry: 'transformPayload', filename: TRANSFORM_FILENAME, result: 'object',
        timeoutMs: this.#limits.timeoutMs, memoryMb: this.#limits.memoryMb, maxQueued: this.#limits.maxPending,
        maxConcurrent: this.#limits.batchSize ?? 64, batchWindowMs: this.#limits.batchWindowMs ?? 2,
      });
    } catch (err) {
      const message = err instanceof ScriptCompileError ? err.message : (err as Error).message;
      this.#log.warn({ reason: message }, 'parsing_script_unusable');
      return `compile: ${message}`;
    }
  }
}
