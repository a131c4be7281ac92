/**
 * One gateway's retained messages across the cluster (issue 16 item 4), in a JetStream KV bucket of the
 * gateway's own (`gatehouse-retained-<installation>-<gatewayId>`): one key per topic, the value the message
 * frame (wire.ts). The key is the SHA-256 of the topic (base64url): topics hold what keys cannot (any
 * UTF-8, `.` and empty levels) and may be longer than a subject may be; the frame carries the topic. A
 * cleared topic is a frame with an empty payload, never a KV delete, so a watcher always learns its topic.
 *
 * Why a KV bucket rather than a stream of retained publishes: a bucket is a stream that keeps one message
 * per key (history 1), so the server holds the current set, as large as the retained set and not as its
 * history, and a node that starts reads exactly that set (its watcher's last values) before the updates.
 *
 * Every node watches the bucket and applies every entry, its own included, in the bucket's order: all
 * nodes converge on the same set (the bucket's last write of a topic wins). `put` resolves once the
 * bucket has the message (the PUBACK waits for it), and `settled` once this node has applied every entry
 * the bucket held when it was called (a new subscription's retained messages wait for it): a retained
 * message acknowledged on one node is seen at once by a subscriber on any other. The messages survive any
 * node's death: they live in JetStream.
 *
 * A NATS server back without its store (a lost disk) has the bucket made again, empty (connection.ts): each node
 * sees the bucket's stream is another one (its creation time changed), reads it from its start and puts back every
 * retained message its engine holds, each only where the new bucket has nothing for its topic (a create, never a
 * put: a message set or cleared since the loss, on any node, is newer and stays). A node that starts later then
 * gets the retained messages set before the loss too.
 */
import { createHash } from 'node:crypto';
import type { KV, KvWatchEntry } from '@nats-io/kv';
import type { QueuedIterator } from '@nats-io/transport-node';
import type { Message } from '../broker/index.ts';
import type { Logger } from '../core/logger.ts';
import type { ClusterConnection } from './connection.ts';
import { decodeMessage, encodeMessage } from './wire.ts';
import { isRefusal } from './message-stream.ts';
import { settledWithin } from '../core/settled-within.ts';

/** How long a subscription's retained messages wait for this node to catch up with the bucket (NATS away: they go anyway). */
const SETTLE_TIMEOUT_MS = 5_000;
/** A failed write is tried again, backing off to this, for as long as the link is open. */
const RETRY_MAX_MS = 2_000;

export interface RetainedCounters {
  /** Retained messages written to the cluster's store by this node. */
  retainedStored: number;
  /** Retained messages larger than NATS carries (its max_payload, 1 MiB by default): kept on this node only. */
  retainedTooLarge: number;
  /** Retained messages this node put back into the cluster's store after it lost them (NATS back without its store). */
  retainedPutBack: number;
}

export class RetainedReplica {
  readonly #conn: ClusterConnection;
  readonly #bucket: string;
  readonly #logger: Logger;
  readonly #counters: RetainedCounters;
  #kv: Promise<KV> | null = null;
  /** Writes go one after the other: a retried write must not land after a later one of the same topic. */
  #writes: Promise<void> = Promise.resolve();
  /** Put-backs go one after the other too (a second loss during one starts after it). */
  #puttingBack: Promise<void> = Promise.resolve();
  /** The highest bucket revision this node has applied. */
  #applied = 0;
  #waiters: { revision: number; resolve: () => void }[] = [];
  #watch: QueuedIterator<KvWatchEntry> | null = null;
  /** The bucket's stream as last seen (its creation time): another one means the store lost what it held. */
  #identity: string | undefined;
  #closed = false;
  readonly #offState: () => void;

