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
import type { LoopSaturation } from '../core/loop-pressure.ts';
import { RingQueue } from '../broker/index.ts';
import type { DataParsingConfig } from '../registry/index.ts';
import { ScriptCompileError, type CompiledScript, type InvokeResult, type ScriptRunner } from '../sandbox/index.ts';

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
  /** Not parsed because the event loop was saturated (`LoopPressure`): MQTT traffic went first. */
  shed: number;
}

/** A gateway's counters and whether a compiled script runs on its messages (`GET /gateways/:id/parsing`). */
export type ParsingStats = ParsingCounters & { enabled: boolean };

const DROPPED: ParseOutcome = Object.freeze({ ok: false, kind: 'dropped', error: 'not parsed: the parsing queue of this gateway is full' });
const SHED: ParseOutcome = Object.freeze({
  ok: false, kind: 'shed', error: 'not parsed: the event loop was saturated, and MQTT traffic goes first',
});
const DISPOSED: ParseOutcome = Object.freeze({ ok: false, kind: 'disposed', error: 'disposed: the gateway\'s parsing script was replaced or turned off' });

/**
 * Calls handed to the sandbox at once per gateway: two batches, so the worker has the next while it answers one. The
 * rest of the queue waits here as data — the message and its callback in two rings — not as a promise, a job and
 * prepared arguments each: what waits lives long enough (the queue's length over the parse rate) to be promoted,
 * and at saturation collecting it cost the event loop more than the hand-over itself (docs/benchmarks.md, session 19).
 */
const HANDED_AT_ONCE_BATCHES = 2;

/** A message to parse: what the uplink tap passes is its uplink itself. */
export interface ParseItem {
  readonly topic: string;
  readonly payload: Buffer;
}

/** Told each queued message's outcome, once; the same function for every message of a caller (no closure each). */
export type ParseDone<T extends ParseItem> = (item: T, outcome: ParseOutcome) => void;

export class GatewayParser {
  readonly counters: ParsingCounters = { parsed: 0, failed: 0, dropped: 0, shed: 0 };
  #source: string | null = null;
  /** The compiled script (or why it does not compile) for `#source`. */
  #compiled: Promise<CompiledScript | string> | null = null;
  /** `#compiled` once it settled: undefined while it compiles. */
  #script: CompiledScript | string | undefined;
  /** Messages waiting and each one's callback, in step (two rings: nothing allocated per message, no copy as they turn over). */
  readonly #items = new RingQueue<ParseItem>();
  readonly #dones = new RingQueue<ParseDone<ParseItem>>();
  /** Calls handed to the sandbox and not answered. */
  #handed = 0;
  /** Waiting and handed: what the bounds count. */
  #pending = 0;
  #pendingBytes = 0;
  readonly #maxPendingBytes: number;
  readonly #maxHanded: number;
  readonly #runner: ScriptRunner;
  readonly #limits: ParsingLimits;
  readonly #log: Logger;
  readonly #saturation: LoopSaturation | undefined;
  /** Its queue overflowed while the loop was saturated: uplinks are shed until the loop is not. */
  #shedding = false;
  /** `counters.shed` when the episode began (its end logs how many it shed). */
  #shedAtStart = 0;
  /** The items `parse()` queued: never shed, also when they wait as shedding starts. */
  readonly #neverShed = new WeakSet<ParseItem>();

  /**
   * `saturation`: this thread's event loop has no time to spare. A gateway whose queue overflows meanwhile (its parsing
   * cannot keep up) parses nothing more (`shed`, answered at once) until the loop has time again: on a saturated core
   * the trickle it still parsed cost MQTT traffic ~10 % of its throughput (docs/benchmarks.md). A gateway whose parsing
   * keeps up goes on parsing: one device's flood does not stop the parsing of a quiet gateway.
   */
  constructor(runner: ScriptRunner, limits: ParsingLimits, log: Logger, saturation?: LoopSaturation) {
    this.#runner = runner;
    this.#saturation = saturation;
    this.#limits = limits;
    this.#maxPendingBytes = limits.maxPendingBytes ?? DEFAULT_MAX_PENDING_BYTES;
    this.#maxHanded = HANDED_AT_ONCE_BATCHES * (limits.batchSize ?? 64);
    this.#log = log;
  }

