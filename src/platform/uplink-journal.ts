/**
 * Makes the platform's copy of a QoS 1/2 uplink as durable as the PUBACK/PUBREC the engine sent for
 * it. The message store, the webhook outbox and device properties are written in batches some
 * milliseconds later (to the registry's database, which may be PostgreSQL, over async drivers); a
 * crash in between used to lose acknowledged messages from the platform side. So the acknowledged
 * uplinks of each event-loop turn are first appended here as one record, in the engine's commit phase
 * (the flush scheduler runs every journal's commit before that turn's socket writes), to a local SQLite
 * file; when the store writes on a thread, the engines whose uplinks are in the record hold their
 * output until it has committed (`CommitGate`), so the PUBACK still never leaves first. A turn's record is removed once every message in it has its
 * message row, its webhook outbox entries and its property update written; records left by a crash
 * are replayed at the next start. QoS 0 is not journaled: it may be lost.
 */
import { scheduleCommit, type CommitGate, type Committable } from '../broker/index.ts';
import type { Logger } from '../core/logger.ts';
import type { JournaledUplink } from '../registry/ports.ts';

export type { JournaledUplink };


/** Where the journal lives: writes that settle before the acknowledgements they cover leave. */
export interface UplinkJournalStore {
  /** One record for a turn's uplinks; returns its key (a promise of it when written on a thread). */
  append(uplinks: readonly JournaledUplink[]): number | Promise<number>;
  remove(keys: readonly number[]): unknown;
  /** Every record left, oldest first. */
  load(): { key: number; uplinks: JournaledUplink[] }[];
}

/** The record an uplink is in: it goes when its last uplink is settled. */
export interface JournalTicket {
  /** The record's key; APPENDING while its append is in flight, NOT_JOURNALED when it failed. */
  key: number;
  remaining: number;
}

const APPENDING = -1;
const NOT_JOURNALED = -2;
/** A journal row's fixed part (id, gateway, product, times) in the commit gate's estimate. */
const UPLINK_ROW_BYTES = 128;

export interface UplinkJournalStats {
  journaled: number;
  failed: number;
}

export class UplinkJournal implements Committable {
  readonly #store: UplinkJournalStore;
  readonly #log: Logger;
  #pending: JournaledUplink[] = [];
  #ticket: JournalTicket | null = null;
  /**
   * The engines whose uplinks are in the pending record, with the bytes each added: their output waits
   * for its append, and their reads once too much of theirs waits for it (`CommitGate`).
   */
  readonly #gates = new Map<CommitGate, number>();
  readonly stats: UplinkJournalStats = { journaled: 0, failed: 0 };

  constructor(store: UplinkJournalStore, log: Logger) {
    this.#store = store;
    this.#log = log;
  }

  /**
   * Called synchronously while the engine handles the PUBLISH, so the record commits before its ack;
   * `gate`: that engine's, held until the record is written when the store writes asynchronously.
   */
  add(uplink: JournaledUplink, gate?: CommitGate): JournalTicket {
    this.#pending.push(uplink);
    if (gate !== undefined) {
      // An estimate of what waits for the writer: the payload, the names, a row's worth of the rest.
      const bytes = UPLINK_ROW_BYTES + uplink.payload.length + uplink.topic.length + uplink.deviceName.length;
      gate.add(bytes);
      this.#gates.set(gate, (this.#gates.get(gate) ?? 0) + bytes);
    }
    if (this.#ticket === null) {
      this.#ticket = { key: APPENDING, remaining: 0 };
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
    const gates = [...this.#gates];
    this.#gates.clear();
    const release = (): void => {
      for (const [gate, bytes] of gates) gate.release(bytes);
    };
    if (ticket === null || uplinks.length === 0) {
      release();
      return;
    }
    const failed = (err: unknown): void => {
      // The messages still flow to the store from memory; only the crash guarantee is lost for them.
      ticket.key = NOT_JOURNALED;
      this.stats.failed += uplinks.length;
      this.#log.error({ err, messages: uplinks.length }, 'uplink_journal_write_failed');
    };
    const appended = (key: number): void => {
      ticket.key = key;
      this.stats.journaled += uplinks.length;
      // Every uplink of it was settled while the append was in flight.
      if (ticket.remaining === 0) this.#remove([key]);
    };
    try {
      const r = this.#store.append(uplinks);
      if (typeof r === 'number') {
        release();
        appended(r);
      } else {
        for (const [gate, bytes] of gates) gate.track(r, bytes);
        r.then(appended, failed);
      }
    } catch (err) {
      release();
      failed(err);
    }
  }

  /** These uplinks are written everywhere they go: records whose every uplink is settled are removed. */
  settled(tickets: readonly JournalTicket[]): void {
    const done: number[] = [];
    for (const t of tickets) if (--t.remaining === 0 && t.key >= 0) done.push(t.key);
    if (done.length > 0) this.#remove(done);
  }

  #remove(keys: number[]): void {
    // Left behind, they are replayed once more at the next start (the writes there are idempotent).
    const failed = (err: unknown): void => this.#log.error({ err, records: keys.length }, 'uplink_journal_remove_failed');
    try {
      const r = this.#store.remove(keys);
      if (r instanceof Promise) r.catch(failed);
    } catch (err) {
      failed(err);
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
