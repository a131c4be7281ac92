/**
 * Wills of a dead node (issue 16 item 6): published once, by one survivor, after the dead node's lease expired.
 *
 * Every node looks at the leases once a heartbeat. For each process found dead (lease lapsed, stopped, or replaced
 * by a restart under its node id) the survivors race to create one key in the reap bucket, named by the process
 * and the moment it died — the same name on every survivor, so exactly one creates it. The winner takes each
 * session record the dead process held that still carries a will, by compare-and-swap (a CONNECT of that client
 * on any node meanwhile wins instead, and the will is not due [MQTT-3.1.3-9]), and publishes the will when its
 * delay has passed since the death, through the gateway's engine here (session-ownership.ts `adopt`).
 *
 * The reap keys stay (one per death; history 1, small). A will is authorized when recorded, at its CONNECT:
 * a survivor has no connection of that client to ask the gateway's rules with.
 */
import type { KV } from '@nats-io/kv';
import type { Logger } from '../core/logger.ts';
import type { ClusterConnection } from './connection.ts';
import type { DeadLease, NodeLeases } from './node-leases.ts';
import { willOf, type OpenRecords } from './session-records.ts';
import type { RecordIdentity, SessionOwnership } from './session-ownership.ts';

export class WillReaper {
  readonly #conn: ClusterConnection;
  readonly #leases: NodeLeases;
  readonly #records: OpenRecords;
  #reaps: Promise<KV> | null = null;
  readonly #me: RecordIdentity;
  readonly #ownership: (gatewayId: string) => SessionOwnership | undefined;
  readonly #logger: Logger;
  readonly #timer: NodeJS.Timeout;
  /** Deaths this node has dealt with (won or lost): asked about once. */
  readonly #seen = new Set<string>();
  #running = false;
  /** Hears every process found dead, at each look (shared groups' messages sent to them are picked again). */
  onDeaths: ((instances: string[]) => void) | undefined;

  constructor(conn: ClusterConnection, leases: NodeLeases, records: OpenRecords, me: RecordIdentity,
    ownership: (gatewayId: string) => SessionOwnership | undefined, logger: Logger, everyMs: number) {
    this.#conn = conn;
    this.#leases = leases;
    this.#records = records;
    this.#me = me;
    this.#ownership = ownership;
    this.#logger = logger;
    this.#timer = setInterval(() => void this.tick(), everyMs);
    this.#timer.unref();
  }

  /** One look at the leases (the timer's; tests may call it). */
  async tick(): Promise<void> {
    if (this.#running || this.#conn.state !== 'connected') return;
    this.#running = true;
    try {
      const deaths = await this.#leases.dead();
      this.onDeaths?.(deaths.map((dead) => dead.instance));
      for (const dead of deaths) {
        const name = `${dead.instance}-${dead.diedAt}`;
        if (this.#seen.has(name)) continue;
        let won: boolean;
        try {
          await (await this.#openReaps()).create(name, JSON.stringify({ node: this.#me.nodeId, instance: this.#me.instance, at: Date.now() }));
          won = true;
        } catch {
          won = false; // another survivor created it first (or NATS went away: asked again next time)
          if (this.#conn.state !== 'connected') continue;
        }
        this.#seen.add(name);
        if (won) await this.#reap(dead);
      }
    } catch (err) {
      this.#logger.warn({ err }, 'cluster_reap_failed');
    } finally {
      this.#running = false;
    }
  }

  /** The reap bucket, on first use (and again after a failure). */
  #openReaps(): Promise<KV> {
    if (this.#reaps === null) {
      const opening = new this.#conn.client.Kvm(this.#conn.nc).create(`gatehouse-reaps-${this.#conn.bucketSuffix}`, { history: 1 });
      opening.catch(() => {
        if (this.#reaps === opening) this.#reaps = null;
      });
      this.#reaps = opening;
    }
    return this.#reaps;
  }

  async #reap(dead: DeadLease): Promise<void> {
    const records = await this.#records();
    let wills = 0;
    for (const key of await records.keys()) {
      const seen = await records.get(key).catch(() => null);
      if (seen === null || seen.record.instance !== dead.instance || seen.record.will === null) continue;
      const { record, revision } = seen;
      const ownership = this.#ownership(record.gatewayId);
      if (ownership === undefined) continue; // the gateway does not run here (stopped meanwhile)
      const will = record.will!;
      // A live connection's will was due from the death on, after its delay; a pending one keeps its time.
      const dueAt = will.dueAt ?? dead.diedAt + will.delay * 1000;
      try {
        const taken = await records.update(key, {
          ...record, node: this.#me.nodeId, instance: this.#me.instance, connected: false, will: { ...will, dueAt }, at: Date.now(),
        }, revision);
        ownership.adopt(record.clientId, taken, willOf(will), dueAt);
        wills++;
      } catch (err) {
        this.#logger.debug({ err, clientId: record.clientId }, 'cluster_reap_record_moved'); // claimed meanwhile: not due
      }
    }
    this.#logger.info({ deadNode: dead.nodeId, deadInstance: dead.instance, wills }, 'cluster_dead_node_reaped');
  }

  close(): void {
    clearInterval(this.#timer);
  }
}
