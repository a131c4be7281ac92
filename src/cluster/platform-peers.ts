/**
 * The platform's peers port on NATS (issue 16 item 7). Core subjects per installation:
 *
 * - `<prefix>.platform.events`: the platform events of a node's own devices (messages, online/offline,
 *   connection events), for the other nodes' `/stream`s. Core NATS is at most once, as a stream is (a client
 *   resumes from the replay ring of the node it reaches).
 * - `<prefix>.platform.listening`: which nodes hear those events now. Only a node with a `/stream` open (and
 *   for a while after its last closed, platform.ts) needs them: every node stores, and sends to webhooks, the
 *   events of its own devices only. So a node shares its events only while another node says it listens, and a
 *   node subscribes to them only while it listens: with no stream open anywhere, an uplink costs the cluster
 *   nothing beyond its own node (it was an encode and a NATS message on the sending node, a delivery by
 *   nats-server, and a decode, a message view and a replay-ring slot on every other node: the largest part of
 *   a receiving node's CPU per message in `npm run bench:cluster`). A node that starts listening asks (a
 *   request each other live node answers once it has noted it), so what they share after `ready` is heard; it
 *   says so when it stops. States are idempotent, keyed by process instance: a node that starts or reconnects
 *   says its own and asks the others for theirs (`<prefix>.platform.hello`); a dead process's entry goes with
 *   its lease (`nodesDead`).
 * - `<prefix>.platform.ask`: a request about a device (downlink, its sessions, "disconnect now"), sent to
 *   every other node at once; each answers for its own connections. The asker expects one answer per
 *   other live node (their leases) and stops waiting at the first of: all answered, `maxWaitMs`.
 *
 * A message event travels as a binary frame (its record as JSON, then the payload's bytes), not as the
 * API's base64 view: encoding base64 on every uplink is what issue 12 took off the event loop.
 *
 *   u8 version (1), u8 kind (1 message, 2 other event), u32 header length, header (JSON), payload (the rest)
 */
import type { Msg, Subscription } from '@nats-io/transport-node';
import type { Logger } from '../core/logger.ts';
import type { MessageRecord } from '../registry/index.ts';
import type { PeerAnswer, PeerRequest, PlatformPeers, SharedEvent } from '../platform/peers.ts';
import type { ClusterConnection } from './connection.ts';
import type { PublishBudget } from './publish-budget.ts';

const VERSION = 1;
const KIND_MESSAGE = 1;
const KIND_EVENT = 2;
const HEADER = 6;

export interface PeerCounters {
  /** Events this node shared, and heard from the others. */
  shared: number;
  /** Events not shared because NATS had not confirmed the ones before (the connection's budget, MAX_UNCONFIRMED_PUBLISH_BYTES): the other nodes' streams miss them. */
  dropped: number;
  heard: number;
  /** Frames that were not events (another version of Gatehouse on the same NATS), dropped. */
  malformed: number;
  /** Requests sent to the other nodes, and those a node did not answer in time. */
  asked: number;
  unanswered: number;
}

export function encodeSharedEvent(shared: SharedEvent): Buffer {
  const { kind, header, payload } = shared.kind === 'message'
    ? { kind: KIND_MESSAGE, header: Buffer.from(JSON.stringify({ ...shared.record, payload: undefined })), payload: shared.record.payload }
    : { kind: KIND_EVENT, header: Buffer.from(JSON.stringify(shared.event)), payload: null };
  const out = Buffer.allocUnsafe(HEADER + header.length + (payload?.length ?? 0));
  out[0] = VERSION;
  out[1] = kind;
  out.writeUInt32BE(header.length, 2);
  header.copy(out, HEADER);
  payload?.copy(out, HEADER + header.length);
  return out;
}

/** Throws on a frame that is not one: the caller counts and drops it. */
export function decodeSharedEvent(bytes: Uint8Array): SharedEvent {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (b.length < HEADER || b[0] !== VERSION) throw new Error(`not a version ${VERSION} event frame`);
  const length = b.readUInt32BE(2);
  if (HEADER + length > b.length) throw new Error('event frame cut short');
  const header = JSON.parse(b.toString('utf8', HEADER, HEADER + length)) as unknown;
  if (b[1] === KIND_MESSAGE) {
    // A copy: the frame's buffer belongs to the NATS client, and the record outlives it in the replay ring.
    return { kind: 'message', record: { ...(header as Omit<MessageRecord, 'payload'>), payload: Buffer.from(b.subarray(HEADER + length)) } };
  }
  if (b[1] === KIND_EVENT) return { kind: 'event', event: header as Extract<SharedEvent, { kind: 'event' }>['event'] };
  throw new Error(`event frame of kind ${b[1]}`);
}

/** The platform stops after the node's connection closed (app.ts): its subscriptions went with it. */
function stop(subscription: Subscription): void {
  if (subscription.isClosed()) return;
  subscription.unsubscribe();
}

/** How long a node that starts listening waits for the other nodes to note it (NATS slow or a node not answering). */
const LISTEN_WAIT_MS = 2_000;

