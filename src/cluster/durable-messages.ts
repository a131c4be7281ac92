/**
 * One gateway's QoS 1/2 messages on this node (issue 16 item 2), through the cluster's stream (message-stream.ts):
 * `store` writes a message published here and resolves once the stream holds it (the PUBACK / PUBREC waits for
 * it); the feed hands every stored message of the gateway, this node's own included, to the engine once, in the
 * stream's order, while the engine has subscriptions. A message published on a node that dies right after its
 * PUBACK is in the stream already, and the stream republishes it to every node that listens.
 *
 * Shared groups (item 5): every node receives every stored message, so the node it is published on picks each
 * matching group's member (router.ts `sharedPicks`: one of its own members, or another node holding members) and
 * writes the picks into a header of the stored message (`Gatehouse-Shared-Picks`, base64url of JSON
 * `[group, filter, node, reply?][]`); a node delivers to a group only when the pick names it [MQTT-4.8.2-2]. A pick
 * of another node is kept by the publishing node (SharedRelay, in memory, ≤ MAX_KEPT) with a reply subject in the
 * header: the picked node answers at its member's PUBACK, and if it dies first the message is picked again.
 */
import type { Msg, MsgHdrs, Subscription } from '@nats-io/transport-node';
import type { StoredMsg } from '@nats-io/jetstream';
import type { Message, SharedPick } from '../broker/index.ts';
import type { Logger } from '../core/logger.ts';
import type { ClusterConnection } from './connection.ts';
import type { StoredPick } from './dead-node-shares.ts';
import { isRefusal, type MessageStream } from './message-stream.ts';
import type { SharedCounters, SharedRelay } from './shared-groups.ts';
import { decodeMessage, encodeMessage } from './wire.ts';

/** A failed publish is tried again, backing off to this, for as long as the link is open. */
const RETRY_MAX_MS = 2_000;
/** Room left in NATS max_payload for the headers of a stored message (its id) and of its republished copy. */
const HEADER_ROOM = 512;
/** How often a replay whose session is full looks again. */
const REPLAY_WAIT_MS = 20;
/**
 * Stored messages read at once for all the replays of one gateway on this node (each ≤ NATS max_payload): a fleet
 * that reconnects here after its node's death, each session with a backlog, makes the node hold at most this many
 * reads in memory, not one per session.
 */
const REPLAY_READS_AT_ONCE = 8;
/**
 * Replay reads kept for the other replays of the gateway (by the sequence read after), and their bytes: sessions
 * resumed here together — a fleet whose node died — replay the same messages, and each is read from the stream once
 * rather than once per session (100 sessions with a 3 s backlog made 100 × 3,000 reads, 12–25 s to drain). Kept
 * while a replay runs and SHARED_READS_LINGER_MS after the last one ends: a fleet's reconnects are spread over seconds
 * (back-off, jitter, a loaded node), and a replay that starts just after others finished reads what they read (in
 * CI, 12 sessions resumed "at once" fell into two waves and read the backlog twice). An idle link holds none after.
 */
const SHARED_READS = 4_096;
const SHARED_READ_BYTES = 16 * 1024 * 1024;
const SHARED_READS_LINGER_MS = 10_000;
/** At most this often a copy below the feed's position makes it ask whether the stream was replaced. */
const STREAM_CHECK_MS = 1_000;
/** The header naming the node picked for each shared group the message matched. */
export const PICKS_HEADER = 'Gatehouse-Shared-Picks';


export interface DurableCounters {
  /** QoS 1/2 messages this node wrote to the cluster's stream (acknowledged to their publishers). */
  stored: number;
  /** QoS 1/2 messages the stream refused (over NATS max_payload, or its answer an error): never acknowledged as received. */
  storeRefused: number;
  /** Publishes to the stream tried again (no answer in time: NATS away). */
  storeRetried: number;
  /**
   * Stores the stream answered as duplicates of an earlier one under the same message id: a retry whose first try had
   * landed, or an inbound QoS 2 resend stored under the id its first store was made under (the node that made it died).
   */
  storeDuplicates: number;
  /** Stored messages handed to this node's engine (from the stream's republished copies, or read to fill a gap). */
  storedReceived: number;
  /** Gaps in a gateway's stored messages this node could not fill: the stream's limits had removed them. */
  storeDropped: number;
  /** Stored messages read back for sessions resumed here from another node's record (step b). */
  replayed: number;
  /** Reads of the stream those replays made (one serves every replay that reaches the same message meanwhile). */
  replayReads: number;
}

