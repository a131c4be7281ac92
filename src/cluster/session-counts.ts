/**
 * A gateway's `maxSessionsPerDevice` across the cluster (issue 16): the sessions of one device (an owner, the principal
 * that created them) are counted on every node together, so a device cycling client ids over the nodes of a cluster —
 * or the workers of one machine, which node:cluster hands connections round-robin — holds no more sessions than on one
 * process.
 *
 * The same mechanism as `maxConnections` (connection-counts.ts): a JetStream KV key holds each engine's part (the
 * sessions of the owner it holds, and the new sessions it granted on their way to CONNACK), and a new session takes a
 * place by compare-and-swap on the key's revision with the live sum under the limit, so two nodes never both take the
 * last one. Here there is one key per owner (`<gateway>.<SHA-256 of the owner>` in `gatehouse-session-counts-<installation>`),
 * written only when a limit is set and only when that owner's sessions change on this engine: a new session, one that
 * ends, expires, or moves to another node. What differs from `maxConnections` is when a part stops counting: sessions
 * outlive connections and are not renewed each heartbeat (that would be a write per device per heartbeat), so a part
 * counts while its process holds a live lease (the leases as the will reaper last read them) or was written less than a
 * lease ago (a process that started a moment ago); a dead process's part stops counting, as its connections' places do.
 *
 * A session that exists on another node (its record there, this owner's) is not a new one: taking it over moves it, and
 * its old node gives its part back (the engine asks `ClusterLink.sessionRecorded` before refusing). Fail closed: a place
 * that cannot be written refuses the CONNECT 0x88. A single process has no link and counts in its engine as before.
 * Bounded: a key per owner with sessions (history 1), a value of one part per live process (~100 bytes each); a node
 * keeps views only of the owners it holds sessions of.
 */
import { createHash } from 'node:crypto';
import type { KV, KvWatchEntry } from '@nats-io/kv';
import type { QueuedIterator } from '@nats-io/transport-node';
import type { ClusterSessionCounts, SessionsHere } from '../broker/index.ts';
import type { Logger } from '../core/logger.ts';
import { parsedParts, type CountsValue, type Part } from './connection-counts.ts';
import { openedOnce, type ClusterConnection } from './connection.ts';

/** One key per owner with sessions: 64 MiB holds ~500,000 of them (JetStream reserves max_bytes on disk at creation). */
const BUCKET_MAX_BYTES = 64 * 1024 * 1024;
const MAX_VALUE_BYTES = 16 * 1024;
const MAX_CAS_ROUNDS = 50;
/** Owners written at once when a limit is set on a gateway whose engine already holds sessions. */
const CATCH_UP_CONCURRENCY = 16;

interface View {
  parts: Record<string, Part>;
  revision: number;
}

interface Owner {
  owner: string;
  key: string;
  /** Places granted to CONNECTs on their way to CONNACK (not yet among the engine's sessions). */
  pending: number;
  view: View | null;
  takes: ((granted: boolean | Error) => void)[];
  dirty: boolean;
  writing: boolean;
}

/** Opens the installation's bucket once per node (and again after a failure: NATS may have been away). */
export function sessionCountsBucket(conn: ClusterConnection): () => Promise<KV> {
  return openedOnce(() => conn.makeBucket(`gatehouse-session-counts-${conn.bucketSuffix}`,
    { history: 1, max_bytes: BUCKET_MAX_BYTES, maxValueSize: MAX_VALUE_BYTES }));
}

export class GatewaySessionCounts implements ClusterSessionCounts {
  readonly #conn: ClusterConnection;
  readonly #bucket: () => Promise<KV>;
  readonly #prefix: string;
  /** This engine's part: its process and a number of its own (`<process instance>.<n>`). */
  readonly #instance: string;
  readonly #leaseMs: number;
  /** The processes holding a live lease, as last read (this one's included or not). */
  readonly #live: () => readonly string[];
  readonly #logger: Logger;
  #max = 0;
  #here: SessionsHere = { of: () => 0, all: () => [] };
  readonly #owners = new Map<string, Owner>();
  readonly #byKey = new Map<string, Owner>();
  #watch: QueuedIterator<KvWatchEntry> | null = null;
  #watching = false;
  #closed = false;

