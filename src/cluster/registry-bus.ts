/**
 * The registry's event bus on NATS: every committed change of the shared configuration is published
 * once on the installation's registry subject, and every node applies the others' as its own. Core
 * NATS is at most once, so a node that was cut off cannot know what it missed: when its connection
 * comes back it resyncs (the runtime reads every gateway again; caches are dropped), which is what a
 * durable log would give, without one more stream to keep.
 *
 * A change the API must not answer before it is in force everywhere (events.ts CONFIRMED_EVENTS) carries a reply
 * subject: each node answers it with its process's instance once the work the change started there settled (a
 * gateway started, its rules reloaded). The publisher waits for every other live process whose lease says it hears
 * the changes (node-leases.ts `hearsChanges`, written once its subscription is in force), at most
 * CONFIRM_WAIT_MS: a node that died a moment ago (its lease not lapsed yet) holds an answer no longer than that, and is
 * logged. Cut off from NATS, nothing is awaited: the others resync when they hear the bus again.
 */
import type { Subscription } from '@nats-io/transport-node';
import type { Logger } from '../core/logger.ts';
import type { RegistryEventBus, RegistryEventMap, RegistryEventName, RemoteEventReceiver } from '../registry/index.ts';
import type { ClusterConnection } from './connection.ts';

/** How long a change waits at most for the other nodes to say they applied it. */
export const CONFIRM_WAIT_MS = 5_000;
/** Changes waiting for confirmations at once, at most (an import deleting a fleet): past it, the oldest stop waiting. */
const MAX_AWAITED = 10_000;

interface Envelope {
  node: string;
  name: string;
  payload: unknown;
}

interface Awaited {
  name: string;
  /** The live processes that have not answered yet. */
  waiting: Set<string>;
  timer: NodeJS.Timeout;
  resolve: () => void;
}

export class NatsRegistryBus implements RegistryEventBus {
  readonly #conn: ClusterConnection;
  readonly #logger: Logger;
  readonly #subject: string;
  /** This process, as the leases name it (what it answers with). */
  readonly #instance: string;
  /** The live processes that hear the registry's changes, as the leases last said (this one included or not). */
  readonly #live: () => readonly string[];
  /** Told once this bus hears the other nodes' changes (the lease says so: node-leases.ts `hearsChanges`). */
  readonly #hearing: () => Promise<void>;
  /** Where the other nodes' answers come to: `<inbox>.<change number>`. */
  #inbox: string | null = null;
  #answers: Subscription | null = null;
  #next = 0;
  readonly #awaited = new Map<number, Awaited>();

  constructor(conn: ClusterConnection, logger: Logger, instance: string, live: () => readonly string[],
    hearing: () => Promise<void> = () => Promise.resolve()) {
    this.#conn = conn;
    this.#logger = logger;
    this.#subject = `${conn.prefix}.registry`;
    this.#instance = instance;
    this.#live = live;
    this.#hearing = hearing;
  }

  publish<K extends RegistryEventName>(name: K, payload: RegistryEventMap[K], confirm: boolean): Promise<void> | undefined {
    const envelope: Envelope = { node: this.#conn.nodeId, name, payload };
    const others = confirm && this.#conn.state === 'connected' ? this.#live().filter((instance) => instance !== this.#instance) : [];
    let reply: string | undefined;
    let confirmed: Promise<void> | undefined;
    if (others.length > 0) {
      const number = ++this.#next;
      reply = `${this.#answerInbox()}.${number}`;
      confirmed = new Promise<void>((resolve) => {
        const timer = setTimeout(() => this.#giveUp(number), CONFIRM_WAIT_MS);
        timer.unref();
        this.#awaited.set(number, { name, waiting: new Set(others), timer, resolve });
      });
      if (this.#awaited.size > MAX_AWAITED) this.#giveUp(this.#awaited.keys().next().value!);
    }
    try {
      this.#conn.nc.publish(this.#subject, JSON.stringify(envelope), reply === undefined ? undefined : { reply });
    } catch (err) {
      // Closed or cut off beyond the client's buffer: the other nodes resync when they reconnect.
      this.#logger.warn({ err, event: name }, 'cluster_registry_publish_failed');
      if (reply !== undefined) this.#settle(this.#next);
    }
    return confirmed;
  }

  /** The inbox the answers come to, subscribed on first use (the client subscribes again after a reconnect). */
  #answerInbox(): string {
    if (this.#inbox === null) {
      const inbox = `${this.#conn.prefix}.registry-answers.${this.#instance}`; // this process's alone
      this.#answers = this.#conn.nc.subscribe(`${inbox}.*`, {
        callback: (err, msg) => {
          if (err !== null) return;
          const number = Number(msg.subject.slice(inbox.length + 1));
          const awaited = this.#awaited.get(number);
          if (awaited === undefined) return; // answered late, after the wait ended
          awaited.waiting.delete(msg.string());
          if (awaited.waiting.size === 0) this.#settle(number);
        },
      });
      this.#inbox = inbox;
    }
    return this.#inbox;
  }

  #giveUp(number: number): void {
    const awaited = this.#awaited.get(number);
    if (awaited === undefined) return;
    this.#logger.warn({ event: awaited.name, unconfirmed: [...awaited.waiting], waitedMs: CONFIRM_WAIT_MS }, 'cluster_change_unconfirmed');
    this.#settle(number);
  }

  #settle(number: number): void {
    const awaited = this.#awaited.get(number);
    if (awaited === undefined) return;
    this.#awaited.delete(number);
    clearTimeout(awaited.timer);
    awaited.resolve();
  }

  subscribe(receiver: RemoteEventReceiver): () => void {
    const subscription: Subscription = this.#conn.nc.subscribe(this.#subject, {
      callback: (err, msg) => {
        if (err !== null) {
          this.#logger.error({ err }, 'cluster_registry_subscription_failed');
          return;
        }
        let envelope: Envelope;
        try {
          envelope = msg.json<Envelope>();
        } catch (error) {
          this.#logger.warn({ err: error }, 'cluster_registry_event_unreadable');
          return;
        }
        if (envelope.node === this.#conn.nodeId) return; // noEcho already spares us; a twin id must not loop
        const applying = receiver.event(envelope.name, envelope.payload);
        const reply = msg.reply;
        if (reply === undefined) return;
        const answer = (): void => {
          try {
            this.#conn.nc.publish(reply, this.#instance);
          } catch (error) {
            this.#logger.debug({ err: error }, 'cluster_registry_answer_failed'); // the publisher stops waiting in time
          }
        };
        if (applying === undefined) answer();
        else void applying.then(answer);
      },
    });
    // Once the server has the subscription, the others may wait for this node's answers (a node that starts is not
    // waited for before: what it reads at its start includes every change made until then).
    this.#conn.nc.flush().then(() => this.#hearing(), (err: unknown) => this.#logger.warn({ err }, 'cluster_registry_subscription_unconfirmed'))
      .catch((err: unknown) => this.#logger.warn({ err }, 'cluster_registry_hearing_unannounced'));
    let wasCutOff = false;
    const offState = this.#conn.onState((state) => {
      if (state === 'disconnected') wasCutOff = true;
      else if (state === 'connected' && wasCutOff) {
        wasCutOff = false;
        receiver.resync();
      }
    });
    return () => {
      offState();
      subscription.unsubscribe();
      this.#answers?.unsubscribe();
      this.#answers = null;
      this.#inbox = null;
      for (const number of [...this.#awaited.keys()]) this.#settle(number);
    };
  }
}
