/**
 * The engine under fuzz: each input is the byte stream one client sends on one connection (a CONNECT
 * and what follows, or anything at all), delivered to the real `Broker` through a `MemorySocket`.
 *
 * Invariants, checked on every input:
 *  - no throw escapes: nothing reaches `uncaughtException` / `unhandledRejection`, and no handler failure
 *    is contained either (`stats.handlerCrashes` stays 0: a contained crash is still a bug);
 *  - the connection ends: the engine closes the socket once the client's stream has ended, within a
 *    deadline (no socket held open by a half-read packet).
 * and every `checkEvery` inputs:
 *  - a well-behaved client on a real TCP socket still connects, subscribes and receives a publish;
 *  - no connection leaks (only the watchdog's remain) and no session leaks (only the persistent
 *    sessions that accepted CONNECTs asked for);
 *  - resident memory stays under a bound.
 * The engine is replaced every `restartEvery` inputs, so persistent sessions and retained messages the
 * inputs create do not pile up over a long run.
 */
import { Writable } from 'node:stream';
import { connectAsync, type MqttClient } from 'mqtt';
import { parser, type Packet } from 'mqtt-packet';
import pino from 'pino';
import { Broker, listen, type BrokerOptions, type ClientInfo, type Listener } from '../../../src/broker/index.ts';
import { MemorySocket } from './memory-socket.ts';

export class Finding extends Error {
  readonly kind: string;
  constructor(kind: string, message: string) {
    super(`${kind}: ${message}`);
    this.kind = kind;
  }
}

export interface MqttTargetOptions {
  checkEvery: number;
  restartEvery: number;
  /** Resident set size above which the run stops with a finding. */
  maxRssBytes: number;
  /** How long the engine may take to close a connection whose client has ended its stream. */
  closeDeadlineMs: number;
}

/** The engine's error-level log lines, kept so a contained crash is reported with its stack. */
class ErrorLog {
  readonly lines: string[] = [];
  readonly logger = pino({ level: 'error', base: undefined }, new Writable({
    write: (chunk: Buffer, _encoding, callback) => {
      if (this.lines.length < 10) this.lines.push(chunk.toString().trim());
      callback();
    },
  }));
}

const ENGINE_OPTIONS: Partial<BrokerOptions> = { maxPacketSize: 64 * 1024 };
const WATCHDOG_DEADLINE_MS = 20_000;

/** Splits some inputs into several writes, derived from the bytes so a replay splits the same way. */
export function chunksOf(input: Buffer): Buffer[] {
  let sum = 0;
  for (const byte of input) sum = (sum + byte) & 0xffff;
  if (sum % 4 !== 0 || input.length < 2) return [input];
  const size = 1 + (sum % 13);
  const chunks: Buffer[] = [];
  for (let at = 0; at < input.length; at += size) chunks.push(input.subarray(at, at + size));
  return chunks;
}

/** Whether the input's first packet is a CONNECT asking for a session that outlives the connection. */
function asksPersistentSession(input: Buffer): boolean {
  for (const protocolVersion of [5, 4] as const) {
    let first: Packet | undefined;
    const p = parser({ protocolVersion });
    p.on('packet', (packet: Packet) => { first ??= packet; });
    p.on('error', () => undefined);
    try { p.parse(input); } catch { /* not decodable as this version */ }
    if (first?.cmd === 'connect') {
      return first.protocolVersion === 5 ? (first.properties?.sessionExpiryInterval ?? 0) > 0 : first.clean === false;
    }
  }
  // Undecodable here but the engine may still have accepted it: count it as persistent (an allowance,
  // never a false leak report).
  return true;
}

class WatchdogPair {
  readonly sub: MqttClient;
  readonly pub: MqttClient;
  readonly received: Set<string>;
  private constructor(sub: MqttClient, pub: MqttClient, received: Set<string>) {
    this.sub = sub;
    this.pub = pub;
    this.received = received;
  }

  static async start(port: number): Promise<WatchdogPair> {
    const options = { host: '127.0.0.1', port, protocolVersion: 5 as const, reconnectPeriod: 0, connectTimeout: 5_000 };
    const sub = await connectAsync({ ...options, clientId: 'fuzz-watch-sub' });
    const pub = await connectAsync({ ...options, clientId: 'fuzz-watch-pub' });
    await sub.subscribeAsync('fuzz-watch/#', { qos: 1 });
    const received = new Set<string>();
    sub.on('message', (_topic, payload) => received.add(payload.toString()));
    return new WatchdogPair(sub, pub, received);
  }

