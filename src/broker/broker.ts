/**
 * The MQTT engine: sessions, routing, retained messages, wills and timers. It knows nothing about
 * gateways or products; those plug in through `BrokerHooks` and listen to `BrokerEvents`.
 */
import { EventEmitter } from 'node:events';
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import type { QoS } from '../mqtt/codec.ts';
import { RC } from '../mqtt/reason-codes.ts';
import { silentLogger, type Logger } from '../core/logger.ts';
import { DEFAULT_BROKER_OPTIONS, type BrokerOptions } from './options.ts';
import { createStats, type BrokerStats } from './stats.ts';
import type { BrokerEvents, BrokerHooks, ClientInfo } from './hooks.ts';
import { Router } from './router.ts';
import { RetainedStore } from './retained.ts';
import { createMessage, type Message } from './message.ts';
import { Session, type Subscription } from './session.ts';
import { Connection } from './connection.ts';
import { LongTimer } from './long-timer.ts';
import type { BrokerContext } from './context.ts';
import { dispatch } from './handlers/index.ts';

/** Session Expiry Interval meaning "never expires" [MQTT-3.1.2-?, §3.1.2.11.2]. */
const NEVER_EXPIRES = 0xffffffff;
const SWEEP_INTERVAL_MS = 250;

export interface BrokerInit {
  options?: Partial<BrokerOptions>;
  hooks?: BrokerHooks;
  logger?: Logger;
}

export class Broker extends EventEmitter<BrokerEvents> implements BrokerContext {
  readonly options: BrokerOptions;
  readonly stats: BrokerStats = createStats();
  readonly logger: Logger;
  readonly hooks: BrokerHooks;
  readonly router = new Router();
  readonly retained: RetainedStore;
  readonly dispatch = dispatch;
  readonly #sessions = new Map<string, Session>();
  readonly #connections = new Set<Connection>();
  #sweep: NodeJS.Timeout;
  #closed = false;

  constructor(init: BrokerInit = {}) {
    super();
    this.options = { ...DEFAULT_BROKER_OPTIONS, ...init.options };
    this.hooks = init.hooks ?? {};
    this.logger = init.logger ?? silentLogger;
    this.retained = new RetainedStore(this.options.maxRetained);
    this.#sweep = setInterval(() => this.#sweepConnections(), SWEEP_INTERVAL_MS);
    this.#sweep.unref();
  }

  now(): number {
    return Date.now();
  }

  get connectionCount(): number {
    return this.#connections.size;
  }

  get sessionCount(): number {
    return this.#sessions.size;
  }

