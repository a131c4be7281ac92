/**
 * Client-side tools for the conformance suites: MQTT.js clients with promises, a raw-socket client that
 * speaks mqtt-packet frames (to send what a library would refuse and to see every byte that comes back),
 * command runners, and bounded waits. Nothing here waits without a deadline.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import type { TestContext } from 'node:test';
import { connectAsync, type IClientOptions, type MqttClient } from 'mqtt';
import {
  generate, parser, type IConnackPacket, type IConnectPacket, type IPublishPacket, type ISubscribePacket,
  type ISubscription, type Packet, type QoS,
} from 'mqtt-packet';
import type { TestBroker } from '../harness/broker.ts';

/** True when the suites run against Debian's mosquitto instead of the engine. */
export const isReference = process.env.GATEHOUSE_TEST_REFERENCE === 'mosquitto';

/** Default deadline for one expected packet or event. */
export const WAIT_MS = 2_000;

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

let counter = 0;
/** A client id or topic segment unique in this process (short enough for strict 23-byte brokers). */
export function uniqueId(prefix = 'c'): string {
  counter += 1;
  return `${prefix}${counter}${randomBytes(3).toString('hex')}`;
}

/** A topic prefix unique to one test, so tests sharing a broker never see each other's messages. */
export function uniqueTopic(name = 't'): string {
  return `gh/${uniqueId(name)}`;
}

/** Polls `predicate` until it is true; throws after `timeoutMs`. */
export async function waitFor(predicate: () => boolean, what: string, timeoutMs = WAIT_MS, intervalMs = 10): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await delay(intervalMs);
  }
}

/** Races a promise against a deadline. */
export async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

interface Closable { close(): unknown }

/** Closes `things` when the test ends, whatever its outcome. */
export function closeAfter<T extends MqttClient | Closable>(t: TestContext, thing: T): T {
  t.after(async () => {
    if ('endAsync' in thing) await thing.endAsync(true).catch(() => undefined);
    else await thing.close();
  });
  return thing;
}

// ---------------------------------------------------------------------------------------------------
// MQTT.js

export interface ClientOptions extends IClientOptions {
  /** Connect to the TLS port (and trust the broker's CA). */
  useTls?: boolean;
}

/** Connects an MQTT.js client (MQTT 5 unless told otherwise), resolving on CONNACK and rejecting on a refusal. */
export async function connectClient(broker: TestBroker, options: ClientOptions = {}): Promise<MqttClient> {
  const { useTls, ...rest } = options;
  const secure = useTls === true;
  if (secure && broker.tlsPort === undefined) throw new Error('broker has no TLS port');
  return connectAsync({
    host: broker.host,
    port: secure ? broker.tlsPort : broker.port,
    protocol: secure ? 'mqtts' : 'mqtt',
    ...(secure ? { ca: broker.caPem } : {}),
    protocolVersion: 5,
    clientId: uniqueId('js'),
    reconnectPeriod: 0,
    connectTimeout: WAIT_MS,
    keepalive: 30,
    ...rest,
  });
}

/** Connects a client and registers it to be closed after the test. */
export async function client(t: TestContext, broker: TestBroker, options: ClientOptions = {}): Promise<MqttClient> {
  return closeAfter(t, await connectClient(broker, options));
}

export interface Received { topic: string; payload: Buffer; packet: IPublishPacket }

/** Collects every message a client receives. */
export class Inbox {
  readonly messages: Received[] = [];

  constructor(mqttClient: MqttClient) {
    mqttClient.on('message', (topic, payload, packet) => { this.messages.push({ topic, payload, packet }); });
  }

  /** Waits until at least `count` messages (optionally matching `filter`) arrived; returns those. */
  async waitForCount(count: number, timeoutMs = WAIT_MS, filter: (m: Received) => boolean = () => true): Promise<Received[]> {
    await waitFor(() => this.messages.filter(filter).length >= count, `${count} message(s)`, timeoutMs);
    return this.messages.filter(filter);
  }

