/**
 * A gateway's `maxConnections` across the cluster (issue 16): the limit is the gateway's, so a device is refused
 * when the gateway holds `maxConnections` connections on all nodes together, wherever it lands.
 *
 * One JetStream KV bucket per installation (`gatehouse-connections-<installation>`), one key per gateway; the value
 * holds every node process's part: the places it holds (connections, and CONNECTs granted one on their way to
 * CONNACK), the refusals it counted, and when it last wrote. A node takes a place by compare-and-swap on the key's
 * revision, with the sum of the live parts under the limit; a CAS that another node's write beat reads again and
 * judges again. Giving places back and counting refusals are written a turn later (lazily: a count too high for a
 * moment only refuses, never admits too many).
 *
 * Why one key written by CAS rather than asking every node for its count (NATS request/reply): answers are a
 * moment's view, so two nodes admitting at once would both see room and both take the last place; the CAS
 * serializes every admission of the gateway across the cluster. Why each part carries its time rather than being
 * deleted by whoever sees its node die: a node killed, or cut off from NATS, stops writing, and its part stops
 * counting once it is older than a lease (the time after which the cluster counts a node dead, and the cut-off node
 * has ended its connections itself: links.ts `cutOff`) without anyone having to agree on the death; a node that
 * holds places renews its part every heartbeat. A stale part is dropped by the next write.
 *
 * Fail closed: a place that cannot be written (NATS away) is not given (the CONNECT is refused 0x88, as every
 * CONNECT of a cut-off node is). Without a limit no CONNECT waits for a write: places are counted here and this
 * node's part is written with its heartbeat (at most once a heartbeat per gateway, while it holds any), so the gateway's
 * connected clients the API shows are the cluster's, a heartbeat late at most. Bounded: a value holds one part per live
 * process (~100 bytes each), a bucket key per gateway.
 */
import type { KV, KvWatchEntry } from '@nats-io/kv';
import type { QueuedIterator } from '@nats-io/transport-node';
import type { ClusterConnectionCounts } from '../broker/index.ts';
import type { Logger } from '../core/logger.ts';
import { openedOnce, type ClusterConnection } from './connection.ts';
import type { LeaseTimings } from './node-leases.ts';

/** The bucket's bounds: a value is one part per node process; JetStream reserves max_bytes on disk at creation. */
const BUCKET_MAX_BYTES = 8 * 1024 * 1024;
const MAX_VALUE_BYTES = 64 * 1024;
/** Compare-and-swap rounds lost to other nodes' writes before a take gives up (refused as unavailable). */
const MAX_CAS_ROUNDS = 50;
const RETRY_MAX_MS = 2_000;

export interface Part {
  /** Places held. */
  n: number;
  /** CONNECTs refused for the limit by this process since it started. */
  hits: number;
  /** Epoch ms of the write. */
  at: number;
}

export interface CountsValue {
  v: 1;
  parts: Record<string, Part>;
}

interface View {
  parts: Record<string, Part>;
  /** The key's revision (0: no value yet). */
  revision: number;
}

interface Take {
  force: boolean;
  resolve: (granted: boolean) => void;
  reject: (error: unknown) => void;
}

/** Opens the installation's bucket once per node (and again after a failure: NATS may have been away). */
export function connectionCountsBucket(conn: ClusterConnection): () => Promise<KV> {
  return openedOnce(() => conn.makeBucket(`gatehouse-connections-${conn.bucketSuffix}`,
    { history: 1, max_bytes: BUCKET_MAX_BYTES, maxValueSize: MAX_VALUE_BYTES }));
}

export class GatewayConnectionCounts implements ClusterConnectionCounts {
  readonly #conn: ClusterConnection;
  readonly #bucket: () => Promise<KV>;
  readonly #key: string;
  /** This engine's part: its process and a number of its own (an engine started again is another part). */
  readonly #instance: string;
  readonly #timings: LeaseTimings;
  readonly #logger: Logger;
  #max = 0;
  #held = 0;
  #hits = 0;
  /** The key as last read, written or watched. */
  #view: View | null = null;
  #takes: Take[] = [];
  /** A write of this node's part is due (places given back, a refusal counted, the heartbeat). */
  #dirty = false;
  #writing = false;
  #scheduled = false;
  #watch: QueuedIterator<KvWatchEntry> | null = null;
  #watching = false;
  #heartbeat: NodeJS.Timeout | null = null;
  #closed = false;
  readonly #offState: () => void;