/** Every publish of this process has its own id (`Nats-Msg-Id`): a retry is the same id, a later message never is. */
let published = 0;

/**
 * A store's outcome: the stream sequence (0: not stored), and whether the stream had a store under its id made
 * before this one's first try (an inbound QoS 2 resend whose first store another node made), not a retry's.
 */
interface StoreOutcome {
  seq: number;
  earlier: boolean;
}

const NOT_STORED: StoreOutcome = { seq: 0, earlier: false };

export class DurableMessages {
  readonly #conn: ClusterConnection;
  readonly #stream: MessageStream;
  readonly #gatewayId: string;
  readonly #instance: string;
  readonly #counters: DurableCounters & SharedCounters;
  readonly #logger: Logger;
  readonly #relay: SharedRelay;
  readonly #endpoint: () => { receive(message: Message, seq?: number): void } | null;
  #subscription: Subscription | null = null;
  /**
   * The stream sequence of the last message of the gateway handed to the engine, or the gateway's last one when the
   * feed started: what the stream holds after it is owed to this node's subscribers.
   */
  #last = 0;
  /** The stream's identity (creation time) the feed's sequences belong to (MessageStream.identity). */
  #streamIdentity = '';
  /** When the feed last asked the stream's identity (#replaced). */
  #checkedAt = 0;
  /** The feed's start: the gateway's last sequence read, then the subscription in force (a SUBACK waits for it). */
  #starting: Promise<void> | undefined;
  /** Changes at every stop: a start that a stop overtook does not subscribe. */
  #generation = 0;
  /**
   * Republished copies waiting while a gap is read from the stream; 'check' after a reconnect (the stream may be new),
   * 'catch-up' once the feed subscribed (what was stored since it read the gateway's last sequence).
   */
  #queue: (Msg | 'check' | 'catch-up')[] = [];
  #draining = false;
  #closed = false;
  /** Replay reads in flight, and the replays waiting for one (REPLAY_READS_AT_ONCE). */
  #reading = 0;
  readonly #readWaiters: (() => void)[] = [];
  /** The replays' reads of "the gateway's next message after seq", in flight or answered (SHARED_READS). */
  readonly #sharedNext = new Map<number, { read: Promise<StoredMsg | null>; bytes: number }>();
  #sharedBytes = 0;
  /** Replays running now (their shared reads are dropped SHARED_READS_LINGER_MS after the last ends). */
  #replaying = 0;
  #dropSharedTimer: NodeJS.Timeout | undefined;

  constructor(conn: ClusterConnection, stream: MessageStream, gatewayId: string, instance: string, counters: DurableCounters & SharedCounters,
    logger: Logger, relay: SharedRelay, endpoint: () => { receive(message: Message, seq?: number): void } | null) {
    this.#conn = conn;
    this.#stream = stream;
    this.#gatewayId = gatewayId;
    this.#instance = instance;
    this.#counters = counters;
    this.#logger = logger;
    this.#relay = relay;
    this.#endpoint = endpoint;
  }

  /** A new stream message id of this process, for a store to be made under it later (`store`'s `storeId`). */
  nextStoreId(): string {
    return `${this.#instance}.${++published}`;
  }