  payloads(): string[] {
    return this.messages.map((m) => m.payload.toString());
  }
}

// ---------------------------------------------------------------------------------------------------
// Raw socket client

/** The result of a CONNACK, SUBACK, PUBACK… whether the v3 (`returnCode`) or v5 (`reasonCode`) field carries it. */
export function codeOf(packet: { reasonCode?: number; returnCode?: number }): number | undefined {
  return packet.reasonCode ?? packet.returnCode;
}

type Cmd = Packet['cmd'];
export type PacketOf<C extends Cmd> = Extract<Packet, { cmd: C }>;

/** A length-prefixed string field from raw bytes (which need not be valid UTF-8). */
export function field(bytes: Buffer | number[] | string): Buffer {
  const b = typeof bytes === 'string' ? Buffer.from(bytes) : Buffer.from(bytes);
  return Buffer.concat([Buffer.from([b.length >> 8, b.length & 0xff]), b]);
}

/** A whole packet: first byte, one-or-more-byte Remaining Length, then the body. */
export function frame(first: number, body: Buffer): Buffer {
  const length: number[] = [];
  let n = body.length;
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 0x80;
    length.push(byte);
  } while (n > 0);
  return Buffer.concat([Buffer.from([first, ...length]), body]);
}

export interface RawOptions {
  protocolVersion?: 3 | 4 | 5;
  useTls?: boolean;
}

/**
 * A socket that sends exactly the bytes it is given and parses whatever comes back. Received packets
 * queue up until a test takes them with `next`.
 */
export class RawClient {
  readonly received: Packet[] = [];
  /** Every byte the broker sent, for replies the parser cannot be trusted with (e.g. unknown versions). */
  bytes = Buffer.alloc(0);
  private readonly queue: Packet[] = [];
  private waiters: (() => void)[] = [];
  readonly protocolVersion: 3 | 4 | 5;
  closed = false;
  parseError: Error | undefined;
  readonly whenClosed: Promise<void>;
  readonly socket: net.Socket;

  private constructor(socket: net.Socket, protocolVersion: 3 | 4 | 5) {
    this.socket = socket;
    this.protocolVersion = protocolVersion;
    const p = parser({ protocolVersion });
    p.on('packet', (packet: Packet) => {
      this.received.push(packet);
      this.queue.push(packet);
      this.wake();
    });
    p.on('error', (error: Error) => { this.parseError = error; this.wake(); });
    socket.on('data', (chunk: Buffer) => {
      this.bytes = Buffer.concat([this.bytes, chunk]);
      p.parse(chunk);
    });
    socket.on('error', () => undefined);
    this.whenClosed = new Promise((resolve) => {
      socket.once('close', () => { this.closed = true; this.wake(); resolve(); });
    });
  }

  /** Opens a TCP (or TLS) connection to the broker; sends nothing. */
  static async open(broker: TestBroker, options: RawOptions = {}): Promise<RawClient> {
    const protocolVersion = options.protocolVersion ?? 5;
    const socket = await withTimeout(new Promise<net.Socket>((resolve, reject) => {
      if (options.useTls) {
        const s = tls.connect({ host: broker.host, port: broker.tlsPort, ca: broker.caPem });
        s.once('secureConnect', () => resolve(s));
        s.once('error', reject);
      } else {
        const s = net.connect({ host: broker.host, port: broker.port });
        s.once('connect', () => resolve(s));
        s.once('error', reject);
      }
    }), WAIT_MS, 'TCP connect');
    socket.setNoDelay(true);
    return new RawClient(socket, protocolVersion);
  }

