/**
 * The platform's uplink journal (src/platform/uplink-journal.ts) in a local SQLite file of its own,
 * whatever the registry's database is: it is written on the message path, before the acknowledgements
 * of the same event-loop turn leave (which an async PostgreSQL driver could not promise cheaply), on a
 * writer thread of its own (`SqliteWriter`) whose commit those acknowledgements wait for.
 * A turn's uplinks are one row (their fields as JSON, their payloads concatenated in one blob): one
 * statement per turn rather than one per message, which is what keeps it cheap on the hot path.
 */
import BetterSqlite3 from 'better-sqlite3';
import type { WalCheckpointer } from './wal-checkpointer.ts';
import type { JournaledUplink } from '../registry/ports.ts';
import { SqliteWriter } from './sqlite-writer.ts';
import { MESSAGE_PATH_PRAGMAS, WRITER_PRAGMAS } from './sqlite-state-stores.ts';

export const UPLINK_JOURNAL_FILE = 'uplink-journal.db';

/** [id, gatewayId, productKey, deviceName, topic, qos, receivedAt, payload length] */
type Meta = [string, string, string, string, string, number, number, number];

const INSERT = 'INSERT INTO uplink_batches (meta, payloads) VALUES (?, ?)';
const DELETE = 'DELETE FROM uplink_batches WHERE seq = ?';

export class SqliteUplinkJournal {
  /** Reads what a previous run left (`load`), before anything is written. */
  readonly #db: BetterSqlite3.Database;
  readonly #writer: SqliteWriter;

  /** `checkpointer`: written on the message path, so its WAL checkpoints run off the writer's thread. */
  constructor(file: string, checkpointer?: WalCheckpointer) {
    this.#db = new BetterSqlite3(file);
    // NORMAL: a commit survives a crash of the process (kill -9, OOM), as the engine's state does;
    // not a power loss of the machine (that needs FULL, an fsync per commit).
    for (const p of MESSAGE_PATH_PRAGMAS) this.#db.pragma(p);
    this.#db.exec('CREATE TABLE IF NOT EXISTS uplink_batches (seq INTEGER PRIMARY KEY AUTOINCREMENT, meta TEXT NOT NULL, payloads BLOB NOT NULL)');
    this.#writer = new SqliteWriter(file, WRITER_PRAGMAS);
    checkpointer?.manage(this.#writer, file);
  }

  /** One record for a turn's uplinks; settles with its key once committed. */
  append(uplinks: readonly JournaledUplink[]): Promise<number> {
    const meta: Meta[] = new Array<Meta>(uplinks.length);
    const payloads: Buffer[] = new Array<Buffer>(uplinks.length);
    for (let i = 0; i < uplinks.length; i++) {
      const u = uplinks[i]!;
      meta[i] = [u.id, u.gatewayId, u.productKey, u.deviceName, u.topic, u.qos, u.receivedAt, u.payload.length];
      payloads[i] = u.payload;
    }
    const blob = payloads.length === 1 ? payloads[0]! : Buffer.concat(payloads);
    return this.#writer.run([{ sql: INSERT, params: [JSON.stringify(meta), blob] }]);
  }

  /** Records whose uplinks are written everywhere, after their append. */
  remove(keys: readonly number[]): Promise<number> {
    return this.#writer.run(keys.map((key) => ({ sql: DELETE, params: [key] })));
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

  /** Lets every write commit, then closes both connections. */
  async close(): Promise<void> {
    await this.#writer.close();
    this.#db.close();
  }
}
