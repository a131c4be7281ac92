/**
 * Writes device messages to storage in batches (one INSERT per batch, not one transaction per
 * message) and keeps the store bounded: the newest `keepPerDevice` of each device, none older than
 * `maxAgeMs`. The buffer is bounded too: when storage falls behind, new messages are dropped and
 * counted rather than held until memory runs out.
 */
import type { Logger } from '../core/logger.ts';
import type { MessageQuery, MessageRecord, MessageRepository } from '../registry/index.ts';
import { DeferredFlush } from './deferred-flush.ts';
import type { JournalTicket } from './uplink-journal.ts';

export interface MessageStoreOptions {
  keepPerDevice: number;
  maxAgeMs: number;
  /** Buffered messages that start a write at once (fewer wait up to `flushMs`). */
  batchSize: number;
  flushMs: number;
  /**
   * Rows per INSERT, with the event loop turning between them: SQLite writes synchronously, and one
   * statement of 500 rows held every gateway of the process for tens of milliseconds.
   */
  rowsPerWrite?: number;
  /**
   * Payload bytes per INSERT (default 256 KiB; a larger payload goes alone): by rows alone, 50 retained
   * messages of 1 MB made one statement of 67 MB of base64 that held the event loop for a long time.
   */
  bytesPerWrite?: number;
  /** Messages, and bytes of their payloads, waiting to be written; more are dropped (and counted). */
  maxPending: number;
  maxPendingBytes: number;
}

export interface MessageStoreStats {
  written: number;
  dropped: number;
  failed: number;
  pending: number;
}

export class MessageStore {
  readonly #repo: MessageRepository;
  readonly #options: MessageStoreOptions;
  readonly #log: Logger;
  #buffer: MessageRecord[] = [];
  #pendingBytes = 0;
  /** Beside each buffered record: its journal record, if it has one. */
  #tickets: (JournalTicket | null)[] = [];
  readonly #flusher = new DeferredFlush(() => this.#write(), () => this.#buffer.length > 0);
  readonly #ageTimer: NodeJS.Timeout;
  /** Inserts per device since it was last pruned to `keepPerDevice`. */
  readonly #sincePrune = new Map<string, { productKey: string; deviceName: string; n: number }>();
  readonly #stats = { written: 0, dropped: 0, failed: 0 };

  /** Runs after each batch is in storage, before the next is written (the platform settles its journal). */
  readonly #afterWrite: (tickets: readonly JournalTicket[]) => Promise<void>;

  constructor(repo: MessageRepository, options: MessageStoreOptions, log: Logger, afterWrite: (tickets: readonly JournalTicket[]) => Promise<void> = () => Promise.resolve()) {
    this.#repo = repo;
    this.#afterWrite = afterWrite;
    this.#options = options;
    this.#log = log;
    this.#ageTimer = setInterval(() => void this.#pruneByAge(), Math.min(60_000, Math.max(1000, options.maxAgeMs / 10)));
    this.#ageTimer.unref();
  }

  get stats(): MessageStoreStats {
    return { ...this.#stats, pending: this.#buffer.length };
  }

  /** A dropped record's journal record stays (replayed at the next start). */
  add(record: MessageRecord, ticket: JournalTicket | null = null): void {
    if (this.#buffer.length >= this.#options.maxPending || this.#pendingBytes + record.payload.length > this.#options.maxPendingBytes) {
      this.#stats.dropped++;
      return;
    }
    this.#pendingBytes += record.payload.length;
    this.#buffer.push(record);
    this.#tickets.push(ticket);
    this.#flusher.schedule(this.#buffer.length >= this.#options.batchSize ? 0 : this.#options.flushMs);
  }

  /** Writes what is buffered (readers call it first, so a message just received is found). */
  flush(): Promise<void> {
    return this.#flusher.flush();
  }

  async query(query: MessageQuery): Promise<MessageRecord[]> {
    await this.flush();
    return this.#repo.query(query);
  }

  async close(): Promise<void> {
    clearInterval(this.#ageTimer);
    await this.#flusher.close();
  }

  async #write(): Promise<void> {
    const rows = Math.min(this.#options.batchSize, this.#options.rowsPerWrite ?? 50);
    const bytes = this.#options.bytesPerWrite ?? 256 * 1024;
    let first = true;
    while (this.#buffer.length > 0) {
      if (!first) await new Promise<void>((resolve) => setImmediate(resolve));
      first = false;
      let take = 1;
      for (let sum = this.#buffer[0]!.payload.length; take < rows && take < this.#buffer.length; take++) {
        sum += this.#buffer[take]!.payload.length;
        if (sum > bytes) break;
      }
      const batch = this.#buffer.splice(0, take);
      for (const r of batch) this.#pendingBytes -= r.payload.length;
      const tickets = this.#tickets.splice(0, batch.length);
      try {
        await this.#repo.insertMany(batch);
        this.#stats.written += batch.length;
      } catch (err) {
        // Not retried: a failing database must not turn into an ever-growing buffer. (Acknowledged
        // messages stay in the platform's uplink journal and are replayed at the next start.)
        this.#stats.failed += batch.length;
        this.#log.error({ err, messages: batch.length }, 'message_store_write_failed');
        continue;
      }
      const journaled = tickets.filter((t) => t !== null);
      if (journaled.length > 0) await this.#afterWrite(journaled);
      for (const r of batch) {
        const key = `${r.productKey}\u0000${r.deviceName}`;
        const entry = this.#sincePrune.get(key) ?? { productKey: r.productKey, deviceName: r.deviceName, n: 0 };
        entry.n++;
        this.#sincePrune.set(key, entry);
      }
      await this.#pruneDevices();
    }
  }

  /** A device is pruned after every tenth of its quota, so the table holds at most 110% of it. */
  async #pruneDevices(): Promise<void> {
    const slack = Math.max(1, Math.floor(this.#options.keepPerDevice / 10));
    for (const [key, entry] of this.#sincePrune) {
      if (entry.n < slack) continue;
      this.#sincePrune.delete(key);
      try {
        await this.#repo.pruneDevice(entry.productKey, entry.deviceName, this.#options.keepPerDevice);
      } catch (err) {
        this.#log.error({ err, deviceName: entry.deviceName }, 'message_store_prune_failed');
      }
    }
  }

  async #pruneByAge(): Promise<void> {
    try {
      await this.#repo.pruneOlderThan(new Date(Date.now() - this.#options.maxAgeMs).toISOString());
    } catch (err) {
      this.#log.error({ err }, 'message_store_prune_failed');
    }
  }
}
