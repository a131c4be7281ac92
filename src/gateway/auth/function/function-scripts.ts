/**
 * Compiled verification functions, by name, shared by every gateway that verifies with them: a
 * function is compiled once (on the first CONNECT that needs it) and reused, not recompiled per
 * CONNECT. An edit or a delete in the registry drops the compiled copy; the next CONNECT compiles the
 * new source. The old script is disposed once calls already inside it have had their time.
 */
import type { Logger } from '../../../core/logger.ts';
import type { CompiledScript, ScriptRunner } from '../../../sandbox/index.ts';
import type { GatewayDirectory } from '../../ports.ts';

/** How long a failed compile (function missing, stored source that no longer runs) is remembered. */
const FAILURE_TTL_MS = 5_000;
/** Extra time given to calls in flight in a replaced script beyond the function's own limit. */
const RETIRE_GRACE_MS = 1_000;

interface Entry {
  compiled: Promise<CompiledScript>;
  timeoutMs: number;
}

export class FunctionScripts {
  readonly #directory: Pick<GatewayDirectory, 'getFunction' | 'events'>;
  readonly #log: Logger;
  /** The process's one sandbox (shared with data parsing and the registry's checks). */
  readonly #runner: ScriptRunner;
  readonly #entries = new Map<string, Entry>();
  readonly #unsubscribe: (() => void)[];
  #closed = false;

  constructor(directory: Pick<GatewayDirectory, 'getFunction' | 'events'>, logger: Logger, runner: ScriptRunner) {
    this.#directory = directory;
    this.#runner = runner;
    this.#log = logger;
    const drop = ({ name }: { name: string }): void => this.#drop(name);
    this.#unsubscribe = [
      directory.events.on('function.created', drop),
      directory.events.on('function.updated', drop),
      directory.events.on('function.deleted', drop),
      // Changes of other nodes may have been missed: every function is compiled again when next used.
      directory.events.on('registry.resync', () => {
        for (const name of [...this.#entries.keys()]) this.#drop(name);
      }),
    ];
  }

  /** The compiled function; rejects when it does not exist or does not compile. */
  get(name: string): Promise<CompiledScript> {
    const hit = this.#entries.get(name);
    if (hit !== undefined) return hit.compiled;
    if (this.#closed) return Promise.reject(new Error('verification functions are shut down'));
    const entry: Entry = { compiled: this.#compile(name, (ms) => (entry.timeoutMs = ms)), timeoutMs: 0 };
    this.#entries.set(name, entry);
    entry.compiled.catch(() => {
      setTimeout(() => {
        if (this.#entries.get(name) === entry) this.#entries.delete(name);
      }, FAILURE_TTL_MS).unref();
    });
    return entry.compiled;
  }

  close(): void {
    this.#closed = true;
    for (const off of this.#unsubscribe) off();
    for (const entry of this.#entries.values()) entry.compiled.then((script) => script.dispose(), () => undefined);
    this.#entries.clear();
  }

  async #compile(name: string, setTimeoutMs: (ms: number) => void): Promise<CompiledScript> {
    const fn = await this.#directory.getFunction(name);
    if (fn === undefined) throw new Error(`no verification function named "${name}"`);
    setTimeoutMs(fn.timeoutMs);
    try {
      const script = await this.#runner.compile(fn.source, {
        kind: 'module-function', entry: 'handler', filename: 'function.js', timeoutMs: fn.timeoutMs, memoryMb: fn.memoryMb,
      });
      this.#log.info({ function: name }, 'verification_function_compiled');
      return script;
    } catch (err) {
      this.#log.error({ function: name, reason: err instanceof Error ? err.message : String(err) }, 'verification_function_compile_failed');
      throw err;
    }
  }

  #drop(name: string): void {
    const entry = this.#entries.get(name);
    if (entry === undefined) return;
    this.#entries.delete(name);
    entry.compiled.then((script) => {
      setTimeout(() => script.dispose(), entry.timeoutMs + RETIRE_GRACE_MS).unref();
    }, () => undefined);
  }
}