  /** Connected clients (read-only views). */
  clients(): ClientInfo[] {
    return [...this.#connections].filter((c) => c.state === 'connected');
  }

  getSession(clientId: string): Session | undefined {
    return this.#sessions.get(clientId);
  }

  /** Takes ownership of an accepted socket (plain or TLS). */
  handle(socket: Socket): void {
    if (this.#closed) {
      socket.destroy();
      return;
    }
    socket.setNoDelay(true);
    this.stats.connectionsAccepted++;
    this.#connections.add(new Connection(socket, this));
  }

  assignClientId(): string {
    return `gh-${randomBytes(9).toString('base64url')}`;
  }

  openSession(conn: Connection, cleanStart: boolean): { session: Session; present: boolean } {
    const clientId = conn.clientId;
    let session = this.#sessions.get(clientId);
    if (session?.link instanceof Connection && session.link !== conn) {
      // [MQTT-3.1.4-3] the existing connection is closed; v5 clients hear 0x8E.
      const old = session.link;
      session.link = null;
      old.session = null;
      this.#handleLostConnection(old, session, 'session_taken_over');
      old.disconnect(RC.SESSION_TAKEN_OVER, 'session_taken_over');
    }
    if (session !== undefined) {
      session.expiryTimer?.cancel();
      // A will delayed for this session is not sent once the session resumes [MQTT-3.1.3-9].
      session.willTimer?.cancel();
      session.willTimer = undefined;
    }
    let present = false;
    if (session !== undefined && cleanStart) {
      this.#destroySession(session); // [MQTT-3.1.2-4] Clean Start discards the old session
      session = undefined;
    }
    if (session === undefined) {
      session = new Session(clientId, this.options, this.stats);
      this.#sessions.set(clientId, session);
    } else {
      present = true; // [MQTT-3.2.2-3]
    }
    conn.session = session;
    return { session, present };
  }

  connectionReady(conn: Connection): void {
    this.logger.debug({ clientId: conn.clientId, remoteAddress: conn.remoteAddress }, 'client_connected');
    this.emit('client_connected', conn);
  }

  /** Publishes a message from outside MQTT (the platform's downlink, tests). */
  publishMessage(init: { topic: string; payload: Buffer; qos?: QoS; retain?: boolean; expirySeconds?: number }): void {
    this.publish(createMessage({
      topic: init.topic,
      payload: init.payload,
      qos: init.qos ?? 0,
      retain: init.retain ?? false,
      properties: undefined,
      expiresAt: init.expirySeconds === undefined ? 0 : Date.now() + init.expirySeconds * 1000,
      senderId: '',
    }), null);
  }

  publish(message: Message, from: ClientInfo | null): void {
    this.stats.messagesReceived++;
    this.emit('message_published', message, from);
    if (message.retain) this.retained.set(message);
    const deliveries = this.router.match(message.topic, message.senderId);
    for (let i = 0; i < deliveries.length; i++) {
      const d = deliveries[i]!;
      // Delivered at the lower of the published and the granted QoS [MQTT-3.8.4-8? §3.8.4];
      // RETAIN is kept only with Retain As Published [MQTT-3.3.1-12, MQTT-3.3.1-13].
      const qos = (message.qos < d.qos ? message.qos : d.qos);
      d.session.deliver(message, qos, d.retainAsPublished && message.retain, d.subIds);
    }
  }

  subscribe(sub: Subscription): void {
    sub.session.subscriptions.set(sub.raw, sub);
    this.router.add(sub);
  }

  unsubscribe(sub: Subscription): void {
    if (sub.session.subscriptions.get(sub.raw) !== sub) return;
    sub.session.subscriptions.delete(sub.raw);
    this.router.remove(sub);
  }

  connectionClosed(conn: Connection, reason: string, wasConnected: boolean): void {
    this.#connections.delete(conn);
    const session = conn.session;
    if (!wasConnected || session === null) return;
    conn.session = null;
    if (session.link === conn) {
      session.link = null;
      this.#handleLostConnection(conn, session, reason);
    }
  }

  /** Will and session expiry after the connection of a session went away. */
  #handleLostConnection(conn: Connection, session: Session, reason: string): void {
    this.logger.debug({ clientId: conn.clientId, reason }, 'client_disconnected');
    this.emit('client_disconnected', conn, reason);
    const will = conn.will;
    conn.will = null;
    const expiry = session.expiryInterval;
    if (will !== null && !conn.normalDisconnect) {
      // The will waits for min(Will Delay, Session Expiry) [MQTT-3.1.3-9]; the session ending sends it now.
      const delay = Math.min(conn.willDelay, expiry);
      if (delay === 0) this.#publishWill(conn, will);
      else session.willTimer = new LongTimer(delay, () => {
        session.willTimer = undefined;
        this.#publishWill(conn, will);
      });
    }
    if (expiry === 0) this.#destroySession(session); // [MQTT-3.1.2-?] expiry 0 ends the session with the connection
    else if (expiry !== NEVER_EXPIRES) session.expiryTimer = new LongTimer(expiry, () => this.#expireSession(session));
  }

  #publishWill(conn: Connection, will: Message): void {
    const expiry = conn.willExpiry;
    const message = expiry > 0 ? { ...will, expiresAt: Date.now() + expiry * 1000 } : will;
    this.logger.debug({ clientId: conn.clientId, topic: will.topic }, 'will_published');
    this.publish(message, null);
  }

  #expireSession(session: Session): void {
    if (session.link !== null) return;
    // The session ends before the will delay: the will goes now [MQTT-3.1.3-9].
    session.willTimer?.fireNow();
    this.#destroySession(session);
  }

  #destroySession(session: Session): void {
    for (const sub of session.subscriptions.values()) this.router.remove(sub);
    session.subscriptions.clear();
    session.clearMessages();
    session.expiryTimer?.cancel();
    if (this.#sessions.get(session.clientId) === session) this.#sessions.delete(session.clientId);
  }

  #sweepConnections(): void {
    const now = this.now();
    const connectDeadline = now - this.options.connectTimeoutMs;
    for (const conn of this.#connections) {
      if (conn.state === 'awaiting-connect') {
        if (conn.createdAt < connectDeadline) conn.close('connect_timeout');
      } else if (conn.state === 'connected' && conn.keepalive > 0) {
        // [MQTT-3.1.2-22] no packet within 1.5 × Keep Alive: the server closes the connection.
        if (now - conn.lastActivity > conn.keepalive * 1500) conn.disconnect(RC.KEEP_ALIVE_TIMEOUT, 'keepalive_timeout');
      }
    }
  }

  /** Disconnects every client (v5: 0x8B server shutting down) and stops timers. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#sweep);
    for (const conn of [...this.#connections]) conn.disconnect(RC.SERVER_SHUTTING_DOWN, 'server_shutting_down');
    for (const session of this.#sessions.values()) {
      session.expiryTimer?.cancel();
      session.willTimer?.cancel();
    }
    await new Promise((r) => setImmediate(r));
  }
}
