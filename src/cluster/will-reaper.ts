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
 *
 * The winner also settles the dead process's inbound QoS 2 stores in doubt (in-doubt-stores.ts): a store whose
 * record did not yet name its packet id as received is written into the record as received, so the client's resend,
 * however late, is not stored a second time [MQTT-4.3.3-10]; and it picks again the dead process's shared groups'
 * messages that no live keeper will (dead-node-shares.ts).
 */
import type { KV } from '@nats-io/kv';
import type { Logger } from '../core/logger.ts';
import type { ClusterConnection } from './connection.ts';
import type { DeadLease, NodeLeases } from './node-leases.ts';
import { IN_DOUBT_BEFORE_DEATH_MS, InDoubtStores } from './in-doubt-stores.ts';
import { willOf, type OpenRecords, type SessionRecord, type SessionRecords } from './session-records.ts';
import type { RecordIdentity, SessionOwnership } from './session-ownership.ts';

/** The ids of a gateway's messages stored from a moment on (MessageStream.idsSince). */
export type StoredIdsSince = (gatewayId: string, sinceMs: number, each: (msgId: string) => void) => Promise<number>;

export class WillReaper {
  readonly #conn: ClusterConnection;
  readonly #leases: NodeLeases;
  readonly #records: OpenRecords;
  #reaps: Promise<KV> | null = null;
  readonly #me: RecordIdentity;
  readonly #ownership: (gatewayId: string) => SessionOwnership | undefined;
  readonly #storedIdsSince: StoredIdsSince;
  readonly #logger: Logger;
  readonly #timer: NodeJS.Timeout;
  /** Deaths this node has dealt with (won or lost): asked about once. */
  readonly #seen = new Set<string>();
  /** The look running, if any. */
  #looking: Promise<void> | null = null;
  /** Hears every process found dead, at each look (shared groups' messages sent to them are picked again). */
  onDeaths: ((instances: string[]) => void) | undefined;
  /** Hears each dead process this node reaped, once its records are taken (its shared groups' messages nobody keeps). */
  onReaped: ((dead: DeadLease) => Promise<unknown>) | undefined;

  constructor(conn: ClusterConnection, leases: NodeLeases, records: OpenRecords, me: RecordIdentity,
    ownership: (gatewayId: string) => SessionOwnership | undefined, storedIdsSince: StoredIdsSince, logger: Logger, everyMs: number) {
    this.#conn = conn;
    this.#leases = leases;
    this.#records = records;
    this.#me = me;
    this.#ownership = ownership;
    this.#storedIdsSince = storedIdsSince;
    this.#logger = logger;
    this.#timer = setInterval(() => void this.tick(), everyMs);
    this.#timer.unref();
  }

