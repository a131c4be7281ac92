/**
 * One SQLite file's writes on a thread of its own, for the files on the message path (the engines'
 * state, the uplink journal).
 *
 * Those writes must be durable before the acknowledgements they cover leave, and they used to run
 * synchronously on the event loop for that reason: with one device publishing 1 MB retained messages,
 * ~1.8 ms per MB of SQLite appends (two files: the engine's state and the uplink journal) held every
 * other gateway's sockets, and another gateway's PING p99 followed them (`npm run bench:abuse`).
 * Here a write is posted to a worker thread that owns the file's only writing connection; the caller
 * gets a promise settled when the transaction has committed, and the engine holds back the packets
 * that depend on it until then (see `broker/commit-gate.ts`) — the event loop only copies the bytes.
 *
 * Ordering: transactions commit in the order they were posted (one thread, one queue), so "everything
 * posted so far is written" is one promise (`drain`). Reads stay where they were (a connection of the
 * caller's own; WAL lets it read while this thread appends), and anything not yet committed is still
 * in the caller's memory.
 *
 * Bytes: a structured clone of a Buffer copies its whole backing store, and a payload is often a view
 * of a 64 KB socket read or an 8 KB pool slab. So the BLOB parameters of a transaction are packed into
 * one unpooled buffer of exactly their size, transferred (not cloned), and cut back into views there.
 * A parameter over a SharedArrayBuffer (a large frame's payload) is not packed: it crosses by reference.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { lowerThreadPriority, STORAGE_THREAD_NICENESS } from '../core/thread-priority.ts';

/** One statement of a transaction: its SQL and positional parameters (Buffers bind as BLOBs). */
export interface WriteStatement {
  sql: string;
  params: readonly unknown[];
}

/** Distinct statements kept prepared in the thread (the stores issue a dozen shapes). */
const PREPARED_STATEMENTS = 64;

