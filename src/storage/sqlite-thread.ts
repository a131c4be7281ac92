/**
 * The registry's SQLite database (gatehouse.db) on a thread of its own, behind a Kysely dialect.
 *
 * better-sqlite3 is synchronous: under Kysely's own SQLite driver every query of the registry, the
 * message store, the webhook outbox, connection events and device properties ran on the event loop,
 * and a 256 KiB statement of messages or a page of 100,000 devices held every gateway's sockets while
 * it ran (`npm run bench:abuse`: the message store's writes were the largest block of a fast
 * publisher's profile, and another gateway's PING p99 followed them). Here one worker thread owns the
 * connection; a query is a message to it and its rows a message back, so the event loop only copies.
 * WAL checkpoints of this file run in that thread too, where they block nothing but the thread.
 *
 * What stays on the event loop, synchronously, is what must commit before an acknowledgement leaves:
 * the engine's state and the uplink journal (their own files, see sqlite-state-stores.ts).
 *
 * Ordering: the thread runs queries in the order they were posted. Queries outside a transaction are
 * posted at once (pipelined); while a transaction holds the connection, other queries wait in this
 * thread and are posted after its COMMIT or ROLLBACK, so nothing of theirs runs inside it.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import {
  CompiledQuery, SqliteAdapter, SqliteIntrospector, SqliteQueryCompiler,
  type DatabaseConnection, type Dialect, type Driver, type Kysely, type QueryResult, type TransactionSettings,
} from 'kysely';
import { lowerThreadPriority, STORAGE_THREAD_NICENESS } from '../core/thread-priority.ts';

/** Distinct statements kept prepared in the thread; the application issues a few dozen shapes of query. */
export const PREPARED_STATEMENTS = 256;

/**
 * The thread (CommonJS, evaluated: it needs no build step and loads under tsx and from dist/ alike).
 * Kysely prepares every query it runs and SQLite's prepare is not cheap (on a flood of small messages
 * it was a sixth of the message store's time), so the same SQL text gets the same prepared statement
 * back, the least recently used of PREPARED_STATEMENTS dropped. Safe because a statement always runs
 * to completion here (`all` / `run`), never held open by `iterate`.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
(${lowerThreadPriority.toString()})(workerData.niceness);
const Database = require(workerData.sqliteModule);
const describe = (e) => ({ name: e && e.name || 'Error', message: e && e.message || String(e), code: e && typeof e.code === 'string' ? e.code : undefined });
const cache = new Map();
function prepare(db, sql) {
  let statement = cache.get(sql);
  if (statement !== undefined) cache.delete(sql);
  else {
    statement = db.prepare(sql);
    if (cache.size >= workerData.preparedStatements) cache.delete(cache.keys().next().value);
  }
  cache.set(sql, statement);
  return statement;
}
let db = null;
try {
  db = new Database(workerData.file);
  for (const p of workerData.pragmas) db.pragma(p);
  parentPort.postMessage({ id: 0, ready: true });
} catch (e) {
  parentPort.postMessage({ id: 0, error: describe(e) });
}
parentPort.on('message', (m) => {
  if (m.close) {
    if (db !== null) db.close();
    db = null;
    parentPort.postMessage({ id: m.id, closed: true });
    return;
  }
  if (m.stats) {
    parentPort.postMessage({ id: m.id, stats: { preparedStatements: cache.size } });
    return;
  }
  try {
    if (db === null) throw new Error('the database is closed');
    const statement = prepare(db, m.sql);
    if (statement.reader) {
      parentPort.postMessage({ id: m.id, rows: statement.all(m.params) });
    } else {
      const r = statement.run(m.params);
      parentPort.postMessage({ id: m.id, changes: r.changes, lastInsertRowid: r.lastInsertRowid });
    }
  } catch (e) {
    parentPort.postMessage({ id: m.id, error: describe(e) });
  }
});
`;

interface ErrorShape { name: string; message: string; code?: string }
interface Reply {
  id: number; ready?: true; closed?: true; error?: ErrorShape; rows?: Record<string, unknown>[];
  changes?: number; lastInsertRowid?: number | bigint; stats?: { preparedStatements: number };
}

/** The thread's error as an Error here, with SQLite's `code` (SQLITE_CONSTRAINT_UNIQUE …) that callers map. */
function toError(shape: ErrorShape): Error {
  const error = new Error(shape.message) as Error & { code?: string };
  error.name = shape.name;
  if (shape.code !== undefined) error.code = shape.code;
  return error;
}