  /**
   * One look at the leases (the timer's; tests may call it). A call while a look runs waits for that one: a caller
   * (a test) that goes on once its call resolved finds every death seen so far dealt with, not one still being reaped.
   */
  tick(): Promise<void> {
    if (this.#looking !== null) return this.#looking;
    if (this.#conn.state !== 'connected') return Promise.resolve();
    const looking = this.#look().finally(() => {
      if (this.#looking === looking) this.#looking = null;
    });
    this.#looking = looking;
    return looking;
  }

  async #look(): Promise<void> {
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
    }
  }

  /** The reap bucket, on first use (and again after a failure). */
  #openReaps(): Promise<KV> {
    if (this.#reaps === null) {
      const opening = this.#conn.makeBucket(`gatehouse-reaps-${this.#conn.bucketSuffix}`, { history: 1 });
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
    let qos2Landed = 0;
    const count = (taken: { will: boolean; qos2Landed: number }): void => {
      wills += taken.will ? 1 : 0;
      qos2Landed += taken.qos2Landed;
    };
    // Records without a session state are taken at once: their wills need no read of the stream. Of those with one,
    // only what matching the stream's ids needs is kept (InDoubtStores: an epoch, the uses, the ids received; not the
    // state, up to MAX_STATE_BYTES each), and each is read again to be taken once the ids are in.
    const doubts = new InDoubtStores<string>();
    const gateways = new Set<string>();
    const stateful: string[] = [];
    for (const key of await records.keys()) {
      const seen = await records.get(key).catch(() => null);
      if (seen === null || seen.record.instance !== dead.instance) continue;
      if (seen.record.state === undefined) {
        count(await this.#take(records, dead, key, seen.record, seen.revision, null));
        continue;
      }
      if (doubts.add(key, seen.record.state)) gateways.add(seen.record.gatewayId);
      stateful.push(key);
    }
    await this.#readStoredIds(dead, gateways, doubts);
    for (const key of stateful) {
      const seen = await records.get(key).catch(() => null);
      if (seen === null || seen.record.instance !== dead.instance) continue; // claimed meanwhile
      count(await this.#take(records, dead, key, seen.record, seen.revision, doubts));
    }
    this.#logger.info({ deadNode: dead.nodeId, deadInstance: dead.instance, wills, qos2Landed }, 'cluster_dead_node_reaped');
    await this.onReaped?.(dead).catch((err: unknown) => this.#logger.warn({ err, deadInstance: dead.instance }, 'cluster_reap_shares_failed'));
  }

  /**
   * One record of the dead process: its will taken (when due to be published here) and its in-doubt stores that
   * landed named received, in one compare-and-swap; nothing when neither applies or the record moved meanwhile.
   */
  async #take(records: SessionRecords, dead: DeadLease, key: string, record: SessionRecord, revision: number,
    doubts: InDoubtStores<string> | null): Promise<{ will: boolean; qos2Landed: number }> {
    const settled = record.state === undefined ? undefined : doubts?.settled(key, record.state);
    const will = record.will;
    const ownership = will === null ? undefined : this.#ownership(record.gatewayId); // undefined: not running here (stopped meanwhile)
    if (settled === undefined && ownership === undefined) return { will: false, qos2Landed: 0 };
    const written = settled === undefined ? record : { ...record, state: settled.state };
    try {
      if (will !== null && ownership !== undefined) {
        // A live connection's will was due from the death on, after its delay; a pending one keeps its time.
        const dueAt = will.dueAt ?? dead.diedAt + will.delay * 1000;
        const taken = await records.update(key, {
          ...written, node: this.#me.nodeId, instance: this.#me.instance, connected: false, will: { ...will, dueAt }, at: Date.now(),
        }, revision);
        ownership.adopt(record.clientId, taken, willOf(will), dueAt);
      } else {
        await records.update(key, { ...written, at: Date.now() }, revision); // still the dead process's: claimed as before
      }
      return { will: ownership !== undefined, qos2Landed: settled?.landed ?? 0 };
    } catch (err) {
      // Claimed meanwhile: the will is not due, and the client's resends reach the claiming node within the window.
      this.#logger.debug({ err, clientId: record.clientId }, 'cluster_reap_record_moved');
      return { will: false, qos2Landed: 0 };
    }
  }

  /** Tells `doubts` the ids of the messages stored in `gateways` from shortly before the death on (which of its stores landed). */
  async #readStoredIds(dead: DeadLease, gateways: ReadonlySet<string>, doubts: InDoubtStores<string>): Promise<void> {
    for (const gatewayId of gateways) {
      try {
        await this.#storedIdsSince(gatewayId, dead.writtenAt - IN_DOUBT_BEFORE_DEATH_MS, (msgId) => doubts.heard(msgId));
      } catch (err) {
        // Its records stay as they were: a resend within the stream's duplicate window is still stored once.
        this.#logger.warn({ err, gatewayId, deadInstance: dead.instance }, 'cluster_reap_stores_unread');
      }
    }
  }

  close(): void {
    clearInterval(this.#timer);
  }
}
