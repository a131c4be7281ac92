/**
 * The node's one NATS connection. It reconnects forever (a NATS restart is an outage to ride out,
 * not a reason to stop), and its state is observable: parts that must fail closed or read again
 * after a gap (the registry bus, later the engine's fencing) listen to it. `noEcho`: a node never
 * hears its own publishes, so it never routes its own messages twice.
 */
import type { KV, KvOptions, KvWatchEntry, KvWatchOptions } from '@nats-io/kv';
import type { NatsConnection, QueuedIterator } from '@nats-io/transport-node';
import { GatehouseError } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import { settledWithin } from '../core/settled-within.ts';
import { loadNatsClient, type NatsClient } from './nats-client.ts';
import { MAX_UNCONFIRMED_PUBLISH_BYTES, PublishBudget } from './publish-budget.ts';

/**
 * `open` run once and its promise shared, run again after it failed (NATS may have been away): how a node opens
 * the installation's KV buckets on first use.
 */
export function openedOnce<T>(open: () => Promise<T>): () => Promise<T> {
  let opening: Promise<T> | null = null;
  return () => {
    if (opening === null) {
      const attempt = open();
      attempt.catch(() => {
        if (opening === attempt) opening = null;
      });
      opening = attempt;
    }
    return opening;
  };
}

export type ClusterState = 'connected' | 'disconnected' | 'closed';

/** How long a reconnect waits for the buckets to be made sure of before the node counts itself connected. */
const BUCKETS_REMADE_MS = 5_000;
/** How long a stop waits for buffered messages to reach NATS. */
const DRAIN_MS = 3_000;

export interface ClusterConnectionOptions {
  /** GATEHOUSE_NATS_URL: comma-separated servers. */
  servers: string;
  nodeId: string;
  /** The installation every node of this cluster shares (its PostgreSQL database's id): subjects and buckets are its own. */
  installationId: string;
  logger: Logger;
  /** Core NATS publishes that may be dropped, unconfirmed, at most (MAX_UNCONFIRMED_PUBLISH_BYTES when absent). */
  maxUnconfirmedBytes?: number;
}

export class ClusterConnection {
  readonly nc: NatsConnection;
  /** The client packages (JetStream, KV) for the parts that build on this connection. */
  readonly client: NatsClient;
  readonly nodeId: string;
  /** Subject prefix of this installation: two installations may share one NATS without hearing each other. */
  readonly prefix: string;
  /** A name for buckets and streams (letters, digits, `_` and `-` only). */
  readonly bucketSuffix: string;
  /**
   * The bytes of at-most-once publishes (QoS 0 forwards, platform events) NATS has not confirmed: one bound for
   * the whole node, so no flood of any kind grows the NATS client's buffer past it (issue 12).
   */
  readonly budget: PublishBudget;
  readonly #logger: Logger;
  readonly #listeners = new Set<(state: ClusterState) => void>();
  #state: ClusterState = 'connected';
  /** The installation's KV buckets this node uses, by name: each made again after every reconnect (`makeBucket`). */
  readonly #buckets = new Map<string, () => Promise<unknown>>();
  /** Counts the connection's status changes: a reconnect's bucket making that another change overtook sets nothing. */
  #changes = 0;
  /** KV watches being opened: close() lets them finish before it drains (see watch). */
  readonly #openingWatches = new Set<Promise<unknown>>();
  #closing = false;

  static async open(options: ClusterConnectionOptions): Promise<ClusterConnection> {
    const servers = options.servers.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
    const client = await loadNatsClient();
    let nc: NatsConnection;
    try {
      nc = await client.connect({
        servers, name: `gatehouse ${options.nodeId}`, noEcho: true,
        // Reconnect forever, quickly: while cut off, the node's devices cannot reach the others'.
        maxReconnectAttempts: -1, reconnectTimeWait: 250, timeout: 5_000,
        // A server that stopped answering is noticed within seconds, not the default minutes.
        pingInterval: 5_000, maxPingOut: 2,
        // Without it every request (each QoS 1/2 message's JetStream publish) builds two Errors with their stack
        // traces up front, for a failure that rarely comes: 7 % of a publishing node's CPU under QoS 1 load.
        noAsyncTraces: true,
      });
    } catch (error) {
      throw new GatehouseError('GW_ERR_CLUSTER_NATS_UNREACHABLE',
        `GATEHOUSE_NATS_URL ${servers.join(', ')} cannot be reached (${(error as Error).message}); start nats-server with -js there, or fix the URL`,
        'GATEHOUSE_NATS_URL');
    }
    return new ClusterConnection(nc, client, options);
  }

  private constructor(nc: NatsConnection, client: NatsClient, options: ClusterConnectionOptions) {
    this.nc = nc;
    this.client = client;
    this.nodeId = options.nodeId;
    const installation = options.installationId.replace(/[^A-Za-z0-9_-]/g, '_');
    this.prefix = `gatehouse.${installation}`;
    this.bucketSuffix = installation;
    this.budget = new PublishBudget(options.maxUnconfirmedBytes ?? MAX_UNCONFIRMED_PUBLISH_BYTES, () => nc.flush());
    this.#logger = options.logger;
    this.#logger.info({ server: nc.getServer(), nodeId: options.nodeId }, 'cluster_connected');
    void this.#watch();
  }

