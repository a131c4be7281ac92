/**
 * The cluster's QoS 1/2 messages (issue 16 item 2): one JetStream stream per installation
 * (`gatehouse-messages-<installation>`), one subject per gateway (`<prefix>.qos.<gatewayId>`), each message the
 * frame of wire.ts. A node publishes a QoS 1/2 message here and acknowledges it (PUBACK / PUBREC) only once the
 * stream's ack came: from then on it is on disk in JetStream, whatever happens to the node.
 *
 * Delivery needs no consumer at all: the stream republishes every message it stored (RePublish, nats-server 2.9)
 * on a core subject of its gateway (`<prefix>.stored.<gatewayId>`), with its stream sequence and the sequence of
 * the gateway's previous message in headers (`Nats-Sequence`, `Nats-Last-Sequence`). A node listens to that
 * subject while its engine for the gateway has subscriptions, as it listens to the QoS 0 route, so the server
 * holds no state per node, per subscription or per device (a consumer per subscription is what makes nats-server's
 * own MQTT fall over at a few thousand clients). The sequences chain a gateway's messages: a node that sees a
 * message whose previous one it did not get (it was cut off from NATS a moment) reads the missing ones from the
 * stream by subject before it goes on, so each node hands each stored message to its engine once, in the stream's
 * order. A message the stream's limits already removed cannot be read: counted (`storeDropped`), logged, skipped.
 *
 * Limits: bytes (`max_bytes`, the oldest go first) and age; `Nats-Msg-Id` (the publishing process and a counter)
 * makes a retried publish a duplicate the stream drops within its window.
 */
import { randomUUID } from 'node:crypto';
import type { DeliverPolicy, JetStreamClient, JetStreamManager, JsMsg, PubAck, StoredMsg } from '@nats-io/jetstream';
import type { Msg, MsgHdrs, Subscription } from '@nats-io/transport-node';
import type { Logger } from '../core/logger.ts';
import type { ClusterConnection } from './connection.ts';

/** The stream's limits: the oldest messages go first once it holds this many bytes, or once they are this old. */
export interface MessageStreamLimits {
  maxBytes: number;
  maxAgeMs: number;
}

export const DEFAULT_MESSAGE_STREAM_LIMITS: MessageStreamLimits = { maxBytes: 1024 ** 3, maxAgeMs: 7 * 24 * 3600_000 };

/** A retried publish within this window is recognised by its message id and stored once. */
const DUPLICATE_WINDOW_MS = 120_000;
/** Messages read per request by `idsSince` and `headersFrom` (headers only). */
const ID_READ_BATCH = 1_000;
/** How long one publish waits for the stream's ack before it is tried again. */
const PUBLISH_TIMEOUT_MS = 5_000;
/** After a failure the oldest unanswered publish is tried again, backing off to this. */
const RETRY_MAX_MS = 2_000;

const NS_PER_MS = 1_000_000;

/** The stream answered a publish with an error (too large, over a limit): trying again cannot help. */
export class StreamRefusal extends Error {
  readonly code: number | undefined;

  constructor(description: string, code: number | undefined) {
    super(`the stream refused the message: ${description}`);
    this.code = code;
  }
}

/**
 * The stream cannot be made: the NATS server has no room for its size (JetStream reserves max_bytes in full). A
 * setting to change, not a moment to wait out: the publishes waiting are refused (0x97) with this message, not held.
 */
export class NoRoomForStream extends StreamRefusal {
  constructor(message: string) {
    super(message, undefined);
    this.message = message;
  }
}

/** A publish cancelled before the stream answered it (its gateway stopped here, or the node stops). */
export class StoreCancelled extends Error {
  constructor() {
    super('the publish to the stream was cancelled');
  }
}

/** One publish of the ordered publisher, from its call until the stream's answer (or its cancel). */
interface Pending {
  readonly subject: string;
  readonly frame: Uint8Array;
  readonly headers: MsgHdrs;
  readonly resolve: (ack: PubAck) => void;
  readonly reject: (err: Error) => void;
  readonly onRetry: (() => void) | undefined;
  /** When it was last handed to NATS; 0: not yet, or not since a failure. */
  sentAt: number;
  sends: number;
}

