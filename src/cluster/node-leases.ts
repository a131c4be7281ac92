/**
 * Which nodes are alive: each node keeps a lease in a KV bucket (one key per node id), renewed by a
 * heartbeat; a lease not renewed for `leaseMs` (a node killed or cut off) is dead, judged by its
 * heartbeat time, and its key stays (one per node id ever used) until a node of that id starts again.
 * The keys are listed from the stream's subjects (one request) rather than `kv.keys()`, whose consumer
 * waited forever now and then under load for a key replaced while it read (a test hung on it).
 * The list of live nodes refuses a second process that starts under a node id another live one holds; the
 * list of dead ones (`dead()`) tells the survivors whose wills to publish (will-reaper.ts). A clean stop
 * marks its lease stopped rather than deleting it, so the survivors learn of that death too.
 */
import { randomUUID } from 'node:crypto';
import type { JetStreamManager } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import type { Subscription } from '@nats-io/transport-node';
import { GatehouseError } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import type { ClusterConnection } from './connection.ts';
import type { SharesHeld } from './dead-node-shares.ts';

export interface NodeLease {
  nodeId: string;
  /** This process (a node id outlives restarts; the instance does not). */
  instance: string;
  startedAt: number;
  /** Epoch ms of the last renewal. */
  heartbeatAt: number;
  /** Where its API listens (for operators; nodes never call each other). */
  apiUrl: string | null;
  /** Epoch ms of a clean stop: the lease is dead from then on. */
  stoppedAt?: number;
  /** The shared groups' messages this process was handing its members at the renewal (dead-node-shares.ts). */
  shares?: SharesHeld;
  /**
   * This process hears the registry's changes (its bus subscribed): a change made elsewhere waits for its answer
   * (registry-bus.ts). Absent while it starts, and from nodes of a version that does not answer.
   */
  hearsChanges?: true;
}

/** A lease as read from the bucket: with the NATS server's time of that write. */
type SeenLease = NodeLease & { writtenAt: number };

/** A process that held a lease and is gone: killed (its lease lapsed), stopped, or replaced by a restart under its node id. */
export interface DeadLease {
  nodeId: string;
  instance: string;
  /** When it died as far as the cluster can tell: its last renewal, or its stop. The same on every survivor. */
  diedAt: number;
  /** The NATS server's time of its lease's last write (the clock of the stream's messages). */
  writtenAt: number;
  /** What its last lease said of the shared groups' messages it was handing its members. */
  shares: SharesHeld | undefined;
}

export interface LeaseTimings {
  heartbeatMs: number;
  /** A lease not renewed for this long is dead. */
  leaseMs: number;
}

export const DEFAULT_LEASE_TIMINGS: LeaseTimings = { heartbeatMs: 2_000, leaseMs: 10_000 };

export class NodeLeases {
  readonly #kv: KV;
  readonly #bucket: string;
  readonly #jsm: JetStreamManager;
  readonly #conn: ClusterConnection;
  readonly #logger: Logger;
  readonly #timings: LeaseTimings;
  readonly #lease: NodeLease;
  #timer: NodeJS.Timeout | null = null;
  /** The previous process under this node id, whose lease this one replaced at start: dead, but no survivor saw it lapse. */
  #replaced: DeadLease | null = null;
  /** The leases as last read (`liveInstances`). */
  #seen: SeenLease[] = [];
  /** What this process is handing shared groups' members, written with each renewal (set by the links). */
  reportShares: (() => SharesHeld | undefined) | undefined;
  /** Other nodes' notices that they joined: the leases are read again at once (`liveInstances`). */
  #joins: Subscription | null = null;

  /** Takes this node's lease; refuses (GW_ERR_CLUSTER_NODE_ID_TAKEN) while another live process renews it. */
  static async join(conn: ClusterConnection, info: { apiUrl: string | null }, logger: Logger,
    timings: LeaseTimings = DEFAULT_LEASE_TIMINGS): Promise<NodeLeases> {
    // One value per key: the latest renewal.
    const bucket = `gatehouse-nodes-${conn.bucketSuffix}`;
    const kv = await conn.makeBucket(bucket, { history: 1 });
    const leases = new NodeLeases(kv, bucket, await conn.client.jetstreamManager(conn.nc), conn, logger, timings, info.apiUrl);
    await leases.#claim();
    await leases.#announce();
    return leases;
  }