  /** Opens a connection, sends CONNECT and returns the client with its CONNACK. */
  static async connect(
    broker: TestBroker,
    connect: Partial<IConnectPacket> = {},
    options: RawOptions = {},
  ): Promise<{ raw: RawClient; connack: IConnackPacket }> {
    const raw = await RawClient.open(broker, { ...options, protocolVersion: connect.protocolVersion ?? options.protocolVersion ?? 5 });
    const connack = await raw.handshake(connect);
    return { raw, connack };
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  private lastId = 0;

  /** The next packet identifier (1…65535, wrapping). */
  nextId(): number {
    this.lastId = (this.lastId % 65_535) + 1;
    return this.lastId;
  }

  /** Sends SUBSCRIBE (string filters get `qos`) and waits for the SUBACK, returning its codes. */
  async subscribe(
    subscriptions: string | ISubscription | (string | ISubscription)[],
    qos: QoS = 2,
    properties?: ISubscribePacket['properties'],
  ): Promise<number[]> {
    const list = (Array.isArray(subscriptions) ? subscriptions : [subscriptions])
      .map((s) => (typeof s === 'string' ? { topic: s, qos } : s));
    const messageId = this.nextId();
    this.send({ cmd: 'subscribe', messageId, subscriptions: list, ...(properties ? { properties } : {}) });
    const suback = await this.next('suback', (p) => p.messageId === messageId);
    return suback.granted as number[];
  }

  /**
   * Publishes and completes the QoS flow (PUBACK, or PUBREC → PUBREL → PUBCOMP). Returns the
   * acknowledgement that ends the flow (undefined for QoS 0).
   */
  async publish(
    topic: string,
    payload: string | Buffer,
    options: { qos?: QoS; retain?: boolean; properties?: IPublishPacket['properties']; messageId?: number } = {},
  ): Promise<Packet | undefined> {
    const qos = options.qos ?? 0;
    const messageId = qos > 0 ? options.messageId ?? this.nextId() : undefined;
    this.send({
      cmd: 'publish', topic, payload, qos, dup: false, retain: options.retain ?? false,
      ...(messageId !== undefined ? { messageId } : {}),
      ...(options.properties ? { properties: options.properties } : {}),
    });
    if (qos === 0) return undefined;
    if (qos === 1) return this.next('puback', (p) => p.messageId === messageId);
    const pubrec = await this.next('pubrec', (p) => p.messageId === messageId);
    if ((codeOf(pubrec) ?? 0) >= 0x80) return pubrec;
    this.send({ cmd: 'pubrel', messageId: messageId ?? 0 });
    return this.next('pubcomp', (p) => p.messageId === messageId);
  }

  /** Acknowledges a PUBLISH the broker sent: PUBACK, or PUBREC and (after PUBREL) PUBCOMP. */
  async acknowledge(publish: PacketOf<'publish'>): Promise<void> {
    const messageId = publish.messageId ?? 0;
    if (publish.qos === 1) this.send({ cmd: 'puback', messageId });
    if (publish.qos === 2) {
      this.send({ cmd: 'pubrec', messageId });
      await this.next('pubrel', (p) => p.messageId === messageId);
      this.send({ cmd: 'pubcomp', messageId });
    }
  }

  /** Encodes and sends one packet (for this connection's protocol version). */
  send(packet: Packet): void {
    this.socket.write(generate(packet, { protocolVersion: this.protocolVersion }));
  }

  sendBytes(bytes: Buffer | number[]): void {
    this.socket.write(Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes));
  }

  /** Sends CONNECT (defaults: this protocol version, clean, unique id, keepalive 0) and waits for CONNACK. */
  async handshake(connect: Partial<IConnectPacket> = {}): Promise<IConnackPacket> {
    this.send({
      cmd: 'connect',
      protocolId: this.protocolVersion === 3 ? 'MQIsdp' : 'MQTT',
      protocolVersion: this.protocolVersion,
      clean: true,
      clientId: uniqueId('raw'),
      keepalive: 0,
      ...connect,
    });
    return this.next('connack');
  }

