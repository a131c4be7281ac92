/**
 * Shared subscriptions across nodes (issue 16 item 5): each message to one member of a group in the whole
 * cluster [MQTT-4.8.2-2], spread over the members of every node, and a QoS 1/2 message sent to a node that
 * dies before its member acknowledged it sent again, to another member.
 *
 * The node a message is published on decides (router.ts): it picks each matching group's member among its
 * own members and, once each, the other nodes holding members of the group. So it must know those nodes:
 *
 * - `SharedDirectory`, one per gateway engine: a JetStream KV bucket of the gateway's own
 *   (`gatehouse-shared-<installation>-<gatewayId>`), one key per group and node process
 *   (`<SHA-256 of group and filter, base64url>.<instance>`, value the group and the filter), written when
 *   the node gets its first member of the group and deleted when its last one goes. Every node watches it
 *   and tells its engine which other nodes hold each group. Keys grow with groups × nodes, never with devices
 *   (a member joining a group that already has members here writes nothing). A SUBACK waits for the write.
 * - `SharedRelay`, one per node: a pick that fell on another node sends the message there alone, on that
 *   process's subject (`<prefix>.shared.<instance>`), and that node picks among its own members; the message
 *   every node gets through the gateway's subject (links.ts) skips shared groups. A QoS 1/2 message is kept
 *   here until the other node answers on a reply subject of this process: at its member's PUBACK when
 *   delivered at QoS 1, at once when delivered at QoS 0 or 2 (a QoS 2 message is that member's to complete
 *   and MUST NOT go to another [MQTT-4.8.2-4, MQTT-4.8.2-5]); when that node dies first (its lease lapsed:
 *   node-leases.ts, told each heartbeat by the will reaper) or answers that it has no member left, the
 *   message is picked again among the group's other candidates. A PUBACK with a reason code of 0x80 or more
 *   is an answer too: the message is not sent to another member [MQTT-4.8.2-6].
 *
 * Why not NATS queue groups and a JetStream consumer per group (scale.md's proposal): a queue group or a
 * consumer picks the node, but then a group with members on one node only pays a NATS round trip per
 * message instead of an in-memory pick, and the publishing node cannot deliver to its own member without
 * asking NATS first. Here a one-node group costs what it cost before; NATS carries a message only to the
 * node picked. A QoS 1/2 message published on a cluster node is in the cluster's stream (item 2,
 * durable-messages.ts): its picks travel in the stored message's header, and what is kept here for its redelivery
 * is its stream sequence, read back for a re-pick.
 *
 * When the keeper is gone: the list of what is kept lives in the publishing node's memory. So the node a message was
 * picked for re-picks it itself when its member does not complete it and the keeper is dead (or dies within a lease
 * of the answer it could not hear), and a node says in its lease which stored messages it was handing its members
 * (`holding`): when it dies, the survivor that reaps it picks again those whose keeper is gone too, or that it had
 * published and picked itself (dead-node-shares.ts).
 */
import { createHash } from 'node:crypto';
import type { KV, KvWatchEntry } from '@nats-io/kv';
import type { Msg, QueuedIterator, Subscription } from '@nats-io/transport-node';
import type { LinkEndpoint, Message } from '../broker/index.ts';
import type { Logger } from '../core/logger.ts';
import { settledWithin } from '../core/settled-within.ts';
import type { ClusterConnection } from './connection.ts';
import { heldOf, MAX_HELD_REPORTED_IN_ALL, type SharesHeld } from './dead-node-shares.ts';
import { decodeMessage, encodeMessage } from './wire.ts';

/** A failed write is tried again, backing off to this, for as long as the engine runs. */
const RETRY_MAX_MS = 2_000;
/** How long a SUBACK waits for the group's record (NATS away: it goes anyway). */
const SETTLE_TIMEOUT_MS = 2_000;
/**
 * QoS 1/2 messages kept for redelivery per node: beyond it the oldest is no longer kept (its member on the
 * other node still has it; only its redelivery after that node's death is lost), counted `shared_untracked`.
 */