  /**
   * Choices every node must make alike from the live leases (an address's throttle home, attempt-throttles.ts) must
   * not wait for the next look to count a node that just joined: until then the nodes that were there chose without
   * it, the newcomer with it, and two of them judged one source's guesses apart (brute-force with GATEHOUSE_WORKERS=2:
   * 16 guesses checked, not 8). A node that joins says so once its lease is written; every node reads them again then
   * (and again when one says it left, `close`).
   */
  async #announce(): Promise<void> {
    const subject = this.#changedSubject;
    this.#joins = this.#conn.nc.subscribe(subject, {
      callback: (err) => {
        if (err !== null) return;
        this.#all().catch((error: unknown) => this.#logger.debug({ err: error }, 'cluster_leases_read_failed'));
      },
    });
    await this.#all();
    this.#conn.nc.publish(subject, this.#lease.instance);
  }

  /** Where a node says it joined or left (the subject keeps its first name: nodes of an older version listen on it). */
  get #changedSubject(): string {
    return `${this.#conn.prefix}.nodes.joined`;
  }

  private constructor(kv: KV, bucket: string, jsm: JetStreamManager, conn: ClusterConnection, logger: Logger, timings: LeaseTimings, apiUrl: string | null) {
    this.#kv = kv;
    this.#bucket = bucket;
    this.#jsm = jsm;
    this.#conn = conn;
    this.#logger = logger;
    this.#timings = timings;
    const now = Date.now();
    this.#lease = { nodeId: conn.nodeId, instance: randomUUID(), startedAt: now, heartbeatAt: now, apiUrl };
  }

  /**
   * A fresh lease of another process under this id is either a twin (two nodes configured alike) or
   * this node's previous life, killed a moment ago. Only a twin keeps renewing: watch it for two beats.
   */
  async #claim(): Promise<void> {
    const seen = await this.#read(this.#conn.nodeId);
    if (seen !== null && seen.lease.instance !== this.#lease.instance && this.#isLive(seen.lease, Date.now())) {
      await new Promise((resolve) => setTimeout(resolve, this.#timings.heartbeatMs * 2 + 500));
      const again = await this.#read(this.#conn.nodeId);
      if (again !== null && again.revision !== seen.revision && again.lease.instance === seen.lease.instance) {
        throw new GatehouseError('GW_ERR_CLUSTER_NODE_ID_TAKEN',
          `node id ${this.#conn.nodeId} is held by another running node (API ${again.lease.apiUrl ?? 'unknown'}, started ${new Date(again.lease.startedAt).toISOString()}); `
          + 'give each node its own GATEHOUSE_NODE_ID (or its own data directory)', 'GATEHOUSE_NODE_ID');
      }
    }
    const previous = await this.#read(this.#conn.nodeId);
    if (previous !== null && previous.lease.instance !== this.#lease.instance) {
      this.#replaced = deadOf(previous.lease);
    }
    await this.#renew();
    this.#timer = setInterval(() => void this.#renew(), this.#timings.heartbeatMs);
    this.#timer.unref();
  }

  /**
   * This process hears the registry's changes from now on: its lease says so at once, and the other nodes read it at
   * once (a change made through their API then waits for this node's answer too).
   */
  async hearsChanges(): Promise<void> {
    this.#lease.hearsChanges = true;
    await this.#renew();
    try {
      this.#conn.nc.publish(this.#changedSubject, this.#lease.instance);
    } catch (err) {
      this.#logger.debug({ err }, 'cluster_lease_announce_failed'); // the others' next look reads it
    }
  }

  /** Renews the lease now (it says what this node hands shared groups' members: a node joining a group first says it). */
  renew(): Promise<void> {
    return this.#renew();
  }

  async #renew(): Promise<void> {
    this.#lease.heartbeatAt = Date.now();
    this.#lease.shares = this.#shares();
    try {
      await this.#kv.put(this.#lease.nodeId, JSON.stringify(this.#lease));
    } catch (err) {
      // Cut off from NATS: the connection's state says so; the lease lapses if it lasts.
      this.#logger.debug({ err }, 'cluster_lease_renewal_failed');
    }
  }

  /** What this process hands its members now; a failing report leaves it out (the survivor then re-picks nothing of it). */
  #shares(): SharesHeld | undefined {
    try {
      return this.reportShares?.();
    } catch (err) {
      this.#logger.warn({ err }, 'cluster_lease_shares_unreported');
      return undefined;
    }
  }

  async #read(nodeId: string): Promise<{ lease: SeenLease; revision: number } | null> {
    const entry = await this.#kv.get(nodeId);
    if (entry === null || entry.operation !== 'PUT') return null;
    try {
      return { lease: { ...entry.json<NodeLease>(), writtenAt: entry.created.getTime() }, revision: entry.revision };
    } catch {
      return null;
    }
  }

  /** This process (node ids outlive restarts). */
  get instance(): string {
    return this.#lease.instance;
  }

  /**
   * The instances of the live node processes as the last look at the leases found them (the will reaper looks each
   * heartbeat): for choices every node must make alike without a request each time (attempt-throttles.ts).
   */
  liveInstances(): readonly string[] {
    const now = Date.now();
    return this.#seen.filter((lease) => this.#isLive(lease, now)).map((lease) => lease.instance);
  }

  /** Of those, the ones that hear the registry's changes (`hearsChanges`): whose answer a change waits for. */
  liveHearingChanges(): readonly string[] {
    const now = Date.now();
    return this.#seen.filter((lease) => lease.hearsChanges === true && this.#isLive(lease, now)).map((lease) => lease.instance);
  }

  /**
   * The NATS server's time of `instance`'s lease's last write as the last look saw it (at or before its real last
   * write). An instance no lease names any more was replaced by a restart under its node id before the others reaped
   * it, so it died within about a lease before that restart: two leases before this process's own last write seen
   * is taken. Undefined before the first look.
   */
  writtenAt(instance: string): number | undefined {
    if (this.#replaced?.instance === instance) return this.#replaced.writtenAt;
    const seen = this.#seen.find((lease) => lease.instance === instance);
    if (seen !== undefined) return seen.writtenAt;
    const own = this.#seen.find((lease) => lease.instance === this.#lease.instance);
    return own === undefined ? undefined : own.writtenAt - 2 * this.#timings.leaseMs;
  }

  /** Every lease in the bucket, one per node id ever used. */
  async #all(): Promise<SeenLease[]> {
    const out: SeenLease[] = [];
    const prefix = `$KV.${this.#bucket}.`;
    const info = await this.#jsm.streams.info(`KV_${this.#bucket}`, { subjects_filter: `${prefix}>` });
    for (const subject of Object.keys(info.state.subjects ?? {})) {
      const seen = await this.#read(subject.slice(prefix.length));
      if (seen !== null) out.push(seen.lease);
    }
    this.#seen = out.sort((a, b) => a.nodeId.localeCompare(b.nodeId));
    return this.#seen;
  }

  #isLive(lease: NodeLease, now: number): boolean {
    return lease.stoppedAt === undefined && now - lease.heartbeatAt < this.#timings.leaseMs;
  }

  /** The nodes whose lease is live, this one included, by node id. */
  async live(): Promise<NodeLease[]> {
    const now = Date.now();
    return (await this.#all()).filter((lease) => this.#isLive(lease, now));
  }

  /** The processes known dead: leases lapsed or stopped, and the one this process replaced at start. */
  async dead(): Promise<DeadLease[]> {
    const now = Date.now();
    const out: DeadLease[] = this.#replaced === null ? [] : [this.#replaced];
    for (const lease of await this.#all()) {
      if (lease.instance === this.#lease.instance || this.#isLive(lease, now)) continue;
      out.push(deadOf(lease));
    }
    return out;
  }

  /**
   * A clean stop ends the lease at once (a killed node's lapses): marked stopped, not deleted, so that the
   * survivors publish the wills of the clients this node held.
   */
  async close(): Promise<void> {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
    this.#joins?.unsubscribe();
    this.#joins = null;
    const stopped: NodeLease = { ...this.#lease, shares: this.#shares(), stoppedAt: Date.now() };
    try {
      await this.#kv.put(this.#lease.nodeId, JSON.stringify(stopped));
      // The others read the leases again at once, as for a join: a change made through their API does not wait for
      // this node to apply it (registry-bus.ts), and an address homed here is judged by a live node.
      this.#conn.nc.publish(this.#changedSubject, this.#lease.instance);
      await this.#conn.nc.flush(); // before the connection closes behind it
    } catch (err) {
      this.#logger.debug({ err }, 'cluster_lease_release_failed');
    }
  }
}

function deadOf(lease: SeenLease): DeadLease {
  return { nodeId: lease.nodeId, instance: lease.instance, diedAt: lease.stoppedAt ?? lease.heartbeatAt, writtenAt: lease.writtenAt, shares: lease.shares };
}
