/**
 * The devices of a dead node (issue 16 item 7): a node killed, or cut off past its lease, cannot mark its
 * devices offline, and before this they stayed ONLINE until that node started again. Every live node
 * checks once a lease: the nodes with a live lease are alive, and devices recorded as held by any other
 * node go OFFLINE. The write is idempotent (the same rows, the same outcome), so no claim decides which
 * survivor does it. A node cut off from NATS does not judge (it cannot see the leases); one whose own lease
 * lapsed has ended its connections already (links.ts), so its devices going OFFLINE is the truth.
 */
import type { Logger } from '../core/logger.ts';
import type { NodeLeases } from './node-leases.ts';
import type { ClusterConnection } from './connection.ts';

export class PresenceReaper {
  readonly #timer: NodeJS.Timeout;
  #running: Promise<void> | null = null;
  readonly #conn: ClusterConnection;
  readonly #leases: NodeLeases;
  readonly #release: (live: readonly string[]) => Promise<number>;
  readonly #logger: Logger;

  /** `release`: marks OFFLINE the devices of every node not in `live`, returns how many. */
  constructor(conn: ClusterConnection, leases: NodeLeases, release: (live: readonly string[]) => Promise<number>, logger: Logger, everyMs: number) {
    this.#conn = conn;
    this.#leases = leases;
    this.#release = release;
    this.#logger = logger;
    this.#timer = setInterval(() => void this.check(), everyMs);
    this.#timer.unref();
  }

  /** One check now (the timer's; tests call it to skip the wait). */
  check(): Promise<void> {
    this.#running ??= this.#check().finally(() => {
      this.#running = null;
    });
    return this.#running;
  }

  async #check(): Promise<void> {
    if (this.#conn.state !== 'connected') return;
    try {
      const live = (await this.#leases.live()).map((lease) => lease.nodeId);
      // Never judge without this node among the living: its own view of the leases is then not to be trusted.
      if (!live.includes(this.#conn.nodeId)) return;
      const released = await this.#release(live);
      if (released > 0) this.#logger.warn({ devices: released, live }, 'cluster_dead_node_devices_offline');
    } catch (err) {
      this.#logger.warn({ err }, 'cluster_presence_check_failed');
    }
  }

  async close(): Promise<void> {
    clearInterval(this.#timer);
    await this.#running;
  }
}