  async check(round: number): Promise<void> {
    const token = `round-${round}`;
    await this.pub.publishAsync('fuzz-watch/ping', token, { qos: 1 });
    // Generous: a machine busy with other work must not pass for an engine that stopped serving.
    const deadline = Date.now() + WATCHDOG_DEADLINE_MS;
    while (!this.received.has(token)) {
      if (Date.now() > deadline) throw new Finding('starved', `the watchdog subscriber did not receive ${token} within ${WATCHDOG_DEADLINE_MS} ms`);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    this.received.delete(token);
  }

  async close(): Promise<void> {
    await Promise.all([this.sub.endAsync(true), this.pub.endAsync(true)]);
  }
}

export class MqttTarget {
  readonly #options: MqttTargetOptions;
  #engine!: Broker;
  #listener!: Listener;
  #watchdog!: WatchdogPair;
  #sinceRestart = 0;
  #persistentAllowance = 0;
  #rounds = 0;
  #escaped: Error | null = null;
  #errorLog = new ErrorLog();
  readonly #onEscape = (error: unknown): void => {
    this.#escaped ??= error instanceof Error ? error : new Error(String(error));
  };

  private constructor(options: MqttTargetOptions) {
    this.#options = options;
  }

  static async start(options: MqttTargetOptions): Promise<MqttTarget> {
    const target = new MqttTarget(options);
    process.on('uncaughtException', target.#onEscape);
    process.on('unhandledRejection', target.#onEscape);
    await target.#startEngine();
    return target;
  }

  /** Runs one input; throws a `Finding` when an invariant breaks. */
  async run(input: Buffer): Promise<void> {
    const socket = new MemorySocket();
    // Accepted by the engine, whether or not its CONNACK reached the socket before the client went away
    // (a client that sends CONNECT and closes at once still leaves the session it asked for).
    let accepted = false;
    const onConnected = (conn: ClientInfo): void => {
      if (conn.remoteAddress === socket.remoteAddress) accepted = true;
    };
    this.#engine.on('client_connected', onConnected);
    this.#engine.handle(socket.asSocket());
    socket.deliver(chunksOf(input));
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => { timer = setTimeout(() => resolve('late'), this.#options.closeDeadlineMs); });
    const outcome = await Promise.race([socket.ended, late]);
    clearTimeout(timer);
    this.#engine.off('client_connected', onConnected);
    if (outcome === 'late') {
      socket.destroy();
      throw new Finding('socket_held', `the engine kept the connection open ${this.#options.closeDeadlineMs} ms after the client ended it`);
    }
    if (accepted && asksPersistentSession(input)) this.#persistentAllowance += 1;
    this.#throwIfBroken();
    // Per input, so the finding names the input that left a session behind, not the 500th after it.
    this.#throwIfSessionsLeaked();
    this.#sinceRestart += 1;
    if (this.#sinceRestart % this.#options.checkEvery === 0) await this.check();
    if (this.#sinceRestart >= this.#options.restartEvery) await this.#restart();
  }

  /** The periodic invariants (also run at the end of a fuzzing run). */
  async check(): Promise<void> {
    this.#rounds += 1;
    await this.#watchdog.check(this.#rounds);
    // Let connections the engine ended finish closing before counting.
    const deadline = Date.now() + 2_000;
    while (this.#engine.connectionCount > 2 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
    if (this.#engine.connectionCount !== 2) {
      throw new Finding('connection_leak', `${this.#engine.connectionCount} connections open, only the watchdog's 2 expected`);
    }
    this.#throwIfSessionsLeaked();
    const rss = process.memoryUsage().rss;
    if (rss > this.#options.maxRssBytes) throw new Finding('memory', `resident memory ${rss} bytes over ${this.#options.maxRssBytes}`);
    this.#throwIfBroken();
  }

  async close(): Promise<void> {
    process.off('uncaughtException', this.#onEscape);
    process.off('unhandledRejection', this.#onEscape);
    await this.#stopEngine();
  }

  #throwIfSessionsLeaked(): void {
    const sessions = this.#engine.sessionCount;
    if (sessions > 2 + this.#persistentAllowance) {
      throw new Finding('session_leak', `${sessions} sessions, at most 2 watchdog + ${this.#persistentAllowance} persistent expected`);
    }
  }

  #throwIfBroken(): void {
    if (this.#escaped !== null) throw new Finding('escaped', this.#escaped.stack ?? String(this.#escaped));
    const crashes = this.#engine.stats.handlerCrashes;
    if (crashes > 0) {
      throw new Finding('handler_crash', `${crashes} handler failure(s) contained by the engine:\n${this.#errorLog.lines.join('\n')}`);
    }
  }

  async #startEngine(): Promise<void> {
    this.#errorLog = new ErrorLog();
    this.#engine = new Broker({ options: ENGINE_OPTIONS, logger: this.#errorLog.logger });
    this.#listener = await listen(this.#engine, { host: '127.0.0.1', port: 0 });
    this.#watchdog = await WatchdogPair.start(this.#listener.port);
    this.#sinceRestart = 0;
    this.#persistentAllowance = 0;
  }

  async #stopEngine(): Promise<void> {
    await this.#watchdog.close();
    await this.#engine.close();
    await this.#listener.close();
  }

  async #restart(): Promise<void> {
    await this.check();
    await this.#stopEngine();
    await this.#startEngine();
  }
}