/** Rows crossed the thread boundary as structured clones: BLOB columns arrive as Uint8Array, callers expect Buffer. */
function withBuffers(rows: Record<string, unknown>[]): Record<string, unknown>[] {
  for (const row of rows) {
    for (const key in row) {
      const v = row[key];
      if (v instanceof Uint8Array && !Buffer.isBuffer(v)) row[key] = Buffer.from(v.buffer, v.byteOffset, v.byteLength);
    }
  }
  return rows;
}

interface Pending { resolve: (reply: Reply) => void; reject: (error: Error) => void }

/** One SQLite connection in a worker thread: queries go in posting order, one reply each. */
export class SqliteThread {
  readonly #worker: Worker;
  readonly #pending = new Map<number, Pending>();
  #nextId = 1;
  #failure: Error | null = null;

  private constructor(worker: Worker) {
    this.#worker = worker;
    worker.unref(); // ref'd only while a reply is owed, so an idle connection keeps no process alive
    worker.on('message', (reply: Reply) => {
      const p = this.#pending.get(reply.id);
      if (p === undefined) return;
      this.#pending.delete(reply.id);
      if (this.#pending.size === 0) worker.unref();
      if (reply.error !== undefined) p.reject(toError(reply.error));
      else p.resolve(reply);
    });
    worker.on('error', (err) => this.#fail(err));
    worker.on('exit', (code) => this.#fail(new Error(`the SQLite thread stopped (exit code ${code})`)));
  }

  /** Opens `file` in a new thread and applies `pragmas`; rejects with SQLite's own error if it cannot. */
  static async open(file: string, pragmas: readonly string[]): Promise<SqliteThread> {
    const worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { niceness: STORAGE_THREAD_NICENESS, file, pragmas, preparedStatements: PREPARED_STATEMENTS, sqliteModule: createRequire(import.meta.url).resolve('better-sqlite3') },
    });
    const thread = new SqliteThread(worker);
    try {
      await thread.#request(0, () => undefined);
    } catch (error) {
      await worker.terminate();
      throw error;
    }
    return thread;
  }

  /** Runs one statement: rows for a reader, changes and the last row id otherwise. */
  async query(sql: string, params: readonly unknown[]): Promise<QueryResult<Record<string, unknown>>> {
    const id = this.#nextId++;
    const reply = await this.#request(id, () => this.#worker.postMessage({ id, sql, params }));
    if (reply.rows !== undefined) return { rows: withBuffers(reply.rows) };
    return {
      numAffectedRows: reply.changes === undefined ? undefined : BigInt(reply.changes),
      insertId: reply.lastInsertRowid === undefined ? undefined : BigInt(reply.lastInsertRowid),
      rows: [],
    };
  }

  /** For tests and diagnostics: how many statements the thread holds prepared. */
  async stats(): Promise<{ preparedStatements: number }> {
    const id = this.#nextId++;
    const reply = await this.#request(id, () => this.#worker.postMessage({ id, stats: true }));
    return reply.stats!;
  }

  /** Closes the connection after every query posted before, then stops the thread. */
  async close(): Promise<void> {
    if (this.#failure === null) {
      const id = this.#nextId++;
      await this.#request(id, () => this.#worker.postMessage({ id, close: true })).catch(() => undefined);
    }
    this.#failure ??= new Error('the database is closed');
    await this.#worker.terminate();
  }

  #request(id: number, post: () => void): Promise<Reply> {
    if (this.#failure !== null) return Promise.reject(this.#failure);
    return new Promise<Reply>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#worker.ref();
      post();
    });
  }

  #fail(error: Error): void {
    this.#failure ??= error;
    for (const p of this.#pending.values()) p.reject(error);
    this.#pending.clear();
  }
}