export const MAX_KEPT = 10_000;
/** Times one message is picked again before it is dropped (nodes answering that they have no member left). */
const MAX_REPICKS = 3;
/**
 * Answers that a message did not reach a member here, sent to a keeper not known dead, remembered (by stream sequence)
 * for a lease and two heartbeats: a keeper that had died already never hears them, and once its death is known the
 * message is picked again here. At most MAX_KEPT.
 */
interface Unheard {
  keeper: string;
  gatewayId: string;
  group: string;
  filter: string;
  seq: number;
  at: number;
}

export interface SharedCounters {
  /** Messages sent to another node for a shared group's member there. */
  sharedSent: number;
  /** Messages another node sent here for a shared group's member. */
  sharedReceived: number;
  /** Messages picked again: the node they went to died before its member completed them, or had no member left. */
  sharedRepicked: number;
  /** Messages for a shared group that no member was left to take (dropped). */
  sharedUndeliverable: number;
  /** QoS 1/2 messages no longer kept for redelivery (over MAX_KEPT). */
  sharedUntracked: number;
  /** QoS 0 messages for a member on another node not sent: NATS had not confirmed the node's publishes before them. */
  sharedDropped: number;
}

export function sharedCounters(): SharedCounters {
  return { sharedSent: 0, sharedReceived: 0, sharedRepicked: 0, sharedUndeliverable: 0, sharedUntracked: 0, sharedDropped: 0 };
}

interface GroupEntry {
  group: string;
  filter: string;
  nodes: Set<string>;
}

/** One gateway's directory of which node processes hold members of which shared groups. */
export class SharedDirectory {
  readonly #conn: ClusterConnection;
  readonly #bucket: string;
  readonly #instance: string;
  readonly #logger: Logger;
  /** Node processes known dead (shared by every gateway of the node): their records are ignored and deleted. */
  readonly #dead: ReadonlySet<string>;
  readonly #groups = new Map<string, GroupEntry>();
  /** The groups this node holds members of (its keys in the bucket). */
  readonly #mine = new Set<string>();
  #kv: Promise<KV> | null = null;
  #writes: Promise<void> = Promise.resolve();
  #pendingWrites = 0;
  #applied = 0;
  #watch: QueuedIterator<KvWatchEntry> | null = null;
  #tell: LinkEndpoint['sharedElsewhere'] | null = null;
  #closed = false;
  readonly #offState: () => void;
  readonly #beforeJoin: () => Promise<void>;