/**
 * This node's publishes to the stream, in order, on one reply subscription: a PubAck comes back on `<inbox>.<n>`.
 *
 * Order: the stream must store a publisher's messages in the order they came [MQTT-4.6.0-6] — the nodes deliver
 * them in the stream's order. On one NATS connection they arrive and are stored in the order sent, so while all
 * goes well every publish goes out at once, unanswered ones pipelined. Once one fails (no answer in time, NATS
 * gone, no stream to answer), none of those still unanswered may be stored before it: publishing stops, the oldest
 * unanswered one is sent again alone until the stream answers it, and only then the others, in their order. Each
 * carries its `Nats-Msg-Id`, so one the stream had stored before the failure is answered as its duplicate (same
 * sequence) and stored once. Nothing is handed to the NATS client between two connections (its buffer would send it
 * on the next one ahead of the retried ones). Retrying each message on its own, as before, let a later message's
 * retry land before an earlier one's after a NATS restart (test/cluster/nats-restart).
 *
 * Cost: nats.js's `js.publish` is a request per message (request, timer and deferred objects, and an Error built at
 * each answer to cancel what was already resolved); in a profile of a node publishing QoS 1 under load its share of
 * the samples was second only to the socket writes. Here a publish is a map entry, and unanswered ones are swept
 * once a quarter of the timeout (no timer each).
 */
class StreamPublisher {
  readonly #conn: ClusterConnection;
  readonly #inbox: string;
  readonly #subscription: Subscription;
  /** In publish order. */
  readonly #pending = new Map<number, Pending>();
  readonly #sweeper: NodeJS.Timeout;
  readonly #stopWatching: () => void;
  /** The stream made sure of (again, after a failure: NATS may have been replaced and its store wiped). */
  readonly #ensure: (again: boolean) => Promise<unknown>;
  #next = 0;
  /** Until the stream has been made sure of, and after a failure: only the oldest publish is sent, alone. */
  #recovering = true;
  /** That one, once sent. */
  #probe: number | null = null;
  #attempt = 0;
  #retryTimer: NodeJS.Timeout | null = null;
  #ensuredOnce = false;
  #closed = false;
  readonly #logger: Logger;
  /** The current failure's start, for its one log line at the end (0: none), and whether it was warned about. */
  #failedSince = 0;
  #warned = false;
  #retriedInEpisode = 0;
  /** Failed tries to make sure of the stream in a row: the first is logged with its error. */
  #ensureFailures = 0;

