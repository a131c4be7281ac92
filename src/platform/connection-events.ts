/**
 * Connection events from the gateways to storage and the live stream (issue 14). `record` returns at
 * once and does no I/O: events are written in batches a little later (never on the CONNECT path), one
 * write at a time. Repeats are folded: the same outcome for the same client from the same address within
 * `foldWindowMs` adds to the row's count instead of adding rows, so a device retrying 50 times a second is
 * one row with a count. What is held in memory (folds and rows waiting for their write) is bounded in
 * bytes: beyond `maxBytes` new events are dropped and counted, whatever a flood of refusals does.
 * Retention: the newest `keepPerGateway` of each gateway, none older than `maxAgeMs`.
 */
import type { Logger } from '../core/logger.ts';
import type {
  ConnectionEventInput, ConnectionEventQuery, ConnectionEventRecord, ConnectionEventRepository,
} from '../registry/connection-events.ts';
import { DeferredFlush } from './deferred-flush.ts';
import { newEventId } from './ids.ts';

export interface ConnectionEventOptions {
  keepPerGateway: number;
  maxAgeMs: number;
  /** How long after the first of a batch it is written. */
  flushMs: number;
  /** Repeats of one key within this window are folded into one row. */
  foldWindowMs: number;
  /**
   * A cluster node: the other nodes fold the same key apart (a device's retries land on any of them), so a new row is
   * folded into another node's stored row of that key within the window (ConnectionEventRepository.foldMany).
   */
  foldAcrossNodes: boolean;
  /** Folds and unwritten rows held, in approximate bytes; beyond it new events are dropped (counted). */
  maxBytes: number;
  pruneIntervalMs: number;
}

export const DEFAULT_CONNECTION_EVENT_OPTIONS: ConnectionEventOptions = {
  keepPerGateway: 10_000, maxAgeMs: 7 * 24 * 3600_000, flushMs: 200, foldWindowMs: 10_000, maxBytes: 4 * 1024 * 1024, pruneIntervalMs: 60_000,
  foldAcrossNodes: false,
};

/** Map entry, key, record object and bookkeeping, beyond the text the event carries. */
const FOLD_OVERHEAD_BYTES = 400;

interface Fold {
  readonly key: string;
  /** What the stream shows and the first write stores; count and lastAt grow with repeats. */
  readonly record: ConnectionEventRecord;
  readonly bytes: number;
  /** Repeats after this time start a new row. */
  readonly until: number;
  /** The row exists (or its INSERT is under way). */
  inserted: boolean;
  /** Occurrences the stored row does not count yet. */
  unwritten: number;
  inMap: boolean;
  dirty: boolean;
}

export interface ConnectionEventStats {
  /** Events that became a row. */
  recorded: number;
  /** Events counted into an earlier row. */
  folded: number;
  /** Events lost: over the byte bound, or their write failed. */
  dropped: number;
  writeFailures: number;
  /** Approximate bytes held now. */
  heldBytes: number;
}

export class ConnectionEventRecorder {
  readonly #repository: ConnectionEventRepository;
  readonly #options: ConnectionEventOptions;
  readonly #log: Logger;
  /** Insertion order = creation order: the oldest folds are first, which eviction relies on. */
  readonly #folds = new Map<string, Fold>();
  #dirty: Fold[] = [];
  #bytes = 0;
  readonly #flush: DeferredFlush;
  readonly #pruner: NodeJS.Timeout;
  #listener: ((record: ConnectionEventRecord) => void) | null = null;
  #elsewhere: (() => Promise<void>) | null = null;
  readonly #stats = { recorded: 0, folded: 0, dropped: 0, writeFailures: 0 };

  constructor(repository: ConnectionEventRepository, logger: Logger, options: Partial<ConnectionEventOptions> = {}) {
    this.#repository = repository;
    this.#options = { ...DEFAULT_CONNECTION_EVENT_OPTIONS, ...options };
    this.#log = logger.child({ component: 'connection_events' });
    this.#flush = new DeferredFlush(() => this.#write(), () => this.#dirty.length > 0);
    this.#pruner = setInterval(() => void this.prune(), this.#options.pruneIntervalMs).unref();
  }