  get state(): ClusterState {
    return this.#state;
  }

  /**
   * Whether a publish now goes out on the NATS client's current connection. Read from the client's protocol
   * handler (nats-core 3.3.1, pinned), not from `state`, which follows the status events a moment later: a publish
   * made while the client is between connections is kept in its buffer and sent on the next one, after whatever
   * was retried meanwhile, and the ordered publisher of the stream (message-stream.ts) must never let that happen.
   */
  get writable(): boolean {
    const connected = (this.nc as { protocol?: { connected?: unknown } }).protocol?.connected;
    return typeof connected === 'boolean' ? connected && !this.nc.isClosed() : this.#state === 'connected';
  }

  /** Hears every change of state; returns the function that stops. */
  onState(listener: (state: ClusterState) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * A KV bucket of the installation, made (or bound to, when it is there) and kept: made again the same way after
   * each reconnect, before the node counts itself connected. A NATS server may come back without its store (a lost
   * disk, a container started again without its volume): the buckets are gone, and every handle on them fails ("stream not found") until someone makes them again, so leases, session records and
   * the rest would fail for good. With them made again, the handles work (a bucket is found by its name); what they
   * held is lost with the store: each node writes its lease again at its next heartbeat, and a session whose record
   * went is let go by its node (session-ownership.ts: the record's revision is gone), its client reconnecting.
   */
  makeBucket(name: string, options: Partial<KvOptions>): Promise<KV> {
    const make = (): Promise<KV> => new this.client.Kvm(this.nc).create(name, options);
    this.#buckets.set(name, make);
    return make();
  }

  async #watch(): Promise<void> {
    void this.nc.closed().then(() => this.#set('closed'));
    for await (const status of this.nc.status()) {
      if (status.type === 'disconnect') {
        this.#changes++;
        this.#set('disconnected');
      } else if (status.type === 'reconnect') {
        void this.#reconnected(++this.#changes);
      }
    }
  }

  /** Back on NATS: its buckets made sure of (bounded: BUCKETS_REMADE_MS), then connected, unless it went again meanwhile. */
  async #reconnected(change: number): Promise<void> {
    const makes = [...this.#buckets].map(([name, make]) => make().catch((err: unknown) => {
      this.#logger.warn({ err, bucket: name }, 'cluster_bucket_not_made');
    }));
    await settledWithin(Promise.all(makes), BUCKETS_REMADE_MS);
    if (change !== this.#changes) return; // gone again meanwhile (or back again: that reconnect decides)
    this.#set('connected');
  }

  #set(state: ClusterState): void {
    if (this.#state === state || this.#state === 'closed') return;
    this.#state = state;
    this.#logger[state === 'connected' ? 'info' : 'warn']({ state, server: this.nc.getServer() }, 'cluster_connection_state');
    for (const listener of [...this.#listeners]) {
      try {
        listener(state);
      } catch (err) {
        this.#logger.error({ err, state }, 'cluster_state_listener_failed');
      }
    }
  }

  /**
   * `kv.watch`, tracked until it is open. nats.js (@nats-io/jetstream 3.3.1) starts an ordered consumer's
   * idle-heartbeat timer before it subscribes; when the connection is draining or closed by then, the subscribe
   * throws and the timer runs for good: every 10 s a ClosedConnectionError, and a process that never exits. So a
   * watch still opening when close() is called is let finish on the open connection and stopped at once, before
   * the drain (whose subscriptions' ends stop their consumers' timers); no watch opens once closing.
   */
  watch(kv: KV, options: KvWatchOptions): Promise<QueuedIterator<KvWatchEntry>> {
    if (this.#closing) return Promise.reject(new Error('the cluster connection is closing'));
    const opening = kv.watch(options);
    this.#openingWatches.add(opening);
    const opened = (watch: QueuedIterator<KvWatchEntry> | undefined): void => {
      this.#openingWatches.delete(opening);
      if (this.#closing) watch?.stop();
    };
    opening.then(opened, () => opened(undefined));
    return opening;
  }

  /** Sends what is buffered and closes; a drain that does not finish within seconds (NATS away) is cut short. */
  async close(): Promise<void> {
    this.#closing = true;
    if (this.nc.isClosed()) return;
    // Bounded like the drain: with NATS away the opening's requests fail by themselves, and the close ends them.
    await settledWithin(Promise.allSettled([...this.#openingWatches]), DRAIN_MS);
    let timer: NodeJS.Timeout | undefined;
    const cutShort = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), DRAIN_MS)));
    const outcome = await Promise.race([this.nc.drain().then(() => 'drained' as const, () => 'failed' as const), cutShort]);
    clearTimeout(timer);
    if (outcome !== 'drained' && !this.nc.isClosed()) await this.nc.close();
  }
}
