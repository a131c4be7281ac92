/**
 * The MQTT state of every gateway (retained messages, persistent sessions) in one local SQLite file,
 * apart from the registry's database: it is written on the message path and never contends with API
 * transactions. Writes go through one writer thread (`SqliteWriter`), reads through a connection here.
 * (Multi-node deployments keep what must be shared in NATS instead.)
 */
import BetterSqlite3 from 'better-sqlite3';
import type { WalCheckpointer } from './wal-checkpointer.ts';
import { prepareBrokerState, SqliteBrokerStore } from './sqlite-broker-store.ts';
import { SqliteWriter } from './sqlite-writer.ts';

export const MQTT_STATE_FILE = 'mqtt-state.db';

/** The writing connection's settings. NORMAL: a commit survives a crash of the process (not of the machine), at a fraction of FULL's cost. */
export const MESSAGE_PATH_PRAGMAS = ['journal_mode = WAL', 'synchronous = NORMAL'] as const;

/**
 * The writer thread's connection waits up to 30 s for a lock another process holds (a backup, a
 * `sqlite3` shell) instead of better-sqlite3's 5 s: it waits on its own thread, and the gateway's reads
 * pause meanwhile (`CommitGate`), where a failed write would have lost the state it carried. The
 * connections on the event loop keep the short default.
 */
export const WRITER_PRAGMAS = [...MESSAGE_PATH_PRAGMAS, 'busy_timeout = 30000'] as const;

export class SqliteStateStores {
  readonly #db: BetterSqlite3.Database;
  readonly #writer: SqliteWriter;

  /** `checkpointer`: written on the message path, so its WAL checkpoints run off the writer's thread too. */
  constructor(file: string, checkpointer?: WalCheckpointer) {
    this.#db = new BetterSqlite3(file);
    for (const p of MESSAGE_PATH_PRAGMAS) this.#db.pragma(p);
    prepareBrokerState(this.#db);
    this.#writer = new SqliteWriter(file, WRITER_PRAGMAS);
    checkpointer?.manage(this.#writer, file);
  }

  open(gatewayId: string): SqliteBrokerStore {
    return new SqliteBrokerStore(this.#db, gatewayId, this.#writer);
  }

  /** Forgets a deleted gateway's state, after everything written before. */
  async forget(gatewayId: string): Promise<void> {
    await new SqliteBrokerStore(this.#db, gatewayId, this.#writer).clear();
  }

  /** Lets every write commit, then closes both connections. */
  async close(): Promise<void> {
    await this.#writer.close();
    this.#db.close();
  }
}