/** What a node says on `<prefix>.platform.listening`. */
interface ListeningState {
  instance: string;
  listening: boolean;
}

export class NatsPlatformPeers implements PlatformPeers {
  readonly nodeId: string;
  readonly claimMs: number;
  readonly counters: PeerCounters = { shared: 0, dropped: 0, heard: 0, malformed: 0, asked: 0, unanswered: 0 };
  readonly budget: PublishBudget;
  /** A drop episode is logged once, at its first drop; it ends at the next event shared. */
  #dropping = false;
  readonly #conn: ClusterConnection;
  readonly #logger: Logger;
  readonly #instance: string;
  readonly #otherLiveNodes: () => Promise<number>;
  readonly #eventsSubject: string;
  readonly #askSubject: string;
  readonly #listeningSubject: string;
  readonly #helloSubject: string;
  /** The other node processes that hear this node's events now: it shares them only while there is one. */
  readonly #listeners = new Set<string>();
  /** This node's subscription to the others' events, while it listens. */
  #hearing: Subscription | null = null;
  readonly #subscriptions: Subscription[];
  readonly #offState: () => void;
  #wasCut = false;

  /**
   * `instance`: this process's (its lease's), naming it to the others; `otherLiveNodes`: how many other nodes hold a
   * live lease now (how many answers a request waits for).
   */
  constructor(conn: ClusterConnection, logger: Logger, claimMs: number, instance: string, otherLiveNodes: () => Promise<number>) {
    this.#conn = conn;
    // Shared with the node's QoS 0 forwards: one bound on what the node has published and NATS not confirmed.
    this.budget = conn.budget;
    this.#logger = logger;
    this.nodeId = conn.nodeId;
    this.claimMs = claimMs;
    this.#instance = instance;
    this.#otherLiveNodes = otherLiveNodes;
    this.#eventsSubject = `${conn.prefix}.platform.events`;
    this.#askSubject = `${conn.prefix}.platform.ask`;
    this.#listeningSubject = `${conn.prefix}.platform.listening`;
    this.#helloSubject = `${conn.prefix}.platform.hello`;
    this.#subscriptions = [
      conn.nc.subscribe(this.#listeningSubject, { callback: (err, msg) => this.#onListening(err, msg) }),
      conn.nc.subscribe(this.#helloSubject, { callback: (err) => (err === null ? this.#say() : undefined) }),
    ];
    this.#offState = conn.onState((state) => {
      if (state === 'disconnected') this.#wasCut = true;
      else if (state === 'connected' && this.#wasCut) {
        // Either side may have missed a change while cut off: say ours again, and ask for theirs.
        this.#wasCut = false;
        this.#greet();
      }
    });
    // A restarted node under the same id is a new instance; the others learn who listens from their answers.
    this.#greet();
  }

  /** Other node processes that hear this node's events now (tests, metrics). */
  get listeners(): number {
    return this.#listeners.size;
  }

  share(event: SharedEvent): void {
    // No other node has a stream open (nor just had): nothing of this event is needed elsewhere.
    if (this.#listeners.size === 0) return;
    try {
      const frame = encodeSharedEvent(event);
      if (!this.budget.admit(frame.length)) {
        this.counters.dropped++;
        if (!this.#dropping) {
          this.#dropping = true;
          this.#logger.warn({ unconfirmedBytes: this.budget.unconfirmed, limit: this.budget.maxBytes }, 'cluster_platform_events_dropped_nats_behind');
        }
        return;
      }
      if (this.#dropping) {
        this.#dropping = false;
        this.#logger.info({ dropped: this.counters.dropped }, 'cluster_platform_events_shared_again');
      }
      this.#conn.nc.publish(this.#eventsSubject, frame);
      this.counters.shared++;
    } catch (err) {
      // Closed, or cut off beyond the client's buffer: the other nodes' streams miss it (at most once).
      this.#logger.debug({ err }, 'cluster_platform_share_failed');
    }
  }

  hear(listener: (event: SharedEvent) => void): { ready: Promise<void>; stop(): void } {
    if (this.#hearing !== null) throw new Error('already hearing the other nodes\' events');
    const subscription: Subscription = this.#conn.nc.subscribe(this.#eventsSubject, {
      callback: (err, msg) => {
        if (err !== null) {
          this.#logger.error({ err }, 'cluster_platform_subscription_failed');
          return;
        }
        let event: SharedEvent;
        try {
          event = decodeSharedEvent(msg.data);
        } catch (error) {
          this.counters.malformed++;
          this.#logger.warn({ err: error }, 'cluster_platform_event_unreadable');
          return;
        }
        this.counters.heard++;
        listener(event);
      },
    });
    this.#hearing = subscription;
    // The SUB goes out before the request on the same connection: a node that answered shares to a server that has it.
    const ready = this.#tellListening();
    return {
      ready,
      stop: () => {
        if (this.#hearing !== subscription) return;
        this.#hearing = null;
        this.#say();
        stop(subscription);
      },
    };
  }

  /** Dead node processes (their leases lapsed or were replaced): they hear nothing any more. */
  nodesDead(instances: Iterable<string>): void {
    for (const instance of instances) this.#listeners.delete(instance);
  }

  /** Asks every other live node to note that this one listens; resolves once they answered, or after LISTEN_WAIT_MS. */
  async #tellListening(): Promise<void> {
    if (this.#conn.state !== 'connected') return; // said again once connected (#greet)
    try {
      const expected = await this.#otherLiveNodes();
      if (expected === 0) return; // a node that starts later asks (hello), and this one answers
      const replies = await this.#conn.nc.requestMany(this.#listeningSubject, this.#state(), { strategy: 'count', maxMessages: expected, maxWait: LISTEN_WAIT_MS });
      for await (const reply of replies) void reply; // each answer is a node that noted it
    } catch (err) {
      // No node listening on the subject (all gone since their leases were read), or NATS away: said again on reconnect.
      this.#logger.debug({ err }, 'cluster_platform_listening_unconfirmed');
    }
  }

  #state(): string {
    return JSON.stringify({ instance: this.#instance, listening: this.#hearing !== null } satisfies ListeningState);
  }

  /** Says whether this node listens, to every node (no answer awaited). */
  #say(): void {
    try {
      this.#conn.nc.publish(this.#listeningSubject, this.#state());
    } catch (err) {
      this.#logger.debug({ err }, 'cluster_platform_listening_unsent');
    }
  }

  /** Says this node's state and asks every other node for its own. */
  #greet(): void {
    this.#say();
    try {
      this.#conn.nc.publish(this.#helloSubject);
    } catch (err) {
      this.#logger.debug({ err }, 'cluster_platform_hello_unsent');
    }
  }

  #onListening(err: Error | null, msg: Msg): void {
    if (err !== null) {
      this.#logger.error({ err }, 'cluster_platform_subscription_failed');
      return;
    }
    let state: ListeningState;
    try {
      state = msg.json<ListeningState>();
      if (typeof state.instance !== 'string' || typeof state.listening !== 'boolean') throw new Error('not a listening state');
    } catch (error) {
      this.counters.malformed++;
      this.#logger.warn({ err: error }, 'cluster_platform_listening_unreadable');
      return;
    }
    if (state.listening) this.#listeners.add(state.instance);
    else this.#listeners.delete(state.instance);
    // Answered once noted: the listener's `ready` means this node shares to it from now on.
    if (msg.reply !== undefined && msg.reply !== '') msg.respond();
  }

  /** Stops hearing and answering (the node stops); its connection's close takes the subscriptions anyway. */
  close(): void {
    this.#offState();
    if (this.#hearing !== null) {
      stop(this.#hearing);
      this.#hearing = null;
      this.#say();
    }
    for (const subscription of this.#subscriptions) stop(subscription);
  }

  async ask(request: PeerRequest, maxWaitMs: number): Promise<PeerAnswer[]> {
    if (this.#conn.state !== 'connected') return [];
    let expected: number;
    try {
      expected = await this.#otherLiveNodes();
    } catch (err) {
      this.#logger.warn({ err, kind: request.kind }, 'cluster_platform_nodes_unknown');
      return [];
    }
    if (expected === 0) return [];
    this.counters.asked++;
    const answers: PeerAnswer[] = [];
    try {
      // The connection is noEcho: this node never hears its own request, only the others'.
      const replies = await this.#conn.nc.requestMany(this.#askSubject, JSON.stringify(request), { strategy: 'count', maxMessages: expected, maxWait: maxWaitMs });
      for await (const reply of replies) {
        try {
          answers.push(reply.json<PeerAnswer>());
        } catch {
          this.counters.malformed++;
        }
      }
    } catch (err) {
      // No node listening (all gone since their leases were read), or NATS away: what answered is what we have.
      this.#logger.debug({ err, kind: request.kind }, 'cluster_platform_ask_failed');
    }
    if (answers.length < expected) {
      this.counters.unanswered += expected - answers.length;
      this.#logger.warn({ kind: request.kind, expected, answered: answers.length }, 'cluster_platform_ask_unanswered');
    }
    return answers;
  }

  serve(handler: (request: PeerRequest) => Promise<PeerAnswer>): () => void {
    const subscription: Subscription = this.#conn.nc.subscribe(this.#askSubject, {
      callback: (err, msg) => {
        if (err !== null) {
          this.#logger.error({ err }, 'cluster_platform_subscription_failed');
          return;
        }
        let request: PeerRequest;
        try {
          request = msg.json<PeerRequest>();
        } catch (error) {
          this.counters.malformed++;
          this.#logger.warn({ err: error }, 'cluster_platform_request_unreadable');
          return;
        }
        void handler(request).then(
          (answer) => msg.respond(JSON.stringify(answer)),
          (error: unknown) => this.#logger.error({ err: error, kind: request.kind }, 'cluster_platform_request_failed'),
        );
      },
    });
    return () => stop(subscription);
  }
}