  /**
   * Takes the first queued packet of type `cmd` (and matching `match`), waiting up to `timeoutMs`.
   * Throws if the connection closes or the deadline passes first.
   */
  async next<C extends Cmd>(cmd: C, match: (p: PacketOf<C>) => boolean = () => true, timeoutMs = WAIT_MS): Promise<PacketOf<C>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const index = this.queue.findIndex((p) => p.cmd === cmd && match(p as PacketOf<C>));
      if (index >= 0) return this.queue.splice(index, 1)[0] as PacketOf<C>;
      const seen = this.received.map((p) => p.cmd).join(',') || 'nothing';
      if (this.closed) throw new Error(`connection closed before ${cmd} arrived (received: ${seen})`);
      if (this.parseError) throw new Error(`unparseable reply before ${cmd}: ${this.parseError.message}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no ${cmd} within ${timeoutMs} ms (received: ${seen})`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => { clearTimeout(timer); resolve(); });
      });
    }
  }

  /** Takes every queued packet of type `cmd` that arrives within `ms`. */
  async collect<C extends Cmd>(cmd: C, ms: number): Promise<PacketOf<C>[]> {
    await delay(ms);
    const taken: PacketOf<C>[] = [];
    for (let i = 0; i < this.queue.length;) {
      const p = this.queue[i];
      if (p?.cmd === cmd) { taken.push(p as PacketOf<C>); this.queue.splice(i, 1); } else i += 1;
    }
    return taken;
  }

  /** Resolves when the broker closes the connection; throws if it is still open after `timeoutMs`. */
  async expectClosed(timeoutMs = WAIT_MS): Promise<void> {
    await withTimeout(this.whenClosed, timeoutMs, 'the broker to close the connection');
  }

  /** The DISCONNECT the broker sent before closing, if any (waits for the close first). */
  async closedWith(timeoutMs = WAIT_MS): Promise<PacketOf<'disconnect'> | undefined> {
    await this.expectClosed(timeoutMs);
    return this.received.find((p): p is PacketOf<'disconnect'> => p.cmd === 'disconnect');
  }

  close(): void {
    this.socket.destroy();
  }
}

/**
 * Asserts that the broker closed a v5 connection after sending DISCONNECT with `reasonCode` (or one of
 * several where the spec leaves the choice open).
 *
 * Against the reference: mosquitto 2.0.11 closes the socket without a DISCONNECT after many protocol
 * errors (the spec says SHOULD send, §4.13.1), which is accepted with a diagnostic; where it sends a
 * different reason code than the spec names, the test states that code as `mosquitto`.
 */
export async function expectDisconnect(
  t: TestContext,
  raw: RawClient,
  reasonCode: number | number[],
  options: { mosquitto?: number; timeoutMs?: number } = {},
): Promise<void> {
  const expected = Array.isArray(reasonCode) ? reasonCode : [reasonCode];
  const hex = (n: number): string => `0x${n.toString(16)}`;
  const disconnect = await raw.closedWith(options.timeoutMs ?? WAIT_MS);
  if (isReference && disconnect === undefined) {
    t.diagnostic(`reference closed without DISCONNECT (spec: ${expected.map(hex).join('/')})`);
    return;
  }
  assert.ok(disconnect, `DISCONNECT ${expected.map(hex).join('/')} before the close (received: ${raw.received.map((p) => p.cmd).join(',')})`);
  if (isReference && options.mosquitto !== undefined) {
    t.diagnostic(`reference answered ${hex(disconnect.reasonCode ?? 0)} (spec: ${expected.map(hex).join('/')})`);
    assert.equal(disconnect.reasonCode, options.mosquitto, 'mosquitto\'s known reason code');
    return;
  }
  assert.ok(expected.includes(disconnect.reasonCode ?? 0), `DISCONNECT reason code ${hex(disconnect.reasonCode ?? 0)}, expected ${expected.map(hex).join('/')}`);
}

/** Opens a raw client and closes it after the test. */
export async function rawClient(t: TestContext, broker: TestBroker, connect: Partial<IConnectPacket> = {}, options: RawOptions = {}): Promise<{ raw: RawClient; connack: IConnackPacket }> {
  const result = await RawClient.connect(broker, connect, options);
  closeAfter(t, result.raw);
  return result;
}