  get stats(): ConnectionEventStats {
    return { ...this.#stats, heldBytes: this.#bytes };
  }

  /** Where each new row goes live once written (the platform's event hub → /stream). */
  onStored(listener: (record: ConnectionEventRecord) => void): void {
    this.#listener = listener;
  }

  /** Synchronous and bounded: the CONNECT path calls it. */
  record(event: ConnectionEventInput, now = Date.now()): void {
    const key = `${event.gatewayId}\u0000${event.type}\u0000${event.reason}\u0000${event.clientId}\u0000${event.username}\u0000${event.deviceName}\u0000${event.address}`;
    const fold = this.#folds.get(key);
    if (fold !== undefined && now < fold.until) {
      fold.record.count++;
      fold.record.lastAt = event.at;
      fold.unwritten++;
      this.#stats.folded++;
      this.#markDirty(fold);
      return;
    }
    if (fold !== undefined) this.#leaveMap(fold);
    const bytes = FOLD_OVERHEAD_BYTES + 2 * (key.length + (event.detail?.length ?? 0) + certificateChars(event));
    if (this.#bytes + bytes > this.#options.maxBytes) this.#evictExpired(now);
    if (this.#bytes + bytes > this.#options.maxBytes) {
      this.#stats.dropped++;
      return;
    }
    const next: Fold = {
      key, record: { ...event, id: newEventId(), count: 1, lastAt: event.at }, bytes, until: now + this.#options.foldWindowMs,
      inserted: false, unwritten: 1, inMap: true, dirty: false,
    };
    this.#bytes += bytes;
    this.#folds.set(key, next);
    this.#stats.recorded++;
    this.#markDirty(next);
  }

  /**
   * Where the other nodes of a cluster write what they hold now (the platform asks them): their events are batched
   * on their node as this one's are here, and a read through this node's API must include them too.
   */
  set flushElsewhere(flush: (() => Promise<void>) | null) {
    this.#elsewhere = flush;
  }

  /** What this node holds for the next batch, written now (another node's read is about to follow). */
  flushed(): Promise<void> {
    return this.#flush.flush();
  }

  /** Written events matching the query, newest first; what was recorded before the call (on any node) is included. */
  async query(query: ConnectionEventQuery): Promise<ConnectionEventRecord[]> {
    await Promise.all([this.#flush.flush(), this.#elsewhere?.()]);
    return this.#repository.query(query);
  }

  /** Applies retention now (also every `pruneIntervalMs`). */
  async prune(): Promise<void> {
    try {
      const old = await this.#repository.pruneOlderThan(new Date(Date.now() - this.#options.maxAgeMs).toISOString());
      const over = await this.#repository.prunePerGateway(this.#options.keepPerGateway);
      if (old + over > 0) this.#log.debug({ removed: old + over }, 'connection_events_pruned');
    } catch (err) {
      this.#log.error({ err }, 'connection_events_prune_failed');
    }
  }

  async close(): Promise<void> {
    clearInterval(this.#pruner);
    await this.#flush.close();
  }

  #markDirty(fold: Fold): void {
    if (!fold.dirty) {
      fold.dirty = true;
      this.#dirty.push(fold);
    }
    this.#flush.schedule(this.#options.flushMs);
  }

  #leaveMap(fold: Fold): void {
    this.#folds.delete(fold.key);
    fold.inMap = false;
    if (!fold.dirty) this.#bytes -= fold.bytes;
  }

  /** Oldest folds whose window has passed; a fold still waiting for its write keeps its bytes until written. */
  #evictExpired(now: number): void {
    for (const fold of this.#folds.values()) {
      if (fold.until > now) break;
      this.#leaveMap(fold);
    }
  }

  async #write(): Promise<void> {
    const batch = this.#dirty;
    this.#dirty = [];
    const inserts: ConnectionEventRecord[] = [];
    const insertedFolds: Fold[] = [];
    const updates: { id: string; count: number; lastAt: string }[] = [];
    let occurrences = 0;
    for (const fold of batch) {
      fold.dirty = false;
      occurrences += fold.unwritten;
      if (!fold.inserted) {
        inserts.push({ ...fold.record });
        insertedFolds.push(fold);
        fold.inserted = true;
      } else {
        updates.push({ id: fold.record.id, count: fold.unwritten, lastAt: fold.record.lastAt });
      }
      fold.unwritten = 0;
      if (!fold.inMap) this.#bytes -= fold.bytes;
    }
    let rows = inserts;
    try {
      if (this.#options.foldAcrossNodes && inserts.length > 0) rows = await this.#foldAcrossNodes(inserts, insertedFolds);
      else await this.#repository.insertMany(inserts);
      await this.#repository.addCounts(updates);
    } catch (err) {
      // Not retried: a database that cannot keep up must not make the process hold more.
      this.#stats.writeFailures++;
      this.#stats.dropped += occurrences;
      this.#log.error({ err, events: occurrences }, 'connection_events_write_failed');
      return;
    }
    if (this.#listener !== null) for (const record of rows) this.#listener(record);
  }

  /** Inserts, or folds into another node's row of the same key; the new rows (a fold's next counts go to its row). */
  async #foldAcrossNodes(inserts: ConnectionEventRecord[], folds: Fold[]): Promise<ConnectionEventRecord[]> {
    const ids = await this.#repository.foldMany(inserts, this.#options.foldWindowMs);
    const rows: ConnectionEventRecord[] = [];
    for (let i = 0; i < inserts.length; i++) {
      if (ids[i] === inserts[i]!.id) {
        rows.push(inserts[i]!);
        continue;
      }
      folds[i]!.record.id = ids[i]!;
      this.#stats.recorded--;
      this.#stats.folded++;
    }
    return rows;
  }
}

function certificateChars(event: ConnectionEventInput): number {
  const c = event.certificate;
  return c === null ? 0 : (c.cn?.length ?? 0) + c.serial.length + c.issuer.length + c.fingerprint256.length;
}
