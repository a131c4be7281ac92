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
 */
import { createHash } from 'node:crypto';
import type { KV, KvWatchEntry } from '@nats-io/kv';
import type { QueuedIterator } from '@nats-io/transport-node';
import type { Message } from '../broker/index.ts';
import type { Logger } from '../core/logger.ts';
import type { ClusterConnection } from './connection.ts';
import { decodeMessage, encodeMessage } from './wire.ts';

/** How long a subscription's retained messages wait for this node to catch up with the bucket (NATS away: they go anyway). */
const SETTLE_TIMEOUT_MS = 5_000;
/** A failed write is tried again, backing off to this, for as long as the link is open. */
const RETRY_MAX_MS = 2_000;

export interface RetainedCounters {
  /** Retained messages written to the cluster's store by this node. */
  retainedStored: number;
  /** Retained messages larger than NATS carries (its max_payload, 1 MiB by default): kept on this node only. */
  retainedTooLarge: number;
}

export class RetainedReplica {
  readonly #conn: ClusterConnection;
  readonly #bucket: string;
  readonly #logger: Logger;
  readonly #counters: RetainedCounters;
  #kv: Promise<KV> | null = null;
  /** Writes go one after the other: a retried write must not land after a later one of the same topic. */
  #writes: Promise<void> = Promise.resolve();
  /** The highest bucket revision this node has applied. */
  #applied = 0;
  #waiters: { revision: number; resolve: () => void }[] = [];
  #watch: QueuedIterator<KvWatchEntry> | null = null;
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

  /** Follows the bucket into `apply` until closed: its current set first, then every change, in order. */
  start(apply: (message: Message) => void): void {
    void this.#follow(apply);
  }

  async #follow(apply: (message: Message) => void): Promise<void> {
    for (let attempt = 0; !this.#closed; attempt++) {
      try {
        const kv = await this.#open();
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

  /** Writes a retained message (an empty payload clears the topic); resolves once the bucket has it, or the link closed. */
  put(message: Message): Promise<void> {
    const frame = encodeMessage(message);
    const key = createHash('sha256').update(message.topic).digest('base64url');
    const written = this.#writes.then(() => this.#putUntilStored(key, frame));
    this.#writes = written;
    return written;
  }

  async #putUntilStored(key: string, frame: Buffer): Promise<void> {
    const maxPayload = this.#conn.nc.info?.max_payload;
    if (maxPayload !== undefined && frame.length > maxPayload) {
      this.#counters.retainedTooLarge++;
      this.#logger.warn({ bucket: this.#bucket, bytes: frame.length, maxPayload }, 'cluster_retained_too_large');
      return;
    }
    for (let attempt = 0; !this.#closed; attempt++) {
      try {
        await (await this.#open()).put(key, frame);
        this.#counters.retainedStored++;
        return;
      } catch (err) {
        if (this.#closed) return;
        this.#logger.warn({ err, bucket: this.#bucket, attempt }, 'cluster_retained_write_failed');
        await pause(Math.min(250 * 2 ** attempt, RETRY_MAX_MS));
      }
    }
  }

  /** Resolves once this node has applied every entry the bucket holds now (or after a bounded wait, NATS away). */
  async settled(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<void>((resolve) => (timer = setTimeout(resolve, SETTLE_TIMEOUT_MS)));
    try {
      await Promise.race([this.#caughtUp(), late]);
    } catch (err) {
      this.#logger.warn({ err, bucket: this.#bucket }, 'cluster_retained_unsettled');
    } finally {
      clearTimeout(timer);
    }
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