const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
(${lowerThreadPriority.toString()})(workerData.niceness);
const Database = require(workerData.sqliteModule);
const describe = (e) => ({ name: e && e.name || 'Error', message: e && e.message || String(e), code: e && typeof e.code === 'string' ? e.code : undefined });
const cache = new Map();
function prepare(sql) {
  let statement = cache.get(sql);
  if (statement === undefined) {
    statement = db.prepare(sql);
    if (cache.size >= workerData.preparedStatements) cache.delete(cache.keys().next().value);
    cache.set(sql, statement);
  }
  return statement;
}
let db = null;
let openError = null;
try {
  db = new Database(workerData.file, { fileMustExist: true });
  for (const p of workerData.pragmas) db.pragma(p);
} catch (e) {
  openError = describe(e);
}
const transaction = db === null ? null : db.transaction((m, blob) => {
  for (let i = 0; i < m.refs.length; i += 4) m.params[m.refs[i]][m.refs[i + 1]] = blob.subarray(m.refs[i + 2], m.refs[i + 2] + m.refs[i + 3]);
  let last = 0;
  for (let i = 0; i < m.statements.length; i++) last = prepare(m.sql[m.statements[i]]).run(m.params[i]).lastInsertRowid;
  return Number(last);
});
parentPort.on('message', (m) => {
  if (m.close) {
    if (db !== null) db.close();
    db = null;
    parentPort.postMessage({ id: m.id });
    return;
  }
  try {
    if (db === null) throw Object.assign(new Error(openError ? openError.message : 'the database is closed'), { code: openError && openError.code });
    if (m.pragma !== undefined) {
      db.pragma(m.pragma);
      parentPort.postMessage({ id: m.id });
    } else {
      parentPort.postMessage({ id: m.id, lastInsertRowid: transaction(m, m.blob === null ? null : Buffer.from(m.blob)) });
    }
  } catch (e) {
    parentPort.postMessage({ id: m.id, error: describe(e) });
  }
});
`;

interface ErrorShape { name: string; message: string; code?: string }
interface Reply { id: number; lastInsertRowid?: number; error?: ErrorShape }
interface Pending { resolve: (lastInsertRowid: number) => void; reject: (error: Error) => void }

/**
 * A transaction as it crosses to the thread: each distinct SQL text once (a batch of a thousand rows
 * repeats one), statements as indexes into it; BLOB parameters replaced by [statement, parameter,
 * offset, length] into `blob`.
 */
interface TransactionMessage {
  id: number;
  sql: string[];
  statements: number[];
  params: unknown[][];
  refs: number[];
  blob: ArrayBuffer | null;
}

function toError(shape: ErrorShape): Error {
  const error = new Error(shape.message) as Error & { code?: string };
  error.name = shape.name;
  if (shape.code !== undefined) error.code = shape.code;
  return error;
}

/** The statements with their BLOB parameters packed into one buffer of exactly their size. */
export function packTransaction(id: number, statements: readonly WriteStatement[]): TransactionMessage {
  let bytes = 0;
  for (const s of statements) for (const p of s.params) if (p instanceof Uint8Array && !(p.buffer instanceof SharedArrayBuffer)) bytes += p.byteLength;
  const packed = bytes === 0 ? null : Buffer.allocUnsafeSlow(bytes);
  const refs: number[] = [];
  const params: unknown[][] = new Array<unknown[]>(statements.length);
  let offset = 0;
  for (let i = 0; i < statements.length; i++) {
    const source = statements[i]!.params;
    const copy = source.slice();
    for (let j = 0; j < copy.length; j++) {
      const p = copy[j];
      // A view of shared memory (a large frame, see framer.ts) crosses as it is: by reference, not copied.
      if (!(p instanceof Uint8Array) || p.buffer instanceof SharedArrayBuffer) continue;
      packed!.set(p, offset);
      refs.push(i, j, offset, p.byteLength);
      offset += p.byteLength;
      copy[j] = null;
    }
    params[i] = copy;
  }
  const sql: string[] = [];
  const index = new Map<string, number>();
  const order = statements.map((s) => {
    let at = index.get(s.sql);
    if (at === undefined) index.set(s.sql, (at = sql.push(s.sql) - 1));
    return at;
  });
  return { id, sql, statements: order, params, refs, blob: packed === null ? null : packed.buffer };
}

export class SqliteWriter {
  readonly file: string;
  readonly #worker: Worker;
  readonly #pending = new Map<number, Pending>();
  #nextId = 1;
  #failure: Error | null = null;
  #closed = false;
  /** Settles when the last thing posted has (one thread, one queue: everything before it has too). */
  #tail: Promise<void> = Promise.resolve();

  /** `file` must exist (its tables made by the caller's own connection); `pragmas` run once on the thread's connection. */
  constructor(file: string, pragmas: readonly string[]) {
    this.file = file;
    const sqliteModule = createRequire(import.meta.url).resolve('better-sqlite3');
    this.#worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { niceness: STORAGE_THREAD_NICENESS, sqliteModule, file, pragmas, preparedStatements: PREPARED_STATEMENTS } });
    // Referenced only while a reply is owed: an idle writer never keeps the process alive.
    this.#worker.unref();
    this.#worker.on('message', (reply: Reply) => this.#onReply(reply));
    this.#worker.on('error', (err) => this.#fail(err));
    this.#worker.on('exit', (code) => this.#fail(new Error(`the SQLite writer of ${file} stopped (exit code ${code})`)));
  }

  /** False once closed or failed: a caller (the WAL checkpointer) stops asking it. */
  get open(): boolean {
    return !this.#closed && this.#failure === null;
  }

  /** Writes `statements` as one transaction, after everything posted before; resolves with the last statement's rowid. */
  run(statements: readonly WriteStatement[]): Promise<number> {
    const id = this.#nextId++;
    return this.#post(id, () => {
      const message = packTransaction(id, statements);
      this.#worker.postMessage(message, message.blob === null ? [] : [message.blob]);
    });
  }

  /** A pragma on the writing connection, in order with the transactions (the checkpointer turns autocheckpoint on and off). */
  pragma(source: string): void {
    const id = this.#nextId++;
    // Its failure is the writer's failure, reported through the transactions that follow.
    this.#post(id, () => this.#worker.postMessage({ id, pragma: source })).catch(() => undefined);
  }

  /** Settles once everything posted so far has committed or failed. */
  drain(): Promise<void> {
    return this.#tail;
  }

  /** Lets everything posted commit, then closes the connection and ends the thread. */
  async close(): Promise<void> {
    if (this.#closed) return;
    const wasOpen = this.#failure === null;
    const id = this.#nextId++;
    const closing = wasOpen ? this.#post(id, () => this.#worker.postMessage({ id, close: true })).catch(() => undefined) : Promise.resolve();
    this.#closed = true;
    await closing;
    await this.#worker.terminate();
  }

  #post(id: number, send: () => void): Promise<number> {
    if (this.#failure !== null) return Promise.reject(this.#failure);
    if (this.#closed) return Promise.reject(new Error(`the SQLite writer of ${this.file} is closed`));
    const done = new Promise<number>((resolve, reject) => {
      if (this.#pending.size === 0) this.#worker.ref();
      this.#pending.set(id, { resolve, reject });
      try {
        send();
      } catch (error) {
        this.#settle(id);
        reject(error instanceof Error ? error : new Error(String(error)));
      }
    });
    this.#tail = done.then(() => undefined, () => undefined);
    return done;
  }

  #settle(id: number): Pending | undefined {
    const p = this.#pending.get(id);
    this.#pending.delete(id);
    if (this.#pending.size === 0) this.#worker.unref();
    return p;
  }

  #onReply(reply: Reply): void {
    const p = this.#settle(reply.id);
    if (p === undefined) return;
    if (reply.error !== undefined) p.reject(toError(reply.error));
    else p.resolve(reply.lastInsertRowid ?? 0);
  }

  #fail(error: Error): void {
    if (this.#closed) return;
    this.#failure ??= error;
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    this.#worker.unref();
    for (const p of pending) p.reject(this.#failure);
  }
}