  constructor(conn: ClusterConnection, bucket: () => Promise<KV>, gatewayId: string, instance: string, timings: LeaseTimings, logger: Logger) {
    this.#conn = conn;
    this.#bucket = bucket;
    this.#key = gatewayId.replace(/[^A-Za-z0-9_-]/g, '_');
    this.#instance = instance;
    this.#timings = timings;
    this.#logger = logger;
    this.#offState = conn.onState((state) => {
      if (state !== 'connected') return;
      // Back from an outage: the watcher may be gone with a restarted server; and what was due is written.
      this.#watch?.stop();
      if (this.#max > 0) this.#schedule();
    });
  }

  limit(max: number): void {
    const starting = this.#max === 0 && max > 0;
    this.#max = max;
    if (this.#closed) return;
    this.#startFollowing();
    if (starting) this.#schedule(); // a limit from now on: this node's places go into the record at once
    if (this.#heartbeat !== null) return;
    // This node's places, renewed each heartbeat while it holds any (a part not renewed for a lease stops counting).
    // Without a limit they are written only here, at most once a heartbeat: the gateway's connected clients (the
    // API's) are the cluster's all the same, a heartbeat late at most, and no CONNECT waits for a write.
    this.#heartbeat = setInterval(() => {
      if (this.#held > 0 || this.#view?.parts[this.#instance] !== undefined) this.#schedule();
    }, this.#timings.heartbeatMs);
    this.#heartbeat.unref();
  }

  elsewhere(): number {
    return this.#view === null ? 0 : this.#sum(this.#view.parts, Date.now()).n;
  }

  async refresh(): Promise<void> {
    await this.#read(await this.#bucket());
  }

  take(force: boolean): boolean | Promise<boolean> {
    if (this.#max === 0) {
      this.#held++;
      return true;
    }
    return new Promise<boolean>((resolve, reject) => {
      this.#takes.push({ force, resolve, reject });
      this.#schedule();
    });
  }

  give(): void {
    this.#held--;
    if (this.#max > 0) this.#schedule();
  }

  refused(): void {
    this.#hits++;
    this.#schedule();
  }

  usage(): { current: number; hits: number } {
    const others = this.#view === null ? { n: 0, hits: 0 } : this.#sum(this.#view.parts, Date.now());
    return { current: this.#held + others.n, hits: this.#hits + others.hits };
  }

  /** The engine stops (its connections end after this): its part goes now rather than a lease later. */
  close(): void {
    if (this.#closed) return;
    const leave = this.#view?.parts[this.#instance] !== undefined;
    this.#closed = true;
    this.#offState();
    if (this.#heartbeat !== null) clearInterval(this.#heartbeat);
    this.#watch?.stop();
    for (const take of this.#takes.splice(0)) take.resolve(false);
    if (!leave) return;
    this.#held = 0;
    this.#hits = 0;
    this.#writeOnce([]).catch((err: unknown) => this.#logger.debug({ err }, 'cluster_connection_counts_leave_failed'));
  }

  /** The other live processes' parts (this one's is `#held`): a part older than a lease is a dead node's. */
  #sum(parts: Record<string, Part>, now: number): { n: number; hits: number } {
    let n = 0;
    let hits = 0;
    for (const [instance, part] of Object.entries(parts)) {
      if (instance === this.#instance || now - part.at >= this.#timings.leaseMs) continue;
      n += part.n;
      hits += part.hits;
    }
    return { n, hits };
  }

  #schedule(): void {
    this.#dirty = true;
    if (this.#scheduled || this.#writing || this.#closed) return;
    this.#scheduled = true;
    // The turn's takes, gives and refusals in one write.
    setImmediate(() => {
      this.#scheduled = false;
      void this.#write();
    });
  }

  async #write(): Promise<void> {
    if (this.#writing || this.#closed) return;
    this.#writing = true;
    try {
      while (this.#dirty && !this.#closed) {
        this.#dirty = false;
        const takes = this.#takes.splice(0);
        try {
          const granted = await this.#writeOnce(takes);
          for (let i = 0; i < takes.length; i++) takes[i]!.resolve(granted[i]!);
        } catch (err) {
          // Fail closed: these CONNECTs are refused; what is owed (gives, refusals) is written once NATS is back.
          for (const take of takes) take.reject(err);
          this.#logger.debug({ err }, 'cluster_connection_counts_write_failed');
          if (this.#conn.state === 'connected' && !this.#closed) {
            this.#dirty = true;
            await new Promise((resolve) => setTimeout(resolve, RETRY_MAX_MS).unref());
          }
          break;
        }
      }
    } finally {
      this.#writing = false;
      if (this.#dirty && !this.#closed && this.#conn.state === 'connected') this.#schedule();
    }
  }

  /** Grants what fits beside the other live parts and writes this node's part by CAS; read again when beaten. */
  async #writeOnce(takes: readonly Take[]): Promise<boolean[]> {
    const kv = await this.#bucket();
    let view = this.#view ?? await this.#read(kv);
    for (let round = 1; ; round++) {
      const now = Date.now();
      const others = this.#sum(view.parts, now).n;
      let granted = 0;
      const answers = takes.map((take) => {
        const ok = take.force || others + this.#held + granted < this.#max;
        if (ok) granted++;
        return ok;
      });
      const parts: Record<string, Part> = {};
      for (const [instance, part] of Object.entries(view.parts)) {
        if (instance !== this.#instance && now - part.at < this.#timings.leaseMs) parts[instance] = part;
      }
      const held = this.#held + granted;
      // A node holding nothing and with no refusals to tell leaves no part.
      if (held > 0 || this.#hits > 0) parts[this.#instance] = { n: held, hits: this.#hits, at: now };
      const value = JSON.stringify({ v: 1, parts } satisfies CountsValue);
      try {
        const revision = view.revision === 0 ? await kv.create(this.#key, value) : await kv.update(this.#key, value, view.revision);
        // Places given back (or taken without a limit) while the write was on its way count still: added, not
        // assigned, and written again.
        this.#held += granted;
        if (this.#held !== held) this.#dirty = true;
        this.#adopt({ parts, revision });
        return answers;
      } catch (err) {
        // Another node wrote first: read what it wrote and judge again (unless NATS itself is away).
        if (round >= MAX_CAS_ROUNDS || this.#conn.state !== 'connected' || this.#closed) throw err;
        view = await this.#read(kv);
      }
    }
  }

  async #read(kv: KV): Promise<View> {
    const entry = await kv.get(this.#key);
    if (entry === null || entry.operation !== 'PUT') return { parts: {}, revision: entry?.revision ?? 0 };
    const view = { parts: parsedParts(entry.json<CountsValue>()), revision: entry.revision };
    this.#adopt(view);
    return view;
  }

  /** A newer view than the one held (writes, reads and the watcher race; the revision orders them). */
  #adopt(view: View): void {
    if (this.#view === null || view.revision > this.#view.revision) this.#view = view;
  }

  /** The key's changes, so the check before authentication sees the other nodes' places without a request. */
  #startFollowing(): void {
    if (this.#watching) return;
    this.#watching = true;
    void (async () => {
      for (let attempt = 0; !this.#closed; attempt++) {
        try {
          const watch = await this.#conn.watch(await this.#bucket(), { key: this.#key });
          if (this.#closed) {
            watch.stop();
            return;
          }
          this.#watch = watch;
          attempt = 0;
          for await (const entry of watch) {
            if (entry.operation === 'PUT') this.#adopt({ parts: parsedParts(entry.json<CountsValue>()), revision: entry.revision });
          }
        } catch (err) {
          if (this.#closed) return;
          this.#logger.debug({ err }, 'cluster_connection_counts_watch_failed');
        }
        if (!this.#closed) await new Promise((resolve) => setTimeout(resolve, Math.min(250 * 2 ** attempt, RETRY_MAX_MS)).unref());
      }
    })();
  }
}

/** Parts of a value another version may have written: anything unreadable counts as nothing (it is rewritten). Also session-counts.ts's. */
export function parsedParts(value: CountsValue): Record<string, Part> {
  const out: Record<string, Part> = {};
  if (value?.v !== 1 || typeof value.parts !== 'object' || value.parts === null) return out;
  for (const [instance, part] of Object.entries(value.parts)) {
    if (typeof part?.n === 'number' && typeof part.at === 'number') out[instance] = { n: part.n, hits: typeof part.hits === 'number' ? part.hits : 0, at: part.at };
  }
  return out;
}