/** Waits for, and hands over, the one transaction the connection can hold at a time. */
class TransactionLock {
  #held: Promise<void> | null = null;
  #release: (() => void) | null = null;

  get held(): Promise<void> | null {
    return this.#held;
  }

  async acquire(): Promise<void> {
    while (this.#held !== null) await this.#held;
    this.#held = new Promise((resolve) => { this.#release = resolve; });
  }

  release(): void {
    const release = this.#release;
    this.#held = null;
    this.#release = null;
    release?.();
  }
}

class ThreadConnection implements DatabaseConnection {
  readonly #thread: SqliteThread;
  readonly #lock: TransactionLock;
  inTransaction = false;

  constructor(thread: SqliteThread, lock: TransactionLock) {
    this.#thread = thread;
    this.#lock = lock;
  }

  async executeQuery<R>(compiled: CompiledQuery): Promise<QueryResult<R>> {
    if (!this.inTransaction) {
      // Checked and posted in one synchronous step: a transaction cannot begin in between.
      while (this.#lock.held !== null) await this.#lock.held;
    }
    return await this.#thread.query(compiled.sql, compiled.parameters) as QueryResult<R>;
  }

  /** Nothing here streams rows: a statement held open by `iterate` would hold back every other query of the thread. */
  streamQuery<R>(): AsyncIterableIterator<QueryResult<R>> {
    throw new Error('streaming queries are not supported on the SQLite thread');
  }
}

class ThreadDriver implements Driver {
  readonly #open: () => Promise<SqliteThread>;
  readonly #lock = new TransactionLock();
  #thread: SqliteThread | null = null;

  constructor(open: () => Promise<SqliteThread>) {
    this.#open = open;
  }

  async init(): Promise<void> {
    this.#thread = await this.#open();
  }

  acquireConnection(): Promise<DatabaseConnection> {
    return Promise.resolve(new ThreadConnection(this.#thread!, this.#lock));
  }

  async beginTransaction(connection: DatabaseConnection, _settings: TransactionSettings): Promise<void> {
    const c = connection as ThreadConnection;
    await this.#lock.acquire();
    c.inTransaction = true;
    try {
      await c.executeQuery(CompiledQuery.raw('begin'));
    } catch (error) {
      this.#end(c);
      throw error;
    }
  }

  async commitTransaction(connection: DatabaseConnection): Promise<void> {
    try {
      await connection.executeQuery(CompiledQuery.raw('commit'));
    } finally {
      this.#end(connection as ThreadConnection);
    }
  }

  async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    try {
      await connection.executeQuery(CompiledQuery.raw('rollback'));
    } finally {
      this.#end(connection as ThreadConnection);
    }
  }

  async savepoint(connection: DatabaseConnection, name: string): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw(`savepoint ${quoteName(name)}`));
  }

  async rollbackToSavepoint(connection: DatabaseConnection, name: string): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw(`rollback to ${quoteName(name)}`));
  }

  async releaseSavepoint(connection: DatabaseConnection, name: string): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw(`release ${quoteName(name)}`));
  }

  releaseConnection(): Promise<void> {
    return Promise.resolve();
  }

  async destroy(): Promise<void> {
    await this.#thread?.close();
  }

  #end(connection: ThreadConnection): void {
    connection.inTransaction = false;
    this.#lock.release();
  }
}

function quoteName(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/** A Kysely dialect over a SqliteThread opened by `open` (at the first query, as Kysely inits drivers). */
export function sqliteThreadDialect(open: () => Promise<SqliteThread>): Dialect {
  return {
    createAdapter: () => new SqliteAdapter(),
    createDriver: () => new ThreadDriver(open),
    createIntrospector: (db: Kysely<unknown>) => new SqliteIntrospector(db),
    createQueryCompiler: () => new SqliteQueryCompiler(),
  };
}