  /**
   * `beforeJoin`: awaited before this node's record of a group is written, so before any other node can pick it for
   * the group: the node's lease says from which stored message on it hands the gateway's messages to members here
   * (dead-node-shares.ts), and a pick of it before that renewal would be nobody's to pick again if it died at once.
   */
  constructor(conn: ClusterConnection, gatewayId: string, instance: string, dead: ReadonlySet<string>, logger: Logger,
    beforeJoin: () => Promise<void> = () => Promise.resolve()) {
    this.#beforeJoin = beforeJoin;
    this.#conn = conn;
    this.#bucket = `gatehouse-shared-${conn.bucketSuffix}-${gatewayId.replace(/[^A-Za-z0-9_-]/g, '_')}`;
    this.#instance = instance;
    this.#dead = dead;
    this.#logger = logger;
    // Back from a NATS outage, watch again at once (as retained-replica.ts does), from the next revision.
    this.#offState = conn.onState((state) => {
      if (state === 'connected') this.#watch?.stop();
    });
  }

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

  /** Follows the bucket until closed, telling the engine the other nodes of each group as they change. */
  start(tell: LinkEndpoint['sharedElsewhere']): void {
    this.#tell = tell;
    void this.#follow();
  }

  async #follow(): Promise<void> {
    for (let attempt = 0; !this.#closed; attempt++) {
      try {
        const kv = await this.#open();
        const watch = await this.#conn.watch(kv, this.#applied === 0 ? {} : { resumeFromRevision: this.#applied + 1 });
        if (this.#closed) {
          watch.stop();
          return;
        }
        this.#watch = watch;
        attempt = 0;
        for await (const entry of watch) this.#apply(entry);
      } catch (err) {
        if (this.#closed) return;
        this.#logger.warn({ err, bucket: this.#bucket }, 'cluster_shared_watch_failed');
      }
      if (!this.#closed) await pause(Math.min(250 * 2 ** attempt, RETRY_MAX_MS));
    }
  }

  #apply(entry: KvWatchEntry): void {
    if (entry.revision > this.#applied) this.#applied = entry.revision;
    const dot = entry.key.indexOf('.');
    if (dot < 0) return;
    const hash = entry.key.slice(0, dot);
    const node = entry.key.slice(dot + 1);
    if (node === this.#instance) return; // this node's own members are the router's
    if (this.#dead.has(node)) {
      if (entry.operation === 'PUT') this.#deleteKey(entry.key);
      return;
    }
    let group = this.#groups.get(hash);
    if (entry.operation === 'PUT') {
      if (group === undefined) {
        try {
          const { group: name, filter } = entry.json<{ group: string; filter: string }>();
          if (typeof name !== 'string' || typeof filter !== 'string') throw new Error('not a shared group record');
          this.#groups.set(hash, (group = { group: name, filter, nodes: new Set() }));
        } catch (err) {
          this.#logger.warn({ err, bucket: this.#bucket, key: entry.key }, 'cluster_shared_record_unreadable');
          return;
        }
      }
      if (group.nodes.has(node)) return;
      group.nodes.add(node);
    } else {
      if (group === undefined || !group.nodes.delete(node)) return;
    }
    this.#changed(hash, group);
  }

  #changed(hash: string, group: GroupEntry): void {
    if (group.nodes.size === 0) this.#groups.delete(hash);
    this.#tell?.(group.group, group.filter, [...group.nodes]);
  }

  /** This node got its first member of a group (present) or lost its last one. */
  set(group: string, filter: string, present: boolean): void {
    if (this.#closed) return;
    const key = `${keyOf(group, filter)}.${this.#instance}`;
    if (present) this.#mine.add(key);
    else this.#mine.delete(key);
    const value = JSON.stringify({ group, filter });
    this.#pendingWrites++;
    this.#writes = this.#writes.then(() => this.#write(key, present ? value : null)).finally(() => this.#pendingWrites--);
  }

  async #write(key: string, value: string | null): Promise<void> {
    for (let attempt = 0; !this.#closed; attempt++) {
      // A later change of the same key is queued behind this one: the last one wins.
      if (value !== null && !this.#mine.has(key)) return;
      if (value === null && this.#mine.has(key)) return;
      try {
        const kv = await this.#open();
        if (value === null) {
          await kv.delete(key);
        } else {
          await this.#beforeJoin();
          await kv.put(key, value);
        }
        return;
      } catch (err) {
        if (this.#closed) return;
        this.#logger.warn({ err, bucket: this.#bucket, attempt }, 'cluster_shared_write_failed');
        await pause(Math.min(250 * 2 ** attempt, RETRY_MAX_MS));
      }
    }
  }

  /** Resolves once this node's group records are written (or after a bounded wait); undefined: they are. */
  settled(): Promise<void> | undefined {
    if (this.#pendingWrites === 0) return undefined;
    return settledWithin(this.#writes, SETTLE_TIMEOUT_MS);
  }

  /** Whether this node holds members of any of the gateway's shared groups (its lease then says what it hands them). */
  get holdsMembers(): boolean {
    return this.#mine.size > 0;
  }

  /** Node processes found dead: they hold no member any more (their records are deleted, by any survivor). */
  forget(dead: ReadonlySet<string>): void {
    for (const [hash, group] of this.#groups) {
      let changed = false;
      for (const node of group.nodes) {
        if (!dead.has(node)) continue;
        group.nodes.delete(node);
        this.#deleteKey(`${hash}.${node}`);
        changed = true;
      }
      if (changed) this.#changed(hash, group);
    }
  }

  #deleteKey(key: string): void {
    void this.#open().then((kv) => kv.delete(key)).catch((err: unknown) => this.#logger.debug({ err, key }, 'cluster_shared_delete_failed'));
  }

  /** The engine stops: this node's records go (a killed node's are deleted by the survivors once its lease lapsed). */
  close(): void {
    this.#closed = true;
    this.#offState();
    this.#watch?.stop();
    this.#watch = null;
    for (const key of this.#mine) this.#deleteKey(key);
    this.#mine.clear();
  }
}

function keyOf(group: string, filter: string): string {
  return createHash('sha256').update(group).update('\u0000').update(filter).digest('base64url');
}

/** What the relay needs of a gateway's engine here. */
export type SharedTarget = Pick<LinkEndpoint, 'receiveShared' | 'reshare'>;

interface Kept {
  gatewayId: string;
  node: string;
  group: string;
  filter: string;
  /**
   * The message itself while it is only here: sent over core NATS (`send`), or on its way into the cluster's stream.
   * Once the stream holds it (`rest`), null: the kept copy is its stream sequence, read back for a re-pick.
   */
  message: Message | null;
  stored?: { seq: number };
}

/** Messages sent from node to node for shared groups' members, and the QoS 1/2 ones kept until completed. */
export class SharedRelay {
  readonly #conn: ClusterConnection;
  readonly #instance: string;
  readonly #logger: Logger;
  readonly #target: (gatewayId: string) => SharedTarget | undefined;
  readonly #counters: (gatewayId: string) => SharedCounters;
  readonly #inbound: Subscription;
  readonly #replies: Subscription;
  /** QoS 1/2 messages sent to another node, by reply number, oldest first, until that node's member completed them. */
  readonly #kept = new Map<number, Kept>();
  readonly #repicks = new WeakMap<Message, number>();
  #next = 0;
  /** Node processes known dead (the links' set): a keeper among them hears nothing any more. */
  readonly #dead: ReadonlySet<string>;
  /** Per gateway, the stored messages whose QoS 1 delivery to a member here is not completed (sequence → deliveries). */
  readonly #held = new Map<string, Map<number, number>>();
  /** 'none' answers a dead keeper may not have heard, oldest first (`Unheard`). */
  #unheard: Unheard[] = [];
  readonly #rememberMs: number;
  readonly #read: (seq: number) => Promise<Message | null>;

  /**
   * `dead`: the node processes known dead; `rememberMs`: how long an answer to a keeper that may be dead already is
   * remembered (a lease and two heartbeats); `read`: a stored message by its sequence.
   */
  constructor(conn: ClusterConnection, instance: string, logger: Logger, target: (gatewayId: string) => SharedTarget | undefined,
    counters: (gatewayId: string) => SharedCounters, dead: ReadonlySet<string>, rememberMs: number, read: (seq: number) => Promise<Message | null>) {
    this.#conn = conn;
    this.#instance = instance;
    this.#logger = logger;
    this.#target = target;
    this.#counters = counters;
    this.#dead = dead;
    this.#rememberMs = rememberMs;
    this.#read = read;
    this.#inbound = conn.nc.subscribe(subjectOf(conn, instance), { callback: (err, msg) => this.#onMessage(err, msg) });
    this.#replies = conn.nc.subscribe(`${conn.prefix}.shared-done.${instance}.*`, { callback: (err, msg) => this.#onReply(err, msg) });
  }

  /** Messages kept for redelivery (tests, metrics). */
  get kept(): number {
    return this.#kept.size;
  }

  send(gatewayId: string, node: string, group: string, filter: string, message: Message): void {
    const counters = this.#counters(gatewayId);
    const reply = message.qos > 0 ? this.keep(gatewayId, node, group, filter, message) : undefined;
    try {
      const frame = frameOf(gatewayId, group, filter, message);
      // QoS 0 (at most once) under the node's budget of unconfirmed publishes, as the other QoS 0 forwards; a
      // QoS 1/2 one is kept until its node answers, so it is not dropped here (MAX_KEPT bounds those).
      if (reply === undefined && !this.#conn.budget.admit(frame.length)) {
        counters.sharedDropped++;
        return;
      }
      this.#conn.nc.publish(subjectOf(this.#conn, node), frame, reply === undefined ? undefined : { reply });
      counters.sharedSent++;
    } catch (err) {
      // NATS refused it (closed, or its buffer full): a kept message stays kept and goes again if that node dies.
      this.#logger.debug({ err }, 'cluster_shared_send_failed');
    }
  }

  /**
   * Keeps a QoS 1/2 message picked for a group's member on another node until that node answers on the returned
   * reply subject (its member completed it, or it has none left), or dies (picked again). Used for the messages
   * sent here (`send`) and for the QoS 1/2 messages of the cluster's stream whose pick named another node.
   */
  keep(gatewayId: string, node: string, group: string, filter: string, message: Message): string {
    const n = ++this.#next;
    this.#kept.set(n, { gatewayId, node, group, filter, message });
    if (this.#kept.size > MAX_KEPT) {
      const oldest = this.#kept.keys().next().value!;
      const dropped = this.#kept.get(oldest)!;
      this.#kept.delete(oldest);
      this.#counters(dropped.gatewayId).sharedUntracked++;
    }
    return `${this.#conn.prefix}.shared-done.${this.#instance}.${n}`;
  }

  /**
   * A kept message the cluster's stream now holds as `seq`: only the sequence stays here (a few dozen bytes, not the
   * payload), and a re-pick reads the message back with `read`.
   */
  rest(reply: string, seq: number): void {
    const kept = this.#kept.get(Number(reply.slice(reply.lastIndexOf('.') + 1)));
    if (kept === undefined) return; // completed already, or re-picked
    kept.message = null;
    kept.stored = { seq };
  }

  /** A kept message the stream refused (never delivered anywhere): nothing to redeliver. */
  release(reply: string): void {
    this.#kept.delete(Number(reply.slice(reply.lastIndexOf('.') + 1)));
  }

  /**
   * A stored QoS 1/2 message (sequence `seq`) whose pick for a shared group named this node (issue 16 item 2): one
   * member here gets it, and until its QoS 1 delivery is completed its sequence is held (`holding`, said in the lease).
   * `reply` (another node picked this one and keeps the message): answered at that member's PUBACK (QoS 1) or at once
   * (QoS 0/2), or with 'none' when it did not reach a member here, and the keeper picks again. Without a keeper (this
   * node published it and picked itself), or with one known dead, a message that did not reach a member here is
   * picked again here: among the other members here and the other nodes' (as a single process does, broker.ts
   * `#deliverToMember`), or, with no member left here, among the other nodes'.
   */
  deliverPicked(gatewayId: string, group: string, filter: string, message: Message, reply: string | undefined, seq: number): void {
    this.#deliverHere(gatewayId, group, filter, message, reply, seq);
  }

  #deliverHere(gatewayId: string, group: string, filter: string, message: Message, reply: string | undefined, seq: number | undefined): void {
    const keeper = reply === undefined ? undefined : keeperOf(reply);
    const held = seq === undefined ? NOT_HELD : this.#hold(gatewayId, seq);
    let finished = false;
    const finish = (delivered: boolean, here: boolean): void => {
      if (finished) return;
      finished = true;
      held.release();
      if (reply !== undefined && !this.#dead.has(keeper!)) {
        this.#answer(reply, delivered ? '' : 'none');
        if (!delivered && seq !== undefined) this.#remember({ keeper: keeper!, gatewayId, group, filter, seq, at: Date.now() });
        return;
      }
      if (delivered) return;
      if (seq === undefined && reply === undefined) {
        // A QoS 0 message another node sent here: at most once, not sent on again (nodes with stale views of the
        // group would pass it back and forth).
        this.#counters(gatewayId).sharedUndeliverable++;
        return;
      }
      // After the ending session's subscriptions are retired: the next pick cannot fall on it again.
      queueMicrotask(() => this.#repickHere(gatewayId, group, filter, message, here ? '' : this.#instance));
    };
    const target = this.#target(gatewayId);
    if (target === undefined) {
      held.release(); // the engine stopped: its subscribers are gone with it (a clean stop's survivors re-pick)
      return;
    }
    if (!target.receiveShared(group, filter, message, (delivered) => finish(delivered, true))) finish(false, false);
  }

  /** Holds a delivery's sequence until `release`. */
  #hold(gatewayId: string, seq: number): { release(): void } {
    let seqs = this.#held.get(gatewayId);
    if (seqs === undefined) this.#held.set(gatewayId, (seqs = new Map<number, number>()));
    seqs.set(seq, (seqs.get(seq) ?? 0) + 1);
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        const n = seqs.get(seq)! - 1;
        if (n > 0) seqs.set(seq, n);
        else seqs.delete(seq);
        if (seqs.size === 0 && this.#held.get(gatewayId) === seqs) this.#held.delete(gatewayId);
      },
    };
  }

  /**
   * What this node is handing its members, for its lease: per gateway, the first stored sequence not yet handed here
   * (`positions`, the feeds') and the sequences whose QoS 1 delivery is not completed.
   */
  holding(positions: ReadonlyMap<string, number>): SharesHeld {
    const out: SharesHeld = {};
    let room = MAX_HELD_REPORTED_IN_ALL;
    const add = (gatewayId: string, from: number, seqs: Iterable<number>): void => {
      out[gatewayId] = heldOf(from, seqs, room);
      room -= out[gatewayId].held.length;
    };
    for (const [gatewayId, position] of positions) add(gatewayId, position + 1, this.#held.get(gatewayId)?.keys() ?? []);
    for (const [gatewayId, seqs] of this.#held) {
      if (!positions.has(gatewayId)) add(gatewayId, Infinity, seqs.keys());
    }
    return out;
  }

  /** A message this node was picked for and could not complete, picked again here, `avoid` left out. */
  #repickHere(gatewayId: string, group: string, filter: string, message: Message, avoid: string): void {
    const target = this.#target(gatewayId);
    const times = (this.#repicks.get(message) ?? 0) + 1;
    this.#repicks.set(message, times);
    if (times <= MAX_REPICKS && target !== undefined && target.reshare(group, filter, message, avoid)) {
      this.#counters(gatewayId).sharedRepicked++;
      return;
    }
    this.#counters(gatewayId).sharedUndeliverable++;
    this.#logger.warn({ gatewayId, group, topic: message.topic }, 'cluster_shared_undeliverable');
  }

  #answer(reply: string, text: string): void {
    try {
      this.#conn.nc.publish(reply, text);
    } catch (error) {
      this.#logger.debug({ err: error }, 'cluster_shared_answer_failed');
    }
  }

  #remember(unheard: Unheard): void {
    this.#forgetOld(unheard.at);
    this.#unheard.push(unheard);
    if (this.#unheard.length > MAX_KEPT) this.#unheard.shift();
  }

  #forgetOld(now: number): void {
    let old = 0;
    while (old < this.#unheard.length && now - this.#unheard[old]!.at > this.#rememberMs) old++;
    if (old > 0) this.#unheard = this.#unheard.slice(old);
  }

  /**
   * Node processes found dead: what was sent to them and not completed is picked again, and so is what this node
   * answered one of them it could not complete, lately enough for the answer to have gone unheard.
   */
  nodesDead(dead: ReadonlySet<string>): void {
    for (const [n, kept] of this.#kept) {
      if (!dead.has(kept.node)) continue;
      this.#kept.delete(n);
      this.#repick(kept);
    }
    this.#forgetOld(Date.now());
    const unheard = this.#unheard.filter((u) => dead.has(u.keeper));
    if (unheard.length === 0) return;
    this.#unheard = this.#unheard.filter((u) => !dead.has(u.keeper));
    for (const u of unheard) {
      this.#read(u.seq).then((message) => {
        if (message !== null) this.#repickHere(u.gatewayId, u.group, u.filter, message, u.keeper);
        else this.#lost(u.gatewayId, u.group, u.seq, undefined);
      }, (err: unknown) => this.#lost(u.gatewayId, u.group, u.seq, err));
    }
  }

  /** A message to pick again that the stream no longer holds (its limits removed it), or could not be read. */
  #lost(gatewayId: string, group: string, seq: number, err: unknown): void {
    this.#counters(gatewayId).sharedUndeliverable++;
    this.#logger.warn({ err, gatewayId, group, seq }, 'cluster_shared_undeliverable');
  }

  #repick(kept: Kept): void {
    if (kept.message !== null) {
      this.#repickMessage(kept, kept.message);
      return;
    }
    const { seq } = kept.stored!;
    this.#read(seq).then((message) => {
      if (message !== null) this.#repickMessage(kept, message);
      else this.#lost(kept.gatewayId, kept.group, seq, undefined); // its limits removed it before its member completed it
    }, (err: unknown) => this.#lost(kept.gatewayId, kept.group, seq, err));
  }

  #repickMessage(kept: Kept, message: Message): void {
    const counters = this.#counters(kept.gatewayId);
    const times = (this.#repicks.get(message) ?? 0) + 1;
    this.#repicks.set(message, times);
    const target = this.#target(kept.gatewayId);
    if (times > MAX_REPICKS || target === undefined || !target.reshare(kept.group, kept.filter, message, kept.node)) {
      counters.sharedUndeliverable++;
      this.#logger.warn({ gatewayId: kept.gatewayId, group: kept.group, topic: message.topic }, 'cluster_shared_undeliverable');
      return;
    }
    counters.sharedRepicked++;
  }

  #onMessage(err: Error | null, msg: Msg): void {
    if (err !== null) {
      this.#logger.error({ err }, 'cluster_shared_subscription_failed');
      return;
    }
    let parsed: { gatewayId: string; group: string; filter: string; message: Message };
    try {
      parsed = parseFrame(msg.data);
    } catch (error) {
      this.#logger.warn({ err: error }, 'cluster_shared_message_unreadable');
      return;
    }
    const { gatewayId, group, filter, message } = parsed;
    this.#counters(gatewayId).sharedReceived++;
    // A message sent over core NATS (a re-pick's): not in the stream by itself, so neither held nor remembered.
    this.#deliverHere(gatewayId, group, filter, message, msg.reply === undefined || msg.reply === '' ? undefined : msg.reply, undefined);
  }

  #onReply(err: Error | null, msg: Msg): void {
    if (err !== null) return;
    const n = Number(msg.subject.slice(msg.subject.lastIndexOf('.') + 1));
    const kept = this.#kept.get(n);
    if (kept === undefined) return;
    this.#kept.delete(n);
    if (msg.data.length > 0) this.#repick(kept); // no member left there
  }

  close(): void {
    this.#inbound.unsubscribe();
    this.#replies.unsubscribe();
    this.#kept.clear();
    this.#held.clear();
    this.#unheard = [];
  }
}

