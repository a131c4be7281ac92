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
import type { JetStreamClient, JetStreamManager, PubAck, StoredMsg } from '@nats-io/jetstream';
import type { Msg, MsgHdrs, Subscription } from '@nats-io/transport-node';
import type { ClusterConnection } from './connection.ts';

/** The stream's limits: the oldest messages go first once it holds this many bytes, or once they are this old. */
export interface MessageStreamLimits {
  maxBytes: number;
  maxAgeMs: number;
}

export const DEFAULT_MESSAGE_STREAM_LIMITS: MessageStreamLimits = { maxBytes: 1024 ** 3, maxAgeMs: 7 * 24 * 3600_000 };

/** A retried publish within this window is recognised by its message id and stored once. */
const DUPLICATE_WINDOW_MS = 120_000;
/** How long one publish waits for the stream's ack before it is tried again. */
const PUBLISH_TIMEOUT_MS = 5_000;

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
 * This node's publishes to the stream, on one reply subscription: a PubAck comes back on `<inbox>.<n>`. nats.js's
 * `js.publish` is a request per message (request, timer and deferred objects, and an Error built at each answer to
 * cancel what was already resolved): in a profile of a node publishing QoS 1 under load, its share of the samples was
 * second only to the socket writes. Here a publish is a map entry, unanswered ones are swept once a quarter of the
 * timeout (no timer each), and what the stream answered is read as `js.publish` read it.
 */
class StreamPublisher {
  readonly #conn: ClusterConnection;
  readonly #inbox: string;
  readonly #subscription: Subscription;
  readonly #pending = new Map<number, { resolve: (ack: PubAck) => void; reject: (err: Error) => void; at: number }>();
  readonly #sweeper: NodeJS.Timeout;
  #next = 0;

  constructor(conn: ClusterConnection, timeoutMs: number) {
    this.#conn = conn;
    this.#inbox = `_INBOX.gatehouse-stream.${conn.bucketSuffix}.${randomUUID().replaceAll('-', '')}`;
    this.#subscription = conn.nc.subscribe(`${this.#inbox}.*`, { callback: (err, msg) => (err === null ? this.#answer(msg) : undefined) });
    this.#sweeper = setInterval(() => {
      const due = Date.now() - timeoutMs;
      for (const [n, entry] of this.#pending) {
        if (entry.at > due) break; // in publish order
        this.#pending.delete(n);
        entry.reject(new Error(`no answer from the stream within ${timeoutMs} ms`));
      }
    }, Math.max(10, timeoutMs / 4));
    this.#sweeper.unref();
  }

  publish(subject: string, frame: Uint8Array, msgId: string, headers: MsgHdrs): Promise<PubAck> {
    headers.set('Nats-Msg-Id', msgId);
    const n = ++this.#next;
    return new Promise<PubAck>((resolve, reject) => {
      this.#pending.set(n, { resolve, reject, at: Date.now() });
      try {
        this.#conn.nc.publish(subject, frame, { reply: `${this.#inbox}.${n}`, headers });
      } catch (err) {
        this.#pending.delete(n);
        reject(err instanceof Error ? err : new Error(String(err)));
      }
    });
  }

  #answer(msg: Msg): void {
    const n = Number(msg.subject.slice(this.#inbox.length + 1));
    const entry = this.#pending.get(n);
    if (entry === undefined) return; // swept already: that publish is being tried again under its id
    this.#pending.delete(n);
    if (msg.data.length === 0 && msg.headers?.code === 503) {
      entry.reject(new Error('no JetStream stream answered (no responders)'));
      return;
    }
    try {
      const answer = msg.json<{ error?: { code?: number; err_code?: number; description?: string }; stream?: string; seq?: number; duplicate?: boolean }>();
      if (answer.error !== undefined) entry.reject(new StreamRefusal(answer.error.description ?? 'error', answer.error.err_code));
      else if (typeof answer.stream !== 'string' || answer.stream === '' || typeof answer.seq !== 'number') entry.reject(new Error('invalid ack response'));
      else entry.resolve({ stream: answer.stream, seq: answer.seq, duplicate: answer.duplicate ?? false, domain: '' });
    } catch (err) {
      entry.reject(err instanceof Error ? err : new Error(String(err)));
    }
  }

  close(): void {
    clearInterval(this.#sweeper);
    if (!this.#subscription.isClosed()) this.#subscription.unsubscribe();
  }
}

export class MessageStream {
  readonly name: string;
  readonly #conn: ClusterConnection;
  readonly #limits: MessageStreamLimits;
  #opening: Promise<{ js: JetStreamClient; jsm: JetStreamManager }> | null = null;
  #publisher: StreamPublisher | null = null;

  constructor(conn: ClusterConnection, limits: MessageStreamLimits = DEFAULT_MESSAGE_STREAM_LIMITS) {
    this.#conn = conn;
    this.#limits = limits;
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
        throw new Error(`the NATS server has no room for the ${this.#limits.maxBytes} bytes of stream ${this.name} `
          + `(${error.message}): free JetStream storage (max_file_store) or set GATEHOUSE_CLUSTER_STREAM_MAX_MB lower`, { cause: error });
      }
      throw error;
    }
    return { js: client.jetstream(nc, { timeout: PUBLISH_TIMEOUT_MS }), jsm };
  }

  /** A publish went unanswered: NATS may have been replaced (its store wiped), so the next use makes sure of the stream again. */
  reopen(): void {
    this.#opening = null;
  }

  /** Stores a frame; resolves with the stream's ack (throws when the stream refused it or did not answer in time). */
  async publish(gatewayId: string, frame: Uint8Array, msgId: string, headers?: MsgHdrs): Promise<PubAck> {
    await this.#open();
    this.#publisher ??= new StreamPublisher(this.#conn, PUBLISH_TIMEOUT_MS);
    return this.#publisher.publish(this.subject(gatewayId), frame, msgId, headers ?? this.#conn.client.headers());
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

  /** The stream's first sequence: every message below it was removed by its limits. */
  async first(): Promise<number> {
    const { jsm } = await this.#open();
    return (await jsm.streams.info(this.name)).state.first_seq;
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
