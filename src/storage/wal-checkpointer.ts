/**
 * Moves SQLite's WAL checkpoints off the event loop.
 *
 * Every write on the message path (the engine's state, the uplink journal, the message store) is a
 * synchronous better-sqlite3 call, so it commits before the acknowledgements of its turn leave. Its own
 * cost is an append to the write-ahead log (~1.8 ms per MB here). What made one device's flood of 1 MB
 * retained messages stall every other gateway of the process was SQLite's automatic checkpoint: every
 * ~4 MB of log, the committing call also copies the log into the database file and fsyncs it, 30 ms
 * and more on the event loop (measured: p99 of a 1 MB insert 30 ms with it, 3.3 ms without).
 *
 * Here the connections on the message path turn their automatic checkpoint off, and one worker thread
 * checkpoints their files instead (PASSIVE: it never waits for, nor blocks, the writer; WAL mode lets a
 * second connection copy committed frames while the first appends). A commit is durable once it is in
 * the log, checkpointed or not, so this changes no guarantee. The log's size stays bounded: the writer
 * starts the log over once a checkpoint has caught up, `journal_size_limit` trims the file then, and
 * if the worker stops or falls behind past `maxWalBytes` the connection gets its automatic checkpoint
 * back (the old behaviour: stalls, but bounded disk) and the log line says so.
 */
import { statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type { Logger } from '../core/logger.ts';
import { lowerThreadPriority, STORAGE_THREAD_NICENESS } from '../core/thread-priority.ts';

export interface WalCheckpointerOptions {
  logger: Logger;
  /** How often the logs' sizes are looked at. */
  intervalMs?: number;
  /** A log written to since the last checkpoint is checkpointed once it is this large, or a second later. */
  startAtBytes?: number;
  /** Past this, a connection checkpoints on its own again until its log is back under half of it. */
  maxWalBytes?: number;
}

/** SQLite's own default (pages), restored when the worker cannot do the job. */
const SQLITE_DEFAULT_AUTOCHECKPOINT = 1000;

/** The worker: one read-write connection per file, used for nothing but PASSIVE checkpoints. */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
(${lowerThreadPriority.toString()})(workerData.niceness);
const Database = require(workerData.sqliteModule);
const connections = new Map();
parentPort.on('message', (m) => {
  if (m.type === 'close') {
    for (const db of connections.values()) db.close();
    connections.clear();
    parentPort.postMessage({ closed: true });
    return;
  }
  if (m.type === 'forget') {
    connections.get(m.file)?.close();
    connections.delete(m.file);
    return;
  }
  const started = Date.now();
  try {
    let db = connections.get(m.file);
    if (db === undefined) {
      db = new Database(m.file, { fileMustExist: true });
      connections.set(m.file, db);
    }
    const [r] = db.pragma('wal_checkpoint(PASSIVE)');
    parentPort.postMessage({ file: m.file, ok: true, busy: r.busy, log: r.log, checkpointed: r.checkpointed, ms: Date.now() - started });
  } catch (error) {
    parentPort.postMessage({ file: m.file, ok: false, error: String(error && error.message || error), ms: Date.now() - started });
  }
});
`;

/** The connection that writes a file: a better-sqlite3 connection, or the thread that holds it (`SqliteWriter`). */
export interface WritingConnection {
  readonly open: boolean;
  pragma(source: string): unknown;
}

interface Managed {
  db: WritingConnection;
  wal: string;
  inFlight: boolean;
  /** The log's modification time when the last checkpoint was asked for: unchanged, nothing new to copy. */
  askedAtMtime: number;
  askedAt: number;
  /** The connection checkpoints itself (the worker stopped, or its log passed `maxWalBytes`). */
  selfCheckpointing: boolean;
}

type Reply = { file: string; ok: true; busy: number; log: number; checkpointed: number; ms: number }
  | { file: string; ok: false; error: string; ms: number }
  | { closed: true };

export class WalCheckpointer {
  readonly #logger: Logger;
  readonly #startAt: number;
  readonly #maxWal: number;
  readonly #managed = new Map<string, Managed>();
  readonly #timer: NodeJS.Timeout;
  #worker: Worker | null;
  /** Checkpoints the worker completed, and the ones that failed. */
  checkpoints = 0;
  failures = 0;

  constructor(options: WalCheckpointerOptions) {
    this.#logger = options.logger;
    this.#startAt = options.startAtBytes ?? 4 * 1024 * 1024;
    this.#maxWal = options.maxWalBytes ?? 256 * 1024 * 1024;
    const sqliteModule = createRequire(import.meta.url).resolve('better-sqlite3');
    const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { niceness: STORAGE_THREAD_NICENESS, sqliteModule } });
    worker.unref();
    worker.on('message', (reply: Reply) => this.#onReply(reply));
    worker.on('error', (err) => this.#logger.error({ err }, 'wal_checkpointer_failed'));
    worker.on('exit', (code) => {
      if (this.#worker === null) return; // closed
      this.#worker = null;
      this.#logger.error({ code }, 'wal_checkpointer_stopped');
      for (const m of this.#managed.values()) this.#selfCheckpoint(m, 'checkpointer stopped');
    });
    this.#worker = worker;
    this.#timer = setInterval(() => this.#tick(), options.intervalMs ?? 50);
    this.#timer.unref();
  }

  /** Takes over the checkpoints of `db` (a WAL-mode connection to `file`). */
  manage(db: WritingConnection, file: string): void {
    const m: Managed = { db, wal: `${file}-wal`, inFlight: false, askedAtMtime: 0, askedAt: 0, selfCheckpointing: false };
    // Where the log is trimmed to when the writer starts it over: its size otherwise stays at its peak.
    // (Under the hand-back mark, so a log the connection checkpointed itself can return to the worker.)
    db.pragma(`journal_size_limit = ${Math.min(this.#startAt * 4, Math.floor(this.#maxWal / 4))}`);
    this.#managed.set(file, m);
    if (this.#worker === null) this.#selfCheckpoint(m, 'checkpointer stopped');
    else db.pragma('wal_autocheckpoint = 0');
  }

  /** Before `db` closes: the worker lets go of the file, so the last connection to close cleans up its log. */
  forget(file: string): void {
    if (this.#managed.delete(file)) this.#worker?.postMessage({ type: 'forget', file });
  }

  /** Current size of every managed log, for metrics and tests. */
  walBytes(): number {
    let total = 0;
    for (const m of this.#managed.values()) total += statOf(m.wal).size;
    return total;
  }

  /** Stops the worker (its connections close with it); managed connections checkpoint on their own again. */
  async close(): Promise<void> {
    clearInterval(this.#timer);
    const worker = this.#worker;
    this.#worker = null;
    for (const m of this.#managed.values()) {
      if (m.db.open) this.#selfCheckpoint(m, null);
    }
    this.#managed.clear();
    if (worker === null) return;
    // Its connections are closed before the thread ends, so the file's last connection to close (the
    // writer's) checkpoints and removes the log as SQLite does on a clean shutdown.
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 5_000);
      worker.on('message', (reply: Reply) => {
        if ('closed' in reply) {
          clearTimeout(timer);
          resolve();
        }
      });
      worker.postMessage({ type: 'close' });
    });
    await worker.terminate();
  }

  #tick(): void {
    const now = Date.now();
    for (const [file, m] of this.#managed) {
      if (!m.db.open) {
        this.forget(file);
        continue;
      }
      const { size, mtimeMs } = statOf(m.wal);
      if (m.selfCheckpointing) {
        // Back to the worker once the log is small again (and the worker is alive).
        if (this.#worker !== null && size < this.#maxWal / 2) {
          m.selfCheckpointing = false;
          m.db.pragma('wal_autocheckpoint = 0');
          this.#logger.info({ file, walBytes: size }, 'wal_checkpoint_resumed');
        }
        continue;
      }
      if (size > this.#maxWal) {
        this.#selfCheckpoint(m, `log of ${size} bytes over ${this.#maxWal}`);
        continue;
      }
      // The file keeps its size when the writer starts the log over, so its time tells whether anything
      // was written since the last checkpoint; small writes are left to gather for a second.
      const written = mtimeMs !== m.askedAtMtime;
      if (written && !m.inFlight && this.#worker !== null && (size >= this.#startAt || now - m.askedAt >= 1_000)) {
        m.inFlight = true;
        m.askedAtMtime = mtimeMs;
        m.askedAt = now;
        this.#worker.postMessage({ type: 'checkpoint', file });
      }
    }
  }

  #onReply(reply: Reply): void {
    if ('closed' in reply) return;
    const m = this.#managed.get(reply.file);
    if (m !== undefined) m.inFlight = false;
    if (reply.ok) {
      this.checkpoints++;
      if (reply.ms > 1_000) this.#logger.info({ file: reply.file, ms: reply.ms, frames: reply.checkpointed }, 'wal_checkpoint_slow');
    } else {
      this.failures++;
      this.#logger.warn({ file: reply.file, reason: reply.error }, 'wal_checkpoint_failed');
    }
  }

  #selfCheckpoint(m: Managed, reason: string | null): void {
    m.inFlight = false;
    if (m.selfCheckpointing || !m.db.open) return;
    m.selfCheckpointing = true;
    m.db.pragma(`wal_autocheckpoint = ${SQLITE_DEFAULT_AUTOCHECKPOINT}`);
    if (reason !== null) this.#logger.warn({ wal: m.wal, reason }, 'wal_checkpoint_on_event_loop');
  }
}

function statOf(file: string): { size: number; mtimeMs: number } {
  try {
    const { size, mtimeMs } = statSync(file);
    return { size, mtimeMs };
  } catch {
    return { size: 0, mtimeMs: 0 };
  }
}