  /** Takes the gateway's (possibly edited) parsing settings; recompiles only when the script changed. */
  configure(config: DataParsingConfig): void {
    const source = config.enabled && config.script !== null && config.script.trim() !== '' ? config.script : null;
    if (source === this.#source) return;
    const previous = this.#compiled;
    this.#source = source;
    this.#script = undefined;
    const compiled = source === null ? null : this.#compile(source);
    this.#compiled = compiled;
    void compiled?.then((script) => {
      if (this.#compiled !== compiled) return; // replaced meanwhile (and disposed below)
      this.#script = script;
      this.#hand();
    });
    // Messages still waiting end as failures ('disposed'), as calls already handed to the old script do.
    this.#failWaiting();
    if (previous !== null) void previous.then((s) => typeof s !== 'string' && s.dispose());
  }

  get enabled(): boolean {
    return this.#compiled !== null;
  }

  /**
   * Queues `item` for the script: 'queued' (`done` is told its outcome later, never before this returns), the
   * outcome itself when it is not parsed (dropped, shed, or the script does not compile), or null when parsing is off.
   */
  submit<T extends ParseItem>(item: T, done: ParseDone<T>): 'queued' | ParseOutcome | null {
    return this.#submit(item, done, true);
  }

  /**
   * `submit` with a promise: for callers that parse one message at a time (the journal's replay, tests). Never shed:
   * one at a time leaves the loop its time, and the journal's replay is what a crash left unfinished.
   */
  parse(topic: string, payload: Buffer): Promise<ParseOutcome> | ParseOutcome | null {
    let resolve: (outcome: ParseOutcome) => void = () => undefined;
    const settled = new Promise<ParseOutcome>((r) => (resolve = r));
    const item = { topic, payload };
    this.#neverShed.add(item);
    const queued = this.#submit(item, (_item, outcome) => resolve(outcome), false);
    return queued === 'queued' ? settled : queued;
  }

  #submit<T extends ParseItem>(item: T, done: ParseDone<T>, mayShed: boolean): 'queued' | ParseOutcome | null {
    if (this.#compiled === null) return null;
    if (typeof this.#script === 'string') {
      this.counters.failed++;
      return { ok: false, kind: 'compile', error: this.#script };
    }
    if (this.#shedding && mayShed) {
      if (this.#saturation!.saturated) {
        this.counters.shed++;
        return SHED;
      }
      this.#shedding = false; // the loop has time again
      this.#log.info({ shed: this.counters.shed - this.#shedAtStart }, 'parsing_shedding_ended');
    }
    // A topic is at most 65,535 bytes of UTF-8; its UTF-16 length is close enough for a bound.
    const bytes = item.payload.byteLength + item.topic.length;
    if (this.#pending >= this.#limits.maxPending || this.#pendingBytes + bytes > this.#maxPendingBytes) {
      this.counters.dropped++;
      if (this.#saturation?.saturated === true && !this.#shedding) this.#shed();
      return DROPPED;
    }
    this.#pending++;
    this.#pendingBytes += bytes;
    this.#items.push(item);
    this.#dones.push(done as ParseDone<ParseItem>);
    if (this.#handed < this.#maxHanded && this.#script !== undefined) this.#hand();
    return 'queued';
  }

  dispose(): void {
    this.configure({ enabled: false, script: null });
  }

  /** Hands waiting messages to the sandbox, up to `#maxHanded` at once. */
  #hand(): void {
    const script = this.#script;
    if (script === undefined) return;
    while (this.#handed < this.#maxHanded && this.#items.length > 0) {
      const item = this.#items.shift()!;
      const done = this.#dones.shift()!;
      if (typeof script === 'string') {
        this.counters.failed++;
        this.#end(item, done, { ok: false, kind: 'compile', error: script });
        continue;
      }
      this.#handed++;
      const payload = item.payload;
      const answered = (outcome: ParseOutcome): void => {
        this.#handed--;
        this.#end(item, done, outcome);
        this.#hand();
      };
      script.invoke([item.topic, new Uint8Array(payload.buffer, payload.byteOffset, payload.byteLength)])
        .then((result) => answered(this.#outcome(result)), (err: unknown) => {
          // A refusal of the call itself (not the script's doing): counted as a failure, never a stalled queue.
          this.counters.failed++;
          answered({ ok: false, kind: 'internal', error: `internal: ${(err as Error).message}` });
        });
    }
  }

  #outcome(result: InvokeResult): ParseOutcome {
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

  #end(item: ParseItem, done: ParseDone<ParseItem>, outcome: ParseOutcome): void {
    this.#pending--;
    this.#pendingBytes -= item.payload.byteLength + item.topic.length;
    try {
      done(item, outcome);
    } catch (err) {
      this.#log.error({ err }, 'parsing_outcome_handler_failed');
    }
  }

  /**
   * Its parsing cannot keep up and the loop has no time to spare: it stops until the loop has some, and what waits goes
   * now (shed), so the sandbox is left the calls already handed to it and not a queue's worth of work on the busy core.
   */
  #shed(): void {
    this.#shedding = true;
    this.#shedAtStart = this.counters.shed;
    // Once per episode: the operator learns why messages are stored unparsed (the counter says how many).
    this.#log.warn({ waiting: this.#items.length }, 'parsing_shedding_started');
    for (let n = this.#items.length; n > 0; n--) {
      const item = this.#items.shift()!;
      const done = this.#dones.shift()!;
      if (this.#neverShed.has(item)) { // parse()'s: back in line, in order
        this.#items.push(item);
        this.#dones.push(done);
        continue;
      }
      this.counters.shed++;
      this.#end(item, done, SHED);
    }
  }

  #failWaiting(): void {
    while (this.#items.length > 0) {
      const item = this.#items.shift()!;
      const done = this.#dones.shift()!;
      this.counters.failed++;
      this.#end(item, done, DISPOSED);
    }
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
