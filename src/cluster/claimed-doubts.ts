/**
 * Inbound QoS 2 stores in doubt in sessions this node claimed from a process that did not answer the claim (issue 16
 * item 2: none delivered twice).
 *
 * A node stores a client's QoS 2 PUBLISH under the id its session record determines and names the packet id received
 * with the record's next write, within a second (session-states.ts). A process killed in that second leaves the id in
 * doubt, and the survivor that reaps it (a lease after the death) writes each such store that landed into the record
 * (in-doubt-stores.ts). But a client that reconnects before the reap gets its session claimed by another node first:
 * the reap then leaves the record alone (it is not the dead process's any more), and the claimer resumed from the
 * record, which does not name the id. A resend within the stream's duplicate window (2 min) is dropped as a duplicate;
 * a client that went away again before resending and comes back later had its message stored and delivered twice.
 *
 * So the claimer does, for the sessions it took that way, what the reap does: a moment after the claim (the holder's
 * stores in flight land meanwhile), one read of the ids the gateway's stream holds from shortly before the holder's
 * last lease write on, for every session claimed that way in that moment; each store of such a session under the id
 * its state still determines, not named received, is named received (written with the session's next write), so the
 * resend is answered PUBREC with no second store whenever it comes [MQTT-4.3.3-10].
 */
import type { Logger } from '../core/logger.ts';
import { IN_DOUBT_BEFORE_DEATH_MS, parseStoreId } from './in-doubt-stores.ts';

/** How long after a claim its read waits: the holder's stores in flight land, and a failover's claims share one read. */
export const DOUBT_READ_DELAY_MS = 2_000;
/** Sessions waiting for one read, at most: past it a claim is left to the stream's duplicate window (logged). */
export const MAX_DOUBTS_PER_READ = 65_536;

/** The ids of the gateway's messages stored from `sinceMs` on (the NATS server's clock), in stream order. */
export type ReadStoredIds = (sinceMs: number, each: (msgId: string) => void) => Promise<number>;
/** A store that landed for `clientId` under its epoch, packet id and uses: true when the session took it as received. */
export type TakeLanded = (clientId: string, epoch: string, packetId: number, uses: number) => boolean;

interface Batch {
  /** The sessions' epochs, each to its client id. */
  epochs: Map<string, string>;
  sinceMs: number;
}

export class ClaimedDoubts {
  readonly #read: ReadStoredIds;
  readonly #take: TakeLanded;
  readonly #logger: Logger;
  readonly #delayMs: number;
  #batch: Batch | null = null;
  #timer: NodeJS.Timeout | undefined;
  /** The reads, one after the other. */
  #reading: Promise<void> = Promise.resolve();
  #warnedFull = false;
  #closed = false;

  constructor(read: ReadStoredIds, take: TakeLanded, logger: Logger, delayMs = DOUBT_READ_DELAY_MS) {
    this.#read = read;
    this.#take = take;
    this.#logger = logger;
    this.#delayMs = delayMs;
  }

  /**
   * A session of `clientId`, whose inbound QoS 2 store ids are of `epoch`, claimed from a process whose stores from
   * `holderWrittenAt` (its lease's last write as seen here, the NATS server's clock) minus IN_DOUBT_BEFORE_DEATH_MS on
   * may lack their `received` write.
   */
  add(clientId: string, epoch: string, holderWrittenAt: number): void {
    if (this.#closed) return;
    const sinceMs = holderWrittenAt - IN_DOUBT_BEFORE_DEATH_MS;
    if (this.#batch === null) {
      this.#batch = { epochs: new Map(), sinceMs };
      this.#timer = setTimeout(() => this.#flush(), this.#delayMs);
      this.#timer.unref();
    }
    const batch = this.#batch;
    if (batch.epochs.size >= MAX_DOUBTS_PER_READ && !batch.epochs.has(epoch)) {
      if (!this.#warnedFull) this.#logger.warn({ max: MAX_DOUBTS_PER_READ }, 'cluster_claimed_stores_not_checked');
      this.#warnedFull = true;
      return;
    }
    batch.epochs.set(epoch, clientId);
    if (sinceMs < batch.sinceMs) batch.sinceMs = sinceMs;
  }

  /** The read of the sessions claimed in the moment just gone (resolves once taken; tests). */
  flushed(): Promise<void> {
    return this.#reading;
  }

  #flush(): void {
    const batch = this.#batch;
    this.#batch = null;
    this.#warnedFull = false;
    if (batch === null || this.#closed) return;
    this.#reading = this.#reading.then(() => this.#check(batch));
  }

  async #check(batch: Batch): Promise<void> {
    const landed: [clientId: string, epoch: string, packetId: number, uses: number][] = [];
    let read: number;
    try {
      read = await this.#read(batch.sinceMs, (msgId) => {
        const id = parseStoreId(msgId);
        if (id === undefined) return;
        const clientId = batch.epochs.get(id.epoch);
        if (clientId !== undefined) landed.push([clientId, id.epoch, id.packetId, id.uses]);
      });
    } catch (err) {
      // A resend within the stream's duplicate window is still stored once; one after it, twice.
      if (!this.#closed) this.#logger.warn({ err, sessions: batch.epochs.size }, 'cluster_claimed_stores_unread');
      return;
    }
    if (this.#closed) return;
    let taken = 0;
    for (const [clientId, epoch, packetId, uses] of landed) {
      try {
        if (this.#take(clientId, epoch, packetId, uses)) taken++;
      } catch (err) {
        this.#logger.error({ err, packetId }, 'cluster_claimed_store_not_taken'); // that session's alone
      }
    }
    this.#logger.info({ sessions: batch.epochs.size, read, landed: taken }, 'cluster_claimed_stores_checked');
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#batch = null;
  }
}