const NOT_HELD = { release(): void {} };

/** The node process keeping a message, from the reply subject it gave (`<prefix>.shared-done.<instance>.<n>`). */
export function keeperOf(reply: string): string {
  const end = reply.lastIndexOf('.');
  return reply.slice(reply.lastIndexOf('.', end - 1) + 1, end);
}

function subjectOf(conn: ClusterConnection, instance: string): string {
  return `${conn.prefix}.shared.${instance}`;
}

/** u16 length + gateway id, u16 length + group, u16 length + filter (UTF-8), then the message frame (wire.ts). */
function frameOf(gatewayId: string, group: string, filter: string, message: Message): Buffer {
  const parts = [gatewayId, group, filter].map((s) => Buffer.from(s, 'utf8'));
  const head = Buffer.allocUnsafe(parts.reduce((n, p) => n + 2 + p.length, 0));
  let at = 0;
  for (const p of parts) {
    head.writeUInt16BE(p.length, at);
    at += 2 + p.copy(head, at + 2);
  }
  return Buffer.concat([head, encodeMessage(message)]);
}

function parseFrame(bytes: Uint8Array): { gatewayId: string; group: string; filter: string; message: Message } {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = 0;
  const field = (): string => {
    if (at + 2 > b.length) throw new Error('shared message frame cut short');
    const length = b.readUInt16BE(at);
    if (at + 2 + length > b.length) throw new Error('shared message frame cut short');
    const s = b.subarray(at + 2, at + 2 + length).toString('utf8');
    at += 2 + length;
    return s;
  };
  const gatewayId = field();
  const group = field();
  const filter = field();
  return { gatewayId, group, filter, message: decodeMessage(b.subarray(at)) };
}

function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
