/**
 * The platform's uplink journal (src/platform/uplink-journal.ts) in a local SQLite file of its own,
 * whatever the registry's database is: it is written synchronously on the message path, before the
 * acknowledgements of the same event-loop turn leave, which an async PostgreSQL driver cannot do.
 * A turn's uplinks are one row (their fields as JSON, their payloads concatenated in one blob): one
 * statement per turn rather than one per message, which is what keeps it cheap on the hot path.
 */
import BetterSqlite3 from 'better-sqlite3';
import type { WalCheckpointer } from './wal-checkpointer.ts';
import type { JournaledUplink } from '../registry/ports.ts';

export const UPLINK_JOURNAL_FILE = 'uplink-journal.db';

/** [id, gatewayId, productKey, deviceName, topic, qos, receivedAt, payload length] */
type Meta = [string, string, string, string, string, number, number, number];

export class SqliteUplinkJournal {
  readonly #db: BetterSqlite3.Database;
  readonly #insert: BetterSqlite3.Statement;
  readonly #remove: (keys: readonly number[]) => void;

  /** `checkpointer`: written on the message path, so its WAL checkpoints run off the event loop. */
  constructor(file: string, checkpointer?: WalCheckpointer) {
    this.#db = new BetterSqlite3(file);
    this.#db.pragma('journal_mode = WAL');
    // NORMAL: a commit survives a crash of the process (kill -9, OOM), as the engine's state does;
    // not a power loss of the machine (that needs FULL, an fsync per commit).
    this.#db.pragma('synchronous = NORMAL');
    checkpointer?.manage(this.#db, file);
    this.#db.exec('CREATE TABLE IF NOT EXISTS uplink_batches (seq INTEGER PRIMARY KEY AUTOINCREMENT, meta TEXT NOT NULL, payloads BLOB NOT NULL)');
    this.#insert = this.#db.prepare('INSERT INTO uplink_batches (meta, payloads) VALUES (?, ?)');
    const deleteOne = this.#db.prepare('DELETE FROM uplink_batches WHERE seq = ?');
    this.#remove = this.#db.transaction((keys: readonly number[]) => {
      for (const key of keys) deleteOne.run(key);
    });
  }

  append(uplinks: readonly JournaledUplink[]): number {
    const meta: Meta[] = new Array<Meta>(uplinks.length);
    const payloads: Buffer[] = new Array<Buffer>(uplinks.length);
    for (let i = 0; i < uplinks.length; i++) {
      const u = uplinks[i]!;
      meta[i] = [u.id, u.gatewayId, u.productKey, u.deviceName, u.topic, u.qos, u.receivedAt, u.payload.length];
      payloads[i] = u.payload;
    }
    const blob = payloads.length === 1 ? payloads[0]! : Buffer.concat(payloads);
    return Number(this.#insert.run(JSON.stringify(meta), blob).lastInsertRowid);
  }

  remove(keys: readonly number[]): void {
    this.#remove(keys);
  }

  load(): { key: number; uplinks: JournaledUplink[] }[] {
    const rows = this.#db.prepare('SELECT seq, meta, payloads FROM uplink_batches ORDER BY seq').all() as { seq: number; meta: string; payloads: Buffer }[];
    return rows.map((row) => {
      let offset = 0;
      const uplinks = (JSON.parse(row.meta) as Meta[]).map(([id, gatewayId, productKey, deviceName, topic, qos, receivedAt, length]) => {
        const payload = Buffer.from(row.payloads.subarray(offset, offset + length));
        offset += length;
        return { id, gatewayId, productKey, deviceName, topic, qos, payload, receivedAt };
      });
      return { key: row.seq, uplinks };
    });
  }

  close(): void {
    this.#db.close();
  }
}