  constructor(conn: ClusterConnection, timeoutMs: number, ensure: (again: boolean) => Promise<unknown>, logger: Logger) {
    this.#conn = conn;
    this.#ensure = ensure;
    this.#logger = logger;
    this.#inbox = `_INBOX.gatehouse-stream.${conn.bucketSuffix}.${randomUUID().replaceAll('-', '')}`;
    this.#subscription = conn.nc.subscribe(`${this.#inbox}.*`, { callback: (err, msg) => (err === null ? this.#answer(msg) : undefined) });
    this.#sweeper = setInterval(() => {
      const due = Date.now() - timeoutMs;
      for (const entry of this.#pending.values()) {
        if (entry.sentAt !== 0 && entry.sentAt <= due) return this.#fail();
      }
    }, Math.max(10, timeoutMs / 4));
    this.#sweeper.unref();
    // Whatever was sent on the connection that went is unanswered for good: the failure is known now, not in 5 s.
    this.#stopWatching = conn.onState((state) => {
      if (state !== 'connected') return this.#fail();
      // Back: the next try now, not at the end of its back-off.
      if (this.#recovering && this.#probe === null && this.#retryTimer !== null) {
        clearTimeout(this.#retryTimer);
        this.#retryTimer = null;
        this.#schedule(0);
      }
    });
    this.#schedule(0);
  }

  /** Resolves with the stream's ack once stored; rejects when the stream refused it or it was cancelled. */
  publish(subject: string, frame: Uint8Array, msgId: string, headers: MsgHdrs, onRetry?: () => void): Promise<PubAck> {
    if (this.#closed) return Promise.reject(new StoreCancelled());
    headers.set('Nats-Msg-Id', msgId);
    const n = ++this.#next;
    return new Promise<PubAck>((resolve, reject) => {
      const entry: Pending = { subject, frame, headers, resolve, reject, onRetry, sentAt: 0, sends: 0 };
      this.#pending.set(n, entry);
      if (!this.#recovering) this.#send(n, entry);
    });
  }

  /** Cancels the unanswered publishes on `subject` (its gateway stopped here): they are not sent again. */
  cancel(subject: string): void {
    this.#cancelWhere((entry) => entry.subject === subject);
  }

  /** Cancels every unanswered publish (the node was cut off past its lease: the cluster has written it off). */
  cancelAll(): void {
    this.#cancelWhere(() => true);
  }

  /** One pass over the unanswered publishes, however many gateways they belong to. */
  #cancelWhere(which: (entry: Pending) => boolean): void {
    for (const [n, entry] of this.#pending) {
      if (!which(entry)) continue;
      this.#pending.delete(n);
      entry.reject(new StoreCancelled());
      if (this.#probe === n) {
        this.#probe = null;
        this.#schedule(0);
      }
    }
  }

  /** Hands one publish to NATS; false (and the failure begun) when it cannot go out on the current connection. */
  #send(n: number, entry: Pending): boolean {
    if (!this.#conn.writable) {
      this.#fail();
      return false;
    }
    if (entry.sends++ > 0) {
      this.#retriedInEpisode++;
      entry.onRetry?.();
    }
    entry.sentAt = Date.now();
    try {
      this.#conn.nc.publish(entry.subject, entry.frame, { reply: `${this.#inbox}.${n}`, headers: entry.headers });
      return true;
    } catch {
      this.#fail();
      return false;
    }
  }

  #answer(msg: Msg): void {
    const n = Number(msg.subject.slice(this.#inbox.length + 1));
    const entry = this.#pending.get(n);
    if (entry === undefined) return;
    // No responders (the stream is not there, or not yet after a restart): as unanswered. A late answer of an
    // earlier send (sentAt 0: failed since) says nothing of the send now pending.
    if (msg.data.length === 0 && msg.headers?.code === 503) {
      if (entry.sentAt !== 0) this.#fail();
      return;
    }
    let answer: { error?: { code?: number; err_code?: number; description?: string }; stream?: string; seq?: number; duplicate?: boolean };
    try {
      answer = msg.json();
    } catch {
      if (entry.sentAt !== 0) this.#fail();
      return;
    }
    if (answer.error !== undefined) {
      this.#settle(n);
      entry.reject(new StreamRefusal(answer.error.description ?? 'error', answer.error.err_code));
    } else if (typeof answer.stream !== 'string' || answer.stream === '' || typeof answer.seq !== 'number') {
      if (entry.sentAt !== 0) this.#fail();
    } else {
      // Stored, whichever send this answers: the stream keeps one copy per message id.
      this.#settle(n);
      entry.resolve({ stream: answer.stream, seq: answer.seq, duplicate: answer.duplicate ?? false, domain: '' });
    }
  }

  /** The stream answered publish `n` for good; the one a recovery waited for lets the others go, in order. */
  #settle(n: number): void {
    this.#pending.delete(n);
    if (this.#probe !== n) return;
    this.#probe = null;
    this.#recovered();
    for (const [m, entry] of this.#pending) {
      if (entry.sentAt === 0 && !this.#send(m, entry)) return;
    }
  }

  #recovered(): void {
    this.#recovering = false;
    this.#attempt = 0;
    if (this.#warned) this.#logger.info({ afterMs: Date.now() - this.#failedSince, retried: this.#retriedInEpisode, waiting: this.#pending.size }, 'cluster_stream_publishing_again');
    this.#warned = false;
    this.#failedSince = 0;
    this.#retriedInEpisode = 0;
  }

  /** A publish failed: every unanswered one is sent again, the oldest first and alone. */
  #fail(): void {
    if (this.#closed) return;
    for (const entry of this.#pending.values()) entry.sentAt = 0;
    this.#probe = null;
    if (!this.#recovering) {
      this.#recovering = true;
      this.#attempt = 0;
    }
    if (this.#failedSince === 0) this.#failedSince = Date.now();
    // Once per failure, and only when it holds something back (a NATS disconnect is logged by the connection).
    if (!this.#warned && this.#pending.size > 0) {
      this.#warned = true;
      this.#logger.warn({ waiting: this.#pending.size, connection: this.#conn.state }, 'cluster_stream_publishing_held');
    }
    this.#schedule(Math.min(100 * 2 ** this.#attempt++, RETRY_MAX_MS));
  }

  #schedule(delayMs: number): void {
    if (this.#retryTimer !== null || this.#closed) return;
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = null;
      void this.#retry();
    }, delayMs);
    this.#retryTimer.unref();
  }

  async #retry(): Promise<void> {
    if (!this.#recovering || this.#probe !== null) return;
    const again = Math.min(100 * 2 ** this.#attempt++, RETRY_MAX_MS);
    if (!this.#conn.writable) return this.#schedule(again);
    try {
      await this.#ensure(this.#ensuredOnce);
      this.#ensuredOnce = true;
      this.#ensureFailures = 0;
    } catch (error) {
      if (this.#failedSince === 0) this.#failedSince = Date.now();
      if (this.#ensureFailures++ === 0) this.#logger.warn({ err: error }, 'cluster_stream_unavailable');
      // No room for the stream: what waits now is refused at once (0x97, the log naming the setting), and the
      // next try, for what comes later, in a while: the stream is made by itself once the room is there.
      if (error instanceof NoRoomForStream) {
        const refused = [...this.#pending.values()];
        this.#pending.clear();
        for (const entry of refused) entry.reject(error);
      }
      return this.#schedule(again);
    }
    // A failure meanwhile scheduled the next try itself.
    if (this.#closed || !this.#recovering || this.#probe !== null || this.#retryTimer !== null) return;
    const head = this.#pending.entries().next();
    if (head.done === true) {
      this.#recovered();
      return;
    }
    const [n, entry] = head.value;
    if (this.#send(n, entry)) this.#probe = n;
  }

  close(): void {
    this.#closed = true;
    clearInterval(this.#sweeper);
    if (this.#retryTimer !== null) clearTimeout(this.#retryTimer);
    this.#stopWatching();
    if (!this.#subscription.isClosed()) this.#subscription.unsubscribe();
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    for (const entry of pending) entry.reject(new StoreCancelled());
  }
}

export class MessageStream {
  readonly name: string;
  readonly #conn: ClusterConnection;
  readonly #limits: MessageStreamLimits;
  #opening: Promise<{ js: JetStreamClient; jsm: JetStreamManager }> | null = null;
  #publisher: StreamPublisher | null = null;

  readonly #logger: Logger;

  constructor(conn: ClusterConnection, limits: MessageStreamLimits, logger: Logger) {
    this.#conn = conn;
    this.#limits = limits;
    this.#logger = logger;
    this.name = `gatehouse-messages-${conn.bucketSuffix}`;
  }

  /** The subject a gateway's QoS 1/2 messages are stored under. */
  subject(gatewayId: string): string {
    return `${this.#conn.prefix}.qos.${gatewayId}`;
  }

  /** The core subject the stream republishes a gateway's stored messages on. */
  storedSubject(gatewayId: string): string {
    return `${this.#conn.prefix}.stored.${gatewayId}`;
  }

  /** The stream, created (or brought to this version's configuration) on first use, and again after a failure. */
  #open(): Promise<{ js: JetStreamClient; jsm: JetStreamManager }> {
    if (this.#opening === null) {
      const opening = this.#ensure();
      opening.catch(() => {
        if (this.#opening === opening) this.#opening = null;
      });
      this.#opening = opening;
    }
    return this.#opening;
  }

  async #ensure(): Promise<{ js: JetStreamClient; jsm: JetStreamManager }> {
    const { client, nc, prefix } = this.#conn;
    const jsm = await client.jetstreamManager(nc, { timeout: PUBLISH_TIMEOUT_MS });
    const config = {
      name: this.name,
      subjects: [`${prefix}.qos.>`],
      retention: 'limits' as const,
      storage: 'file' as const,
      discard: 'old' as const,
      max_bytes: this.#limits.maxBytes,
      max_age: this.#limits.maxAgeMs * NS_PER_MS,
      duplicate_window: DUPLICATE_WINDOW_MS * NS_PER_MS,
      republish: { src: `${prefix}.qos.>`, dest: `${prefix}.stored.>` },
    };
    try {
      try {
        await jsm.streams.info(this.name);
        await jsm.streams.update(this.name, config); // another version's limits: this one's
      } catch (error) {
        if (!isNotFound(error)) throw error;
        await jsm.streams.add(config);
      }
    } catch (error) {
      // JetStream reserves max_bytes in full on its storage when the stream is made: say which setting to change.
      if (error instanceof Error && /insufficient (storage )?resources/i.test(error.message)) {
        throw Object.assign(new NoRoomForStream(`the NATS server has no room for the ${this.#limits.maxBytes} bytes of stream ${this.name} `
          + `(${error.message}): free JetStream storage (max_file_store) or set GATEHOUSE_CLUSTER_STREAM_MAX_MB lower`), { cause: error });
      }
      throw error;
    }
    return { js: client.jetstream(nc, { timeout: PUBLISH_TIMEOUT_MS }), jsm };
  }

  /** A publish went unanswered: NATS may have been replaced (its store wiped), so the next use makes sure of the stream again. */
  reopen(): void {
    this.#opening = null;
  }

  /**
   * Stores a frame, in the order of the calls (see StreamPublisher): resolves with the stream's ack, tried again
   * for as long as it takes; rejects when the stream refused it (StreamRefusal) or it was cancelled (StoreCancelled).
   */
  publish(gatewayId: string, frame: Uint8Array, msgId: string, headers?: MsgHdrs, onRetry?: () => void): Promise<PubAck> {
    this.#publisher ??= new StreamPublisher(this.#conn, PUBLISH_TIMEOUT_MS, (again) => {
      if (again) this.reopen();
      return this.#open();
    }, this.#logger);
    return this.#publisher.publish(this.subject(gatewayId), frame, msgId, headers ?? this.#conn.client.headers(), onRetry);
  }

  /**
   * The message ids (`Nats-Msg-Id`) of the gateway's messages stored from `sinceMs` on (the NATS server's clock) to
   * the stream's end as of the call, each handed to `each` in stream order; resolves with how many were read. A
   * survivor reads the last moments of a dead process's stores (in-doubt-stores.ts), a few seconds of the stream once
   * per death.
   */
  idsSince(gatewayId: string, sinceMs: number, each: (msgId: string) => void): Promise<number> {
    return this.#headersFrom(gatewayId, { deliver_policy: 'by_start_time', opt_start_time: new Date(sinceMs).toISOString() }, (msg) => {
      const msgId = msg.headers?.get('Nats-Msg-Id');
      if (msgId !== undefined && msgId !== '') each(msgId);
    });
  }

  /**
   * The headers of the gateway's messages from sequence `fromSeq` on to the stream's end as of the call, in stream
   * order, with each one's sequence and the NATS server's time it was stored at: a survivor looks for the shared groups'
   * picks of a dead process (dead-node-shares.ts). Resolves with how many were read.
   */
  headersFrom(gatewayId: string, fromSeq: number, each: (seq: number, headers: MsgHdrs | undefined, storedAtMs: number) => void): Promise<number> {
    return this.#headersFrom(gatewayId, { deliver_policy: 'by_start_sequence', opt_start_seq: Math.max(1, fromSeq) },
      (msg) => each(msg.seq, msg.headers, Number(msg.info.timestampNanos) / NS_PER_MS));
  }

  /** An ordered consumer over the gateway's messages, headers only, read in batches and deleted after. */
  async #headersFrom(gatewayId: string, start: { deliver_policy: DeliverPolicy; opt_start_time?: string; opt_start_seq?: number },
    each: (msg: JsMsg) => void): Promise<number> {
    const { js } = await this.#open();
    const consumer = await js.consumers.get(this.name, { filter_subjects: this.subject(gatewayId), ...start, headers_only: true });
    let read = 0;
    try {
      let remaining = (await consumer.info(true)).num_pending;
      while (remaining > 0) {
        let got = 0;
        for await (const msg of await consumer.fetch({ max_messages: Math.min(ID_READ_BATCH, remaining), expires: PUBLISH_TIMEOUT_MS })) {
          got++;
          each(msg);
        }
        if (got === 0) throw new Error(`the stream ${this.name} handed none of the ${remaining} messages still to read`);
        remaining -= got;
        read += got;
      }
    } finally {
      await consumer.delete().catch(() => undefined); // ephemeral: the server drops it when idle anyway
    }
    return read;
  }

  /** Cancels every publish not yet stored (the node was cut off past its lease): none lands once its sessions moved on. */
  cancelAll(): void {
    this.#publisher?.cancelAll();
  }

  /** Cancels the gateway's publishes not yet stored (its link here closes): they are not tried again. */
  cancel(gatewayId: string): void {
    this.#publisher?.cancel(this.subject(gatewayId));
  }

  /** Stops the publisher's reply subscription and sweeper (the node stops). */
  close(): void {
    this.#publisher?.close();
    this.#publisher = null;
  }

  /** The gateway's first stored message after sequence `after`, or null when there is none. */
  async next(gatewayId: string, after: number): Promise<StoredMsg | null> {
    const { jsm } = await this.#open();
    // STREAM.MSG.GET with `next_by_subj` (nats-server 2.9): the client's types know it only for direct gets.
    const query = { seq: after + 1, next_by_subj: this.subject(gatewayId) };
    return jsm.streams.getMessage(this.name, query);
  }

  /** The stored message of sequence `seq`, or null when there is none (removed by the stream's limits). */
  async get(seq: number): Promise<StoredMsg | null> {
    const { jsm } = await this.#open();
    try {
      return await jsm.streams.getMessage(this.name, { seq });
    } catch (error) {
      if (isNotFound(error)) return null;
      throw error;
    }
  }

  /**
   * Which stream this is: its creation time. Two answers that differ: the stream was replaced in between (deleted by
   * hand, or a NATS server back without its store), its sequences from 1 again. `remake`: made sure of first (after
   * a reconnect the stream may be gone, and nobody may have published since to make it again).
   */
  async identity(remake = false): Promise<string> {
    if (remake) this.reopen();
    const { jsm } = await this.#open();
    return (await jsm.streams.info(this.name)).created;
  }

  /** The stream's first sequence (every message below it was removed by its limits) and its last (0: none yet). */
  async bounds(): Promise<{ first: number; last: number }> {
    const { jsm } = await this.#open();
    const { state } = (await jsm.streams.info(this.name));
    return { first: state.first_seq, last: state.last_seq };
  }

  /** The sequence of the gateway's last stored message (0: none). */
  async last(gatewayId: string): Promise<number> {
    const { jsm } = await this.#open();
    try {
      return (await jsm.streams.getMessage(this.name, { last_by_subj: this.subject(gatewayId) }))?.seq ?? 0;
    } catch (error) {
      if (isNotFound(error)) return 0;
      throw error;
    }
  }
}

/** A JetStream "not found" (stream or message), by its API error code rather than a class the dynamic import holds. */
export function isNotFound(error: unknown): boolean {
  const status = (error as { status?: unknown } | null)?.status;
  const code = (error as { code?: unknown } | null)?.code;
  return status === 404 || code === 10059 || code === 10037;
}

/** An error the stream answered (it refused the message: too large, over a limit): trying again cannot help. */
export function isRefusal(error: unknown): boolean {
  if (error instanceof StreamRefusal) return !isNotFound(error);
  return typeof (error as { apiError?: unknown } | null)?.apiError === 'function' && !isNotFound(error);
}