// ---------------------------------------------------------------------------------------------------
// Watchdog: a well-behaved pair that must keep working while another connection misbehaves.

/** A subscriber and a publisher on one topic; `check()` proves messages still flow end to end. */
export class Watchdog {
  private sequence = 0;
  readonly subscriber: MqttClient;
  readonly publisher: MqttClient;
  readonly topic: string;
  readonly inbox: Inbox;

  private constructor(subscriber: MqttClient, publisher: MqttClient, topic: string, inbox: Inbox) {
    this.subscriber = subscriber;
    this.publisher = publisher;
    this.topic = topic;
    this.inbox = inbox;
  }

  static async start(t: TestContext, broker: TestBroker): Promise<Watchdog> {
    const topic = uniqueTopic('watch');
    const subscriber = await client(t, broker, { clientId: uniqueId('wsub') });
    const inbox = new Inbox(subscriber);
    await subscriber.subscribeAsync(topic, { qos: 1 });
    const publisher = await client(t, broker, { clientId: uniqueId('wpub') });
    const dog = new Watchdog(subscriber, publisher, topic, inbox);
    await dog.check();
    return dog;
  }

  /** Publishes one QoS 1 message and waits for the subscriber to receive it. */
  async check(timeoutMs = WAIT_MS): Promise<void> {
    this.sequence += 1;
    const payload = `beat-${this.sequence}`;
    await withTimeout(this.publisher.publishAsync(this.topic, payload, { qos: 1 }), timeoutMs, 'watchdog PUBACK');
    await waitFor(() => this.inbox.messages.some((m) => m.payload.toString() === payload), `watchdog message ${payload}`, timeoutMs);
    if (!this.subscriber.connected) throw new Error('watchdog subscriber was disconnected');
  }
}

// ---------------------------------------------------------------------------------------------------
// External commands

export interface CommandResult { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }

/** Runs a command with a deadline (the child is killed by its pid when it passes). */
export function runCommand(command: string, args: string[], options: { timeoutMs?: number; input?: string; env?: NodeJS.ProcessEnv } = {}): Promise<CommandResult> {
  const timeoutMs = options.timeoutMs ?? 5_000;
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env: options.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    const timer = setTimeout(() => { if (child.pid !== undefined) process.kill(child.pid, 'SIGKILL'); }, timeoutMs);
    child.once('error', (error) => { clearTimeout(timer); reject(error); });
    child.once('close', (code, signal) => { clearTimeout(timer); resolve({ code, signal, stdout, stderr }); });
    if (options.input !== undefined) child.stdin.end(options.input);
    else child.stdin.end();
  });
}

/** A long-running command (e.g. mosquitto_sub) whose output can be awaited; killed by pid in `close()`. */
export class Background {
  stdout = '';
  stderr = '';
  exitCode: number | null = null;
  readonly exited: Promise<void>;
  private readonly child;

  constructor(command: string, args: string[]) {
    this.child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child.stdout.setEncoding('utf8').on('data', (d: string) => { this.stdout += d; });
    this.child.stderr.setEncoding('utf8').on('data', (d: string) => { this.stderr += d; });
    this.exited = new Promise((resolve) => {
      this.child.once('close', (code) => { this.exitCode = code; resolve(); });
      this.child.once('error', (error) => { this.stderr += String(error); resolve(); });
    });
  }

  lines(): string[] {
    return this.stdout.split('\n').filter((l) => l.length > 0);
  }

  async close(): Promise<void> {
    if (this.exitCode === null && this.child.pid !== undefined && this.child.exitCode === null) {
      try { process.kill(this.child.pid, 'SIGTERM'); } catch { /* already gone */ }
    }
    await withTimeout(this.exited, 3_000, 'child exit').catch(() => {
      if (this.child.pid !== undefined) process.kill(this.child.pid, 'SIGKILL');
    });
  }
}