  constructor(conn: ClusterConnection, bucket: () => Promise<KV>, gatewayId: string, instance: string, leaseMs: number,
    live: () => readonly string[], logger: Logger) {
    this.#conn = conn;
    this.#bucket = bucket;
    this.#prefix = gatewayId.replace(/[^A-Za-z0-9_-]/g, '_');
    this.#instance = instance;
    this.#leaseMs = leaseMs;
    this.#live = live;
    this.#logger = logger;
  }

  limit(max: number, here: SessionsHere): void {
    const starting = this.#max === 0 && max > 0;
    this.#max = max;
    this.#here = here;
    if (this.#closed || !starting) return;
    this.#startFollowing();
    // A limit from now on: the sessions this engine already holds go into their owners' counts.
    void this.#catchUp([...here.all()].map(([owner]) => owner));
  }

  take(owner: string): Promise<boolean> {
    if (this.#max === 0) return Promise.resolve(true);
    const state = this.#state(owner);
    return new Promise<boolean>((resolve, reject) => {
      state.takes.push((granted) => (granted instanceof Error ? reject(granted) : resolve(granted)));
      this.#schedule(state);
    });
  }

  settle(owner: string): void {
    const state = this.#owners.get(owner);
    if (state === undefined || state.pending === 0) return;
    state.pending--;
    this.#schedule(state);
  }

  changed(owner: string): void {
    if (this.#max === 0 || this.#closed) return;
    this.#schedule(this.#state(owner));
  }

  count(owner: string): number {
    const state = this.#owners.get(owner);
    return this.#here.of(owner) + (state === undefined ? 0 : state.pending + this.#others(state.view, Date.now()));
  }

  most(): number {
    let most = 0;
    for (const [owner] of this.#here.all()) most = Math.max(most, this.count(owner));
    return most;
  }

  /** The engine stops: its parts go now (its sessions are not counted while it is not running). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#watch?.stop();
    const written = [...this.#owners.values()].filter((state) => state.view?.parts[this.#instance] !== undefined);
    for (const state of this.#owners.values()) for (const take of state.takes.splice(0)) take(false);
    void this.#each(written, async (state) => {
      state.pending = 0;
      await this.#writeOnce(state, 0, true);
    }).catch((err: unknown) => this.#logger.debug({ err }, 'cluster_session_counts_leave_failed'));
  }

  #state(owner: string): Owner {
    let state = this.#owners.get(owner);
    if (state === undefined) {
      const key = `${this.#prefix}.${createHash('sha256').update(owner).digest('base64url')}`;
      state = { owner, key, pending: 0, view: null, takes: [], dirty: false, writing: false };
      this.#owners.set(owner, state);
      this.#byKey.set(key, state);
    }
    return state;
  }

  /** The other live processes' sessions of the owner (this engine's are the engine's own count). */
  #others(view: View | null, now: number): number {
    if (view === null) return 0;
    const live = new Set(this.#live());
    let n = 0;
    for (const [instance, part] of Object.entries(view.parts)) {
      if (instance === this.#instance) continue;
      if (now - part.at < this.#leaseMs || live.has(instance.slice(0, instance.indexOf('.')))) n += part.n;
    }
    return n;
  }

  #schedule(state: Owner): void {
    state.dirty = true;
    if (state.writing || this.#closed) return;
    state.writing = true;
    // The turn's takes and changes of this owner in one write.
    setImmediate(() => void this.#write(state));
  }

  async #write(state: Owner): Promise<void> {
    try {
      while (state.dirty && !this.#closed) {
        state.dirty = false;
        const takes = state.takes.splice(0);
        try {
          const granted = await this.#writeOnce(state, takes.length, false);
          takes.forEach((take, i) => take(i < granted));
        } catch (err) {
          // Fail closed: these CONNECTs are refused; the part is written again at the owner's next change.
          for (const take of takes) take(err instanceof Error ? err : new Error(String(err)));
          this.#logger.debug({ err }, 'cluster_session_counts_write_failed');
          break;
        }
      }
    } finally {
      state.writing = false;
      const idle = state.pending === 0 && state.takes.length === 0 && this.#here.of(state.owner) === 0;
      if (idle && !state.dirty) {
        this.#owners.delete(state.owner);
        this.#byKey.delete(state.key);
      }
      else if (state.dirty && !this.#closed && this.#conn.state === 'connected') this.#schedule(state);
    }
  }

  /**
   * Grants up to `takes` places beside the other live parts and writes this engine's part by CAS (read again when
   * beaten); returns how many were granted. `leaving`: this engine's part goes whatever it holds.
   */
  async #writeOnce(state: Owner, takes: number, leaving: boolean): Promise<number> {
    const kv = await this.#bucket();
    let view = state.view ?? await this.#read(kv, state);
    for (let round = 1; ; round++) {
      const now = Date.now();
      const held = leaving ? 0 : this.#here.of(state.owner) + state.pending;
      const room = this.#max - this.#others(view, now) - held;
      const granted = Math.max(0, Math.min(takes, room));
      const parts: Record<string, Part> = {};
      for (const [instance, part] of Object.entries(view.parts)) {
        if (instance !== this.#instance && (now - part.at < this.#leaseMs || this.#live().includes(instance.slice(0, instance.indexOf('.'))))) {
          parts[instance] = part;
        }
      }
      if (held + granted > 0) parts[this.#instance] = { n: held + granted, hits: 0, at: now };
      const mine = view.parts[this.#instance]?.n ?? 0;
      // Nothing to tell: the key already says what this engine holds (and no place was asked).
      if (takes === 0 && mine === held + granted && Object.keys(parts).length === Object.keys(view.parts).length) return 0;
      try {
        let revision: number;
        if (Object.keys(parts).length === 0) {
          if (view.revision !== 0) await kv.delete(state.key, { previousSeq: view.revision });
          revision = 0;
        } else {
          const value = JSON.stringify({ v: 1, parts } satisfies CountsValue);
          revision = view.revision === 0 ? await kv.create(state.key, value) : await kv.update(state.key, value, view.revision);
        }
        state.pending += granted;
        state.view = { parts, revision };
        return granted;
      } catch (err) {
        // Another node wrote first: read what it wrote and judge again (unless NATS itself is away).
        if (round >= MAX_CAS_ROUNDS || this.#conn.state !== 'connected' || this.#closed) throw err;
        view = await this.#read(kv, state);
      }
    }
  }

  async #read(kv: KV, state: Owner): Promise<View> {
    const entry = await kv.get(state.key);
    // A deleted key's revision is its delete marker's: the next write names it.
    const view = entry === null || entry.operation !== 'PUT'
      ? { parts: {}, revision: entry?.revision ?? 0 }
      : { parts: parsedParts(entry.json<CountsValue>()), revision: entry.revision };
    state.view = view;
    return view;
  }

  /** Bounded: a gateway with many devices writes CATCH_UP_CONCURRENCY owners at a time, not all at once. */
  async #catchUp(owners: string[]): Promise<void> {
    await this.#each(owners.map((owner) => this.#state(owner)), async (state) => {
      if (state.writing || this.#closed) return; // a write of this owner is on its way already
      state.writing = true;
      try {
        await this.#writeOnce(state, 0, false);
      } finally {
        state.writing = false;
        if (state.dirty) this.#schedule(state);
      }
    });
  }

  async #each(states: Owner[], work: (state: Owner) => Promise<void>): Promise<void> {
    let next = 0;
    await Promise.all(Array.from({ length: Math.min(CATCH_UP_CONCURRENCY, states.length) }, async () => {
      while (next < states.length) await work(states[next++]!).catch(() => undefined);
    }));
  }

  /** The keys of the gateway's owners, so the use the engine shows follows the other nodes' sessions without a read. */
  #startFollowing(): void {
    if (this.#watching) return;
    this.#watching = true;
    void (async () => {
      for (let attempt = 0; !this.#closed; attempt++) {
        try {
          const watch = await this.#conn.watch(await this.#bucket(), { key: `${this.#prefix}.>` });
          if (this.#closed) {
            watch.stop();
            return;
          }
          this.#watch = watch;
          attempt = 0;
          for await (const entry of watch) this.#adopt(entry);
        } catch (err) {
          if (this.#closed) return;
          this.#logger.debug({ err }, 'cluster_session_counts_watch_failed');
        }
        if (!this.#closed) await new Promise((resolve) => setTimeout(resolve, Math.min(250 * 2 ** attempt, 2_000)).unref());
      }
    })();
  }

  /** Only the owners this engine holds sessions of (a view of every device of the gateway would grow with the fleet). */
  #adopt(entry: KvWatchEntry): void {
    const state = this.#byKey.get(entry.key);
    if (state === undefined || state.writing || (state.view !== null && state.view.revision >= entry.revision)) return;
    state.view = entry.operation === 'PUT' ? { parts: parsedParts(entry.json<CountsValue>()), revision: entry.revision } : { parts: {}, revision: entry.revision };
  }
}