  /**
   * Resolves true once the stream holds the message, false when it refused it (or the link closed first). `storeId`:
   * the stream message id to store it under (an inbound QoS 2 message's, named in its session's record first); the
   * stream drops a second store under one id within its duplicate window and answers with the first one's sequence.
   */
  store(message: Message, picks: readonly SharedPick[], storeId?: string): Promise<boolean> {
    const frame = encodeMessage(message);
    let headers: MsgHdrs | undefined;
    let headerBytes = 0;
    const replies: string[] = [];
    if (picks.length > 0) {
      const stored: StoredPick[] = picks.map((p) => [p.group, p.filter, p.node ?? this.#instance]);
      // A pick of another node is kept here until that node's member completes it (picked again if that node dies
      // first); its reply subject goes into the header, which is written once, before the stream's ack.
      for (const pick of stored) {
        if (pick[2] === this.#instance) continue;
        const reply = this.#relay.keep(this.#gatewayId, pick[2], pick[0], pick[1], message);
        pick.push(reply);
        replies.push(reply);
      }
      const value = Buffer.from(JSON.stringify(stored)).toString('base64url');
      headers = this.#conn.client.headers();
      headers.set(PICKS_HEADER, value);
      headerBytes = PICKS_HEADER.length + 4 + value.length;
    }
    const maxPayload = this.#conn.nc.info?.max_payload;
    const storing = maxPayload !== undefined && frame.length + headerBytes + HEADER_ROOM > maxPayload
      ? this.#tooLarge(frame.length, maxPayload)
      : this.#storeUntilDone(frame, storeId ?? this.nextStoreId(), headers);
    if (replies.length === 0) return storing.then((ack) => ack.seq > 0);
    this.#counters.sharedSent += replies.length;
    return storing.then((ack) => {
      for (const reply of replies) {
        // Stored: what is kept for a re-pick is the sequence. Refused (or the link closed first), or an earlier store
        // under the same id (another node's, with its picks in the header): delivered nowhere under these.
        if (ack.seq > 0 && !ack.earlier) this.#relay.rest(reply, ack.seq);
        else this.#relay.release(reply);
      }
      return ack.seq > 0;
    });
  }

  #tooLarge(bytes: number, maxPayload: number): Promise<StoreOutcome> {
    this.#counters.storeRefused++;
    this.#logger.warn({ bytes, maxPayload }, 'cluster_message_too_large');
    return Promise.resolve(NOT_STORED);
  }

  /**
   * The stream sequence once stored; 0 when refused, or cancelled (the link closed first). The stream's publisher
   * tries again for as long as it takes, in the order of the calls (message-stream.ts): the call is made here
   * before anything is awaited, so the order of `store` calls is the order the stream stores them in.
   */
  async #storeUntilDone(frame: Buffer, msgId: string, headers: MsgHdrs | undefined): Promise<StoreOutcome> {
    if (this.#closed) return NOT_STORED;
    try {
      let retried = false;
      const ack = await this.#stream.publish(this.#gatewayId, frame, msgId, headers, () => {
        retried = true;
        this.#counters.storeRetried++;
      });
      this.#counters.stored++;
      if (ack.duplicate) this.#counters.storeDuplicates++;
      return { seq: ack.seq, earlier: ack.duplicate && !retried };
    } catch (err) {
      if (isRefusal(err)) {
        this.#counters.storeRefused++;
        this.#logger.warn({ err }, 'cluster_message_refused');
      }
      return NOT_STORED;
    }
  }


