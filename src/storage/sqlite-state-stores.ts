/**
 * The MQTT state of every gateway (retained messages, persistent sessions) in one local SQLite file,
 * apart from the registry's database: it is written on the message path, synchronously, and never
 * contends with API transactions. (Multi-node deployments will need a shared store instead.)
 */
import BetterSqlite3 from 'better-sqlite3';
import type { WalCheckpointer } from './wal-checkpointer.ts';
import { SqliteBrokerStore } from './sqlite-broker-store.ts';

export const MQTT_STATE_FILE = 'mqtt-state.db';

export class SqliteStateStores {
  readonly #db: BetterSqlite3.Database;

  /** `checkpointer`: written on the message path, so its WAL checkpoints run off the event loop. */
  constructor(file: string, checkpointer?: WalCheckpointer) {
    this.#db = new BetterSqlite3(file);
    this.#db.pragma('journal_mode = WAL');
    // NORMAL: a commit survives a crash of the process (not of the machine), at a fraction of FULL's cost.
    this.#db.pragma('synchronous = NORMAL');
    checkpointer?.manage(this.#db, file);
  }

  open(gatewayId: string): SqliteBrokerStore {
    return new SqliteBrokerStore(this.#db, gatewayId);
  }

  forget(gatewayId: string): void {
    new SqliteBrokerStore(this.#db, gatewayId).clear();
  }

  close(): void {
    this.#db.close();
  }
}