  constructor(conn: ClusterConnection, gatewayId: string, counters: RetainedCounters, logger: Logger) {
    this.#conn = conn;
    this.#bucket = `gatehouse-retained-${conn.bucketSuffix}-${gatewayId.replace(/[^A-Za-z0-9_-]/g, '_')}`;
    this.#counters = counters;
    this.#logger = logger;
    // Back from a NATS outage, the watcher's consumer may be gone with a restarted server, and the client would
    // notice only after missed heartbeats (10 s): watch again at once, from the next revision.
    this.#offState = conn.onState((state) => {
      if (state === 'connected') this.#watch?.stop();
    });
  }

  /** The bucket, created on first use (and again after a failure: NATS may have been away). */
  #open(): Promise<KV> {
    if (this.#kv === null) {
      const opening = this.#conn.makeBucket(this.#bucket, { history: 1 });
      opening.catch(() => {
        if (this.#kv === opening) this.#kv = null;
      });
      this.#kv = opening;
    }
    return this.#kv;
  }

  /**
   * Follows the bucket into `apply` until closed: its current set first, then every change, in order. `held`:
   * the engine's retained messages now, put back should the bucket lose them.
   */
  start(apply: (message: Message) => void, held: () => Iterable<Message>): void {
    void this.#follow(apply, held);
  }

  async #follow(apply: (message: Message) => void, held: () => Iterable<Message>): Promise<void> {
    for (let attempt = 0; !this.#closed; attempt++) {
      try {
        const kv = await this.#open();
        const identity = (await kv.status()).streamInfo.created;
        if (this.#identity !== undefined && identity !== this.#identity) this.#replaced(kv, held);
        this.#identity = identity;
        // After a break, from the next revision on: what was applied stays applied.
        const watch = await this.#conn.watch(kv, this.#applied === 0 ? {} : { resumeFromRevision: this.#applied + 1 });
        if (this.#closed) {
          watch.stop();
          return;
        }
        this.#watch = watch;
        attempt = 0;
        for await (const entry of watch) this.#apply(entry, apply);
      } catch (err) {
        if (this.#closed) return;
        this.#logger.warn({ err, bucket: this.#bucket }, 'cluster_retained_watch_failed');
      }
      if (!this.#closed) await pause(Math.min(250 * 2 ** attempt, RETRY_MAX_MS));
    }
  }

  #apply(entry: KvWatchEntry, apply: (message: Message) => void): void {
    if (entry.operation === 'PUT') {
      try {
        apply(decodeMessage(entry.value));
      } catch (err) {
        this.#logger.warn({ err, bucket: this.#bucket, key: entry.key }, 'cluster_retained_unreadable');
      }
    }
    if (entry.revision > this.#applied) this.#applied = entry.revision;
    if (this.#waiters.length > 0) {
      const due = this.#waiters.filter((w) => w.revision <= this.#applied);
      this.#waiters = this.#waiters.filter((w) => w.revision > this.#applied);
      for (const w of due) w.resolve();
    }
  }

  /**
   * The bucket is another one than before (NATS lost its store): read from its start (its revisions begin at 1
   * again, so resuming after the last one applied would skip them), and put back what this engine holds. Beside
   * the writes, not after them: a create never lands over a put, whichever comes first, so new retained messages
   * (whose PUBACKs wait for their writes) do not wait for the whole set.
   */
  #replaced(kv: KV, held: () => Iterable<Message>): void {
    this.#logger.warn({ bucket: this.#bucket, applied: this.#applied }, 'cluster_retained_bucket_replaced');
    this.#applied = 0;
    this.#puttingBack = this.#puttingBack.then(() => this.#putBack(kv, held()));
  }

  async #putBack(kv: KV, messages: Iterable<Message>): Promise<void> {
    let putBack = 0;
    try {
      for (const message of messages) {
        const frame = encodeMessage(message);
        if (this.#tooLarge(frame)) continue;
        const key = createHash('sha256').update(message.topic).digest('base64url');
        if (await this.#untilAnswered(() => kv.create(key, frame))) putBack++;
        if (this.#closed) return;
      }
    } catch (err) {
      this.#logger.warn({ err, bucket: this.#bucket, putBack }, 'cluster_retained_put_back_failed');
    }
    this.#counters.retainedPutBack += putBack;
    this.#logger.info({ bucket: this.#bucket, putBack }, 'cluster_retained_put_back');
  }

  /**
   * Runs a write until the bucket answers it: true once written, false when it refused it (the key exists: a
   * create that something newer beat) or the link closed. NATS away: tried again, backing off.
   */
  async #untilAnswered(write: () => Promise<unknown>): Promise<boolean> {
    for (let attempt = 0; !this.#closed; attempt++) {
      try {
        await write();
        return true;
      } catch (err) {
        if (this.#closed || isRefusal(err)) return false;
        this.#logger.warn({ err, bucket: this.#bucket, attempt }, 'cluster_retained_write_failed');
        await pause(Math.min(250 * 2 ** attempt, RETRY_MAX_MS));
      }
    }
    return false;
  }

  #tooLarge(frame: Buffer): boolean {
    const maxPayload = this.#conn.nc.info?.max_payload;
    if (maxPayload === undefined || frame.length <= maxPayload) return false;
    this.#counters.retainedTooLarge++;
    this.#logger.warn({ bucket: this.#bucket, bytes: frame.length, maxPayload }, 'cluster_retained_too_large');
    return true;
  }

  /** Writes a retained message (an empty payload clears the topic); resolves once the bucket has it, or the link closed. */
  put(message: Message): Promise<void> {
    const frame = encodeMessage(message);
    const key = createHash('sha256').update(message.topic).digest('base64url');
    const written = this.#writes.then(() => this.#putUntilStored(key, frame));
    this.#writes = written;
    return written;
  }

  async #putUntilStored(key: string, frame: Buffer): Promise<void> {
    if (this.#tooLarge(frame)) return;
    if (await this.#untilAnswered(async () => (await this.#open()).put(key, frame))) this.#counters.retainedStored++;
    else if (!this.#closed) this.#logger.warn({ bucket: this.#bucket, bytes: frame.length }, 'cluster_retained_refused');
  }

  /** Resolves once this node has applied every entry the bucket holds now (or after a bounded wait, NATS away). */
  settled(): Promise<void> {
    return settledWithin(this.#caughtUp().catch((err: unknown) => {
      this.#logger.warn({ err, bucket: this.#bucket }, 'cluster_retained_unsettled');
    }), SETTLE_TIMEOUT_MS);
  }

  async #caughtUp(): Promise<void> {
    const last = (await (await this.#open()).status()).streamInfo.state.last_seq;
    if (last <= this.#applied) return;
    await new Promise<void>((resolve) => this.#waiters.push({ revision: last, resolve }));
  }

  close(): void {
    this.#closed = true;
    this.#offState();
    this.#watch?.stop();
    this.#watch = null;
    for (const w of this.#waiters) w.resolve();
    this.#waiters = [];
  }
}

function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