  /**
   * Starts handing the gateway's stored messages to the engine: every one stored after the gateway's last when this
   * is called. Resolves once the subscription is in force (a SUBACK waits for it). The last sequence is read BEFORE
   * subscribing (one read after could cover copies not yet arrived, which would then be skipped as handed), so a
   * message stored in between sent its copy to no subscription: once subscribed, the feed reads the gateway's last
   * sequence again and reads back what lies between. Before, only the gateway's next copy did — a resumed session's
   * last message before a quiet spell (the client's own, published right after its CONNACK) waited for the next one.
   */
  start(): Promise<void> | undefined {
    if (this.#closed || this.#subscription !== null) return this.#starting;
    if (this.#starting !== undefined) return this.#starting;
    const generation = this.#generation;
    const wanted = (): boolean => generation === this.#generation && !this.#closed;
    const starting: Promise<void> = (async () => {
      const identity = await this.#retrying(() => this.#stream.identity(), wanted);
      const origin = await this.#retrying(() => this.#stream.last(this.#gatewayId), wanted);
      if (!wanted()) return;
      this.#streamIdentity = identity;
      this.#last = origin;
      this.#subscription = this.#conn.nc.subscribe(this.#stream.storedSubject(this.#gatewayId), {
        callback: (err, msg) => {
          if (err !== null) {
            this.#logger.error({ err }, 'cluster_stored_subscription_failed');
            return;
          }
          this.#queue.push(msg);
          void this.#drain();
        },
      });
      await this.#conn.nc.flush();
      if (!wanted()) return; // stopped meanwhile: its queue is gone, and the next start catches up itself
      this.#queue.push('catch-up');
      void this.#drain();
    })().catch((err: unknown) => {
      if (wanted()) this.#logger.error({ err }, 'cluster_stored_feed_start_failed');
    }).finally(() => {
      if (this.#starting === starting) this.#starting = undefined;
    });
    this.#starting = starting;
    return starting;
  }

  /** The last stored message handed to the engine; undefined while the feed does not run (or is starting). */
  position(): number | undefined {
    return this.#subscription === null ? undefined : this.#last;
  }

  /** The feed's start while it is starting (undefined: it runs, or does not). */
  ready(): Promise<void> | undefined {
    return this.#starting;
  }

  /**
   * Replays the gateway's stored messages after `from` for one session resumed here (issue 16 item 2, step b), in
   * order, one read at a time, and at most REPLAY_READS_AT_ONCE reads for all the gateway's replays; waits while
   * `full()` (the session holds as much queued as a replay may give it: messages are never dropped for a replay's
   * haste). Once it reached the feed's position — checked in the turn the feed hands its next message in — `caughtUp`
   * is called: from then the feed's messages reach the session. No consumer: STREAM.MSG.GET next_by_subj, as for a
   * gap. `full()` null: the session is gone here, the replay stops. `through`: a sequence the replay reaches even
   * while the feed does not run here (a session that moved with queued messages and no subscription gives this node
   * no interest in the gateway, so no feed to catch up with).
   */
  async replay(from: number, skip: ReadonlySet<number>, hand: (message: Message, seq: number) => void, at: (seq: number) => void,
    caughtUp: () => void, full: () => boolean | null, through = 0): Promise<void> {
    this.#replaying++;
    clearTimeout(this.#dropSharedTimer);
    try {
      await this.#replayFrom(from, skip, hand, at, caughtUp, full, through);
    } finally {
      // The shared reads serve replays running together, or within moments: an idle link keeps no backlog.
      if (--this.#replaying === 0) {
        if (this.#closed) {
          this.#dropSharedReads(); // a replay that outlived close() keeps nothing
        } else {
          this.#dropSharedTimer = setTimeout(() => this.#dropSharedReads(), SHARED_READS_LINGER_MS);
          this.#dropSharedTimer.unref();
        }
      }
    }
  }

  async #replayFrom(from: number, skip: ReadonlySet<number>, hand: (message: Message, seq: number) => void, at: (seq: number) => void,
    caughtUp: () => void, full: () => boolean | null, through: number): Promise<void> {
    await this.#starting;
    let pos = from;
    const wanted = (): boolean => !this.#closed && full() !== null;
    const { first, last } = await this.#replayRead(() => this.#stream.bounds(), wanted);
    if (from > last) {
      // A floor past the stream's end belongs to a stream replaced since (deleted, or NATS back without its store):
      // every message of this one is after it.
      this.#logger.warn({ floor: from, last }, 'cluster_replay_floor_past_stream');
      pos = first - 1;
    } else if (first > from + 1) {
      // A floor below the stream's first message: its limits (max_age, max_bytes) removed part of the backlog.
      this.#counters.storeDropped++;
      this.#logger.warn({ floor: from, first }, 'cluster_replay_messages_dropped');
    }
    for (;;) {
      if (!wanted()) return;
      const target = Math.max(this.#subscription === null ? 0 : this.#last, through);
      if (pos >= target) {
        caughtUp();
        return;
      }
      if (full() === true) {
        await pause(REPLAY_WAIT_MS);
        continue;
      }
      const next = await this.#nextAfter(pos);
      if (next === null || next.seq > target) {
        pos = target; // none of the gateway's between: the check above decides again (the feed may have moved on)
        continue;
      }
      pos = next.seq;
      at(pos);
      if (skip.has(pos)) continue;
      let message: Message;
      try {
        message = decodeMessage(next.data);
      } catch (err) {
        this.#logger.warn({ err, seq: pos }, 'cluster_stored_message_unreadable');
        continue;
      }
      this.#counters.replayed++;
      hand(message, pos);
    }
  }

  /**
   * The stored message `seq` of this gateway, for a resumed session's flow in flight (null: the stream no longer has
   * it); under the same bound as the replays' reads, tried once (a CONNECT waits for it: a failure throws).
   */
  async read(seq: number): Promise<Message | null> {
    const stored = await this.#replayRead(() => this.#stream.get(seq), () => false);
    if (stored === null || stored.subject !== this.#stream.subject(this.#gatewayId)) return null;
    try {
      return decodeMessage(stored.data);
    } catch (err) {
      this.#logger.warn({ err, seq }, 'cluster_stored_message_unreadable');
      return null;
    }
  }

  /**
   * The gateway's next stored message after `after`, for a replay: read once for every replay that asks meanwhile (a
   * message's sequence never changes and later ones come after it, so an answer stays true; "none yet" is not kept).
   * Tried until the link closes, whichever replay asked first: the others wait on the same read.
   */
  #nextAfter(after: number): Promise<StoredMsg | null> {
    const known = this.#sharedNext.get(after);
    if (known !== undefined) return known.read;
    this.#counters.replayReads++;
    const entry = { read: this.#replayRead(() => this.#stream.next(this.#gatewayId, after), () => !this.#closed), bytes: 0 };
    this.#sharedNext.set(after, entry);
    const forget = (): void => {
      if (this.#sharedNext.get(after) === entry) this.#sharedNext.delete(after);
    };
    entry.read.then((next) => {
      if (next === null || this.#sharedNext.get(after) !== entry) return forget();
      entry.bytes = next.data.length;
      this.#sharedBytes += entry.bytes;
      this.#trimSharedReads();
    }, forget);
    this.#trimSharedReads();
    return entry.read;
  }

  #dropSharedReads(): void {
    clearTimeout(this.#dropSharedTimer);
    this.#sharedNext.clear();
    this.#sharedBytes = 0;
  }

  /** The oldest kept reads go first, down to SHARED_READS and SHARED_READ_BYTES. */
  #trimSharedReads(): void {
    for (const [after, entry] of this.#sharedNext) {
      if (this.#sharedNext.size <= SHARED_READS && this.#sharedBytes <= SHARED_READ_BYTES) return;
      this.#sharedNext.delete(after);
      this.#sharedBytes -= entry.bytes;
    }
  }

  /** One replay read, once fewer than REPLAY_READS_AT_ONCE are in flight for this gateway. */
  async #replayRead<T>(read: () => Promise<T>, wanted: () => boolean): Promise<T> {
    while (this.#reading >= REPLAY_READS_AT_ONCE) await new Promise<void>((resolve) => this.#readWaiters.push(resolve));
    this.#reading++;
    try {
      return await this.#retrying(read, wanted);
    } finally {
      this.#reading--;
      this.#readWaiters.shift()?.();
    }
  }

  /** No subscriptions here any more: what is stored from now on is not for this node. */
  stop(): void {
    this.#generation++;
    this.#starting = undefined;
    this.#subscription?.unsubscribe();
    this.#subscription = null;
    this.#queue = [];
    this.#last = 0;
  }

  /** Back from a NATS outage: the copies republished meanwhile were lost; read them from the stream. */
  reconnected(): void {
    if (this.#subscription === null) return;
    this.#queue.push('check');
    void this.#drain();
  }

  close(): void {
    this.#closed = true;
    this.#dropSharedReads();
    this.#stream.cancel(this.#gatewayId); // its stores not yet done end now (resolving 0), not once NATS is back
    this.stop();
  }

  async #drain(): Promise<void> {
    if (this.#draining) return;
    this.#draining = true;
    try {
      while (this.#queue.length > 0 && this.#subscription !== null) {
        const item = this.#queue.shift()!;
        if (typeof item === 'string') {
          if (item === 'check') await this.#checkStream(true);
          await this.#fill(await this.#retrying(() => this.#stream.last(this.#gatewayId), () => this.#subscription !== null));
          continue;
        }
        const seq = Number(item.headers?.get('Nats-Sequence'));
        const previous = Number(item.headers?.get('Nats-Last-Sequence'));
        if (!(seq > 0) || !(previous >= 0)) {
          this.#logger.warn({ subject: item.subject }, 'cluster_stored_copy_unsequenced');
          continue;
        }
        // Read from the stream already, while a gap was filled; or the first messages of a stream made anew (deleted
        // by an operator, or NATS back without its store), numbered from 1 again.
        if (seq <= this.#last && !(await this.#replaced(previous === 0))) continue;
        // The gateway's message before this one never reached this node: read what is missing, in order.
        if (previous > this.#last) await this.#fill(previous);
        if (this.#subscription === null) return;
        this.#hand(seq, item.data, item.headers);
      }
    } catch (err) {
      // Only a read given up because the feed stopped (the engine's subscriptions went, or the link closed).
      if (this.#subscription !== null) this.#logger.error({ err }, 'cluster_stored_feed_failed');
    } finally {
      this.#draining = false;
    }
  }

  /**
   * Whether the stream is still the one the feed's position belongs to. A new one (a NATS server back without its
   * store, after a reconnect: `remake`, which makes it if nobody did yet; or the stream deleted by hand) numbers its
   * messages from 1 again, and every one at or below the last sequence handed here would be skipped as handed
   * (acknowledged, never delivered here until the new stream passed the old position). So the feed starts over from
   * the new stream's beginning; what it stored before this check is read back in order by the fill that follows.
   */
  async #checkStream(remake: boolean): Promise<boolean> {
    this.#checkedAt = Date.now();
    const identity = await this.#retrying(() => this.#stream.identity(remake), () => this.#subscription !== null);
    if (this.#subscription === null || identity === this.#streamIdentity) return false;
    this.#logger.warn({ last: this.#last, was: this.#streamIdentity, now: identity }, 'cluster_stream_replaced');
    this.#streamIdentity = identity;
    this.#last = 0;
    return true;
  }

  /**
   * A copy at or below the last sequence handed: whether the stream was replaced (then the feed starts over). Asked
   * at most once a second (copies queued behind a gap's fill come in bursts), except for a copy that names no
   * previous message of the gateway, which only a new stream sends once the feed has handed any.
   */
  async #replaced(first: boolean): Promise<boolean> {
    if (!first && Date.now() - this.#checkedAt < STREAM_CHECK_MS) return false;
    return this.#checkStream(false);
  }

  /** Reads the gateway's stored messages after the last one handed, up to `upTo`, and hands them over. */
  async #fill(upTo: number): Promise<void> {
    while (this.#last < upTo && this.#subscription !== null) {
      const after = this.#last;
      const next = await this.#retrying(() => this.#stream.next(this.#gatewayId, after), () => this.#subscription !== null);
      if (this.#subscription === null || this.#last !== after) return;
      if (next === null || next.seq > upTo) {
        // The stream's limits removed the gateway's message `upTo` (at least) before this node read it.
        this.#counters.storeDropped++;
        this.#logger.warn({ after, upTo }, 'cluster_stored_messages_dropped');
        this.#last = upTo;
        return;
      }
      this.#hand(next.seq, next.data, next.header);
    }
  }

  #hand(seq: number, data: Uint8Array, headers: MsgHdrs | undefined): void {
    this.#last = seq;
    this.#counters.storedReceived++;
    let message: Message;
    let picks: StoredPick[] = [];
    try {
      message = decodeMessage(data);
      picks = picksOf(headers);
    } catch (err) {
      this.#logger.warn({ err, seq }, 'cluster_stored_message_unreadable');
      return;
    }
    // Non-shared subscribers here; shared groups are skipped there [MQTT-4.8.2-2] and get it below when picked here.
    this.#endpoint()?.receive(message, seq);
    for (const [group, filter, node, reply] of picks) {
      if (node === this.#instance) this.#relay.deliverPicked(this.#gatewayId, group, filter, message, reply, seq);
    }
  }

  /** A read from the stream, tried again while NATS is away, as long as it is `wanted`. */
  async #retrying<T>(read: () => Promise<T>, wanted: () => boolean): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await read();
      } catch (err) {
        if (!wanted()) throw err;
        this.#logger.warn({ err, attempt }, 'cluster_stored_read_failed');
        await pause(Math.min(100 * 2 ** attempt, RETRY_MAX_MS));
      }
    }
  }
}

/** The picks a stored message's header names (none without the header); throws on a header that is not ours. */
export function picksOf(headers: MsgHdrs | undefined): StoredPick[] {
  const value = headers?.get(PICKS_HEADER);
  return value === undefined || value === '' ? [] : parsePicks(value);
}

function parsePicks(value: string): StoredPick[] {
  const picks: unknown = JSON.parse(Buffer.from(value, 'base64url').toString('utf8'));
  if (!Array.isArray(picks) || !picks.every((p) => Array.isArray(p) && p.length >= 3 && p.length <= 4
    && p.every((field) => typeof field === 'string'))) throw new Error('shared picks header unreadable');
  return picks as StoredPick[];
}

function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
