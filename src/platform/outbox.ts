/**
 * Keeps the webhook deliveries that are not acknowledged yet in storage, so a restart loses none
 * (at least once across restarts, not only within one process). Writes are batched and applied in
 * the order they were asked for, so a delivery acknowledged before its row was written is still
 * removed after it, never left behind.
 */
import type { Logger } from '../core/logger.ts';
import type { OutboxClaim, OutboxEntry } from '../registry/index.ts';
import { DeferredFlush } from './deferred-flush.ts';

export interface OutboxStore {
  addToOutbox(entries: OutboxEntry[], claim?: OutboxClaim): Promise<void>;
  removeFromOutbox(keys: { webhookId: string; eventId: string }[]): Promise<void>;
}

type Op = { add: OutboxEntry } | { remove: { webhookId: string; eventId: string } };

const FLUSH_MS = 50;

export class Outbox {
  readonly #store: OutboxStore;
  readonly #log: Logger;
  #ops: Op[] = [];
  readonly #flusher = new DeferredFlush(() => this.#write(), () => this.#ops.length > 0);
  readonly #claim: () => OutboxClaim;

  /** `claim`: this node's claim as of now, written with each row (this node sends it; issue 16). */
  constructor(store: OutboxStore, log: Logger, claim: () => OutboxClaim) {
    this.#store = store;
    this.#log = log;
    this.#claim = claim;
  }

  add(entry: OutboxEntry): void {
    this.#push({ add: entry });
  }

  remove(webhookId: string, eventId: string): void {
    this.#push({ remove: { webhookId, eventId } });
  }

  /** Resolves once everything asked for before the call is written (or failed and logged). */
  flush(): Promise<void> {
    return this.#flusher.flush();
  }

  /** Writes everything asked for so far. */
  close(): Promise<void> {
    return this.#flusher.close();
  }

  #push(op: Op): void {
    this.#ops.push(op);
    this.#flusher.schedule(FLUSH_MS);
  }

  async #write(): Promise<void> {
    while (this.#ops.length > 0) {
      const ops = this.#ops;
      this.#ops = [];
      // Consecutive operations of one kind go in one call; the order between kinds is kept.
      for (let i = 0; i < ops.length;) {
        const isAdd = 'add' in ops[i]!;
        let j = i;
        while (j < ops.length && ('add' in ops[j]!) === isAdd) j++;
        const run = ops.slice(i, j);
        try {
          if (isAdd) await this.#store.addToOutbox(run.map((o) => (o as { add: OutboxEntry }).add), this.#claim());
          else await this.#store.removeFromOutbox(run.map((o) => (o as { remove: { webhookId: string; eventId: string } }).remove));
        } catch (err) {
          // Delivery goes on from memory; only the restart guarantee is lost for these.
          this.#log.error({ err, operations: run.length }, 'webhook_outbox_write_failed');
        }
        i = j;
      }
    }
  }
}
