/**
 * Makes the platform's copy of a QoS 1/2 uplink as durable as the PUBACK/PUBREC the engine sent for
 * it. The message store, the webhook outbox and device properties are written in batches some
 * milliseconds later (to the registry's database, which may be PostgreSQL, over async drivers); a
 * crash in between used to lose acknowledged messages from the platform side. So the acknowledged
 * uplinks of each event-loop turn are first appended here as one record, synchronously, in the
 * engine's commit phase (the flush scheduler runs every journal's commit before that turn's socket
 * writes leave), to a local SQLite file. A turn's record is removed once every message in it has its
 * message row, its webhook outbox entries and its property update written; records left by a crash
 * are replayed at the next start. QoS 0 is not journaled: it may be lost.
 */
import { scheduleCommit, type Committable } from '../broker/index.ts';
import type { Logger } from '../core/logger.ts';
import type { JournaledUplink } from '../registry/ports.ts';

export type { JournaledUplink };


/** Where the journal lives: synchronous writes (they run before acknowledgements leave). */
export interface UplinkJournalStore {
  /** One record for a turn's uplinks; returns its key. */
  append(uplinks: readonly JournaledUplink[]): number;
  remove(keys: readonly number[]): void;
  /** Every record left, oldest first. */
  load(): { key: number; uplinks: JournaledUplink[] }[];
}

/** The record an uplink is in: it goes when its last uplink is settled. */
export interface JournalTicket {
  key: number;
  remaining: number;
}

export interface UplinkJournalStats {
  journaled: number;
  failed: number;
}

export class UplinkJournal implements Committable {
  readonly #store: UplinkJournalStore;
  readonly #log: Logger;
  #pending: JournaledUplink[] = [];
  #ticket: JournalTicket | null = null;
  readonly stats: UplinkJournalStats = { journaled: 0, failed: 0 };

  constructor(store: UplinkJournalStore, log: Logger) {
    this.#store = store;
    this.#log = log;
  }

  /** Called synchronously while the engine handles the PUBLISH, so the record commits before its ack. */
  add(uplink: JournaledUplink): JournalTicket {
    this.#pending.push(uplink);
    if (this.#ticket === null) {
      this.#ticket = { key: -1, remaining: 0 };
      scheduleCommit(this);
    }
    this.#ticket.remaining++;
    return this.#ticket;
  }

  commit(): void {
    const ticket = this.#ticket;
    const uplinks = this.#pending;
    this.#ticket = null;
    this.#pending = [];
    if (ticket === null || uplinks.length === 0) return;
    try {
      ticket.key = this.#store.append(uplinks);
      this.stats.journaled += uplinks.length;
    } catch (err) {
      // The messages still flow to the store from memory; only the crash guarantee is lost for them.
      this.stats.failed += uplinks.length;
      this.#log.error({ err, messages: uplinks.length }, 'uplink_journal_write_failed');
    }
  }

  /** These uplinks are written everywhere they go: records whose every uplink is settled are removed. */
  settled(tickets: readonly JournalTicket[]): void {
    const done: number[] = [];
    for (const t of tickets) if (--t.remaining === 0 && t.key >= 0) done.push(t.key);
    if (done.length === 0) return;
    try {
      this.#store.remove(done);
    } catch (err) {
      // Left behind, they are replayed once more at the next start (the writes there are idempotent).
      this.#log.error({ err, records: done.length }, 'uplink_journal_remove_failed');
    }
  }

  /** Records a previous run left: acknowledged uplinks whose platform copy may be incomplete. */
  leftOver(): { uplink: JournaledUplink; ticket: JournalTicket }[] {
    const out: { uplink: JournaledUplink; ticket: JournalTicket }[] = [];
    for (const record of this.#store.load()) {
      const ticket = { key: record.key, remaining: record.uplinks.length };
      for (const uplink of record.uplinks) out.push({ uplink, ticket });
    }
    return out;
  }

  /** Commits what is pending. */
  close(): void {
    this.commit();
  }
}
