/**
 * The load generator: one Node process that drives one scenario against one broker on 127.0.0.1 and prints
 * one JSON line (a GeneratorResult) on stdout. Packets are built with mqtt-packet, received bytes are split
 * by FrameScanner, and every loop is bounded by a count and by wall time.
 *
 *   node --import tsx bench/generator.ts --scenario qos0-tls --host 127.0.0.1 --port 1883 \
 *     --tls-port 8883 --ca ca.pem --broker-pid 1234 [--warmup 2 --duration 6 --drain 3] [--samples FILE]
 *
 * --samples FILE: a latency scenario also writes every sample there, one `sent_ms latency_ms` line each.
 */
import net from 'node:net';
import tls from 'node:tls';
import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { FrameScanner, PacketType, type FrameHandler } from './frame-scanner.ts';
import {
  connectPacket,
  DISCONNECT,
  publishPayloadStart,
  publishTemplate,
  PUBACK_ID_OFFSET,
  PUBACK_TEMPLATE,
  subscribePacket,
  type PublishTemplate,
} from './packets.ts';
import { machineBusySeconds, processCpuSeconds, processRssKiB } from './proc.ts';
import {
  hardTimeoutSeconds,
  isScenarioName,
  LOAD_KEEPALIVE,
  MAX_BURST,
  PAYLOAD_BYTES,
  SCENARIOS,
  type CpuShare,
  type GeneratorResult,
  type ScenarioName,
  type ScenarioShape,
  type Timing,
} from './scenarios.ts';

/** The generator only ever talks to the local machine. */
export const ONLY_HOST = '127.0.0.1';

const CONNECT_TIMEOUT_MS = 10_000;
const CLOSE_WAIT_MS = 5_000;

interface Target {
  port: number;
  tlsPort: number;
  secureContext: tls.SecureContext;
  brokerPid: number;
}

const noopFrame: FrameHandler = () => undefined;
const noop = (): void => undefined;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Resolves when `done()` holds (checked every 5 ms) or after `timeoutMs`. */
async function waitUntil(done: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() >= deadline) return false;
    await sleep(5);
  }
  return true;
}

/** One client socket with its frame scanner; handlers are swapped as the client moves through its phases. */
class Conn {
  onFrame: FrameHandler = noopFrame;
  afterData: () => void = noop;
  /** hrtime of the latest data event, for latency (every frame of a chunk arrived together). */
  arrivalNs = 0n;
  closed = false;
  /** Set by the writer when write() returned false; cleared on 'drain'. */
  blocked = false;
  onDrain: () => void = noop;
  readonly scanner: FrameScanner;
  readonly sock: net.Socket;

  constructor(sock: net.Socket) {
    this.sock = sock;
    this.scanner = new FrameScanner((header, buf, start, end) => this.onFrame(header, buf, start, end));
    sock.setNoDelay(true);
    sock.on('data', (chunk: Buffer) => {
      this.arrivalNs = process.hrtime.bigint();
      try {
        this.scanner.push(chunk);
      } catch {
        sock.destroy();
        return;
      }
      this.afterData();
    });
    sock.on('drain', () => {
      this.blocked = false;
      this.onDrain();
    });
    sock.on('close', () => {
      this.closed = true;
    });
    sock.on('error', noop); // 'close' follows every error; failures are counted there.
  }

  /** Writes and records backpressure. */
  write(buf: Buffer): void {
    if (!this.sock.write(buf)) this.blocked = true;
  }

  /** Sends DISCONNECT and half-closes; destroys the socket if the broker has not closed it in time. */
  leave(): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.sock.destroy(), CLOSE_WAIT_MS);
      this.sock.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
      this.sock.end(DISCONNECT);
    });
  }
}

let firstTls: GeneratorResult['tls'];

/** --samples FILE (latency scenarios): where every sample is written. */
let samplesPath: string | undefined;

/** Opens a TCP or TLS connection to 127.0.0.1 and completes CONNECT→CONNACK (return code 0). */
function openConn(target: Target, useTls: boolean, clientId: string, keepalive: number): Promise<Conn> {
  return new Promise((resolve, reject) => {
    const sock = useTls
      ? tls.connect({ host: ONLY_HOST, port: target.tlsPort, secureContext: target.secureContext, servername: 'localhost' })
      : net.connect({ host: ONLY_HOST, port: target.port });
    const conn = new Conn(sock);
    let settled = false;
    const fail = (reason: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      reject(new Error(reason));
    };
    const timer = setTimeout(() => fail('no CONNACK within 10 s'), CONNECT_TIMEOUT_MS);
    const onError = (err: Error): void => fail(err.message);
    const onClose = (): void => fail('closed before CONNACK');
    sock.on('error', onError);
    sock.on('close', onClose);
    sock.once(useTls ? 'secureConnect' : 'connect', () => {
      if (useTls && firstTls === undefined) {
        const t = sock as tls.TLSSocket;
        const key = t.getEphemeralKeyInfo() as tls.EphemeralKeyInfo | null;
        firstTls = { protocol: t.getProtocol() ?? '?', cipher: t.getCipher().name, group: key?.name ?? '?' };
      }
      sock.write(connectPacket(clientId, keepalive));
    });
    conn.onFrame = (header, buf, start, end) => {
      if (header >> 4 !== PacketType.CONNACK || end - start < 2) return fail(`expected CONNACK, got packet type ${header >> 4}`);
      const rc = buf[start + 1];
      if (rc !== 0) return fail(`CONNACK return code ${rc}`);
      settled = true;
      clearTimeout(timer);
      sock.off('error', onError);
      sock.off('close', onClose);
      conn.onFrame = noopFrame;
      resolve(conn);
    };
  });
}

/** Sends SUBSCRIBE and waits for a SUBACK that does not refuse it (0x80). */
function subscribe(conn: Conn, topic: string, qos: 0 | 1): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no SUBACK for ${topic} within 10 s`)), CONNECT_TIMEOUT_MS);
    conn.onFrame = (header, buf, start, end) => {
      if (header >> 4 !== PacketType.SUBACK) return;
      clearTimeout(timer);
      conn.onFrame = noopFrame;
      const granted = end - start >= 3 ? buf[start + 2] : 0x80;
      if (granted === 0x80) reject(new Error(`SUBSCRIBE ${topic} refused`));
      else resolve();
    };
    conn.write(subscribePacket(topic, qos, 1));
  });
}

interface PoolOutcome {
  ok: number;
  errors: number;
  firstError?: string;
  /** hrtime when the last task finished. */
  endNs: bigint;
}

/** Runs `count` tasks with at most `inflight` at a time; stops starting new ones at the deadline. */
async function runPool(count: number, inflight: number, deadline: number, task: (i: number) => Promise<void>): Promise<PoolOutcome> {
  const outcome: PoolOutcome = { ok: 0, errors: 0, endNs: 0n };
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count && Date.now() < deadline) {
      const i = next++;
      try {
        await task(i);
        outcome.ok++;
      } catch (err) {
        outcome.errors++;
        outcome.firstError ??= (err as Error).message;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(inflight, count) }, worker));
  outcome.errors += count - next; // never started: deadline reached
  outcome.endNs = process.hrtime.bigint();
  return outcome;
}

interface Snapshot {
  ns: bigint;
  genUs: number;
  brokerS: number;
  machineS: number;
}

function snapshot(brokerPid: number): Snapshot {
  const usage = process.cpuUsage();
  return { ns: process.hrtime.bigint(), genUs: usage.user + usage.system, brokerS: processCpuSeconds(brokerPid), machineS: machineBusySeconds() };
}

function cpuShare(a: Snapshot, b: Snapshot): CpuShare & { brokerSeconds: number } {
  const wall = Number(b.ns - a.ns) / 1e9;
  const broker = b.brokerS - a.brokerS;
  const gen = (b.genUs - a.genUs) / 1e6;
  const other = Math.max(0, b.machineS - a.machineS - broker - gen);
  const pct = (s: number): number => Math.round((1000 * s) / wall) / 10;
  return { wallSeconds: wall, brokerPct: pct(broker), genPct: pct(gen), otherPct: pct(other), brokerSeconds: broker };
}

function publicShare(share: CpuShare & { brokerSeconds: number }): CpuShare {
  const { wallSeconds, brokerPct, genPct, otherPct } = share;
  return { wallSeconds, brokerPct, genPct, otherPct };
}

const round = (value: number, digits: number): number => Number(value.toFixed(digits));

// ---------------------------------------------------------------- storm-tls

async function runStorm(shape: Extract<ScenarioShape, { kind: 'storm' }>, target: Target, deadline: number): Promise<GeneratorResult> {
  const tag = `storm-${process.pid}`;
  const leaving: Array<Promise<void>> = [];
  const connectAndLeave = async (clientId: string): Promise<void> => {
    const conn = await openConn(target, true, clientId, LOAD_KEEPALIVE);
    leaving.push(conn.leave());
  };
  // A short unmeasured round so both JIT-compiled brokers and the generator reach steady state.
  await runPool(shape.warmupConnections, shape.inflight, deadline, (i) => connectAndLeave(`${tag}-w${i}`));
  await Promise.all(leaving.splice(0));

  const s0 = snapshot(target.brokerPid);
  const pool = await runPool(shape.connections, shape.inflight, deadline, (i) => connectAndLeave(`${tag}-${i}`));
  await Promise.all(leaving.splice(0));
  const s1 = snapshot(target.brokerPid);
  const share = cpuShare(s0, s1);
  const seconds = Number(pool.endNs - s0.ns) / 1e9;
  const notes = pool.firstError === undefined ? [] : [`first error: ${pool.firstError}`];
  return {
    scenario: 'storm-tls',
    ok: pool.ok > 0,
    metrics: {
      connects_per_s: round(pool.ok / seconds, 1),
      broker_ms_per_connect: round((1000 * share.brokerSeconds) / Math.max(1, pool.ok), 3),
      errors: pool.errors,
    },
    cpu: publicShare(share),
    notes,
  };
}

// ---------------------------------------------------------------- idle-tls

async function runIdle(shape: Extract<ScenarioShape, { kind: 'idle' }>, target: Target, deadline: number): Promise<GeneratorResult> {
  const conns: Conn[] = [];
  const rssBefore = processRssKiB(target.brokerPid);
  const s0 = snapshot(target.brokerPid);
  const pool = await runPool(shape.connections, shape.inflight, deadline, async (i) => {
    conns.push(await openConn(target, true, `idle-${process.pid}-${i}`, shape.keepalive));
  });
  const s1 = snapshot(target.brokerPid);
  await sleep(shape.idleMs);
  const rssAfter = processRssKiB(target.brokerPid);
  const dropped = conns.filter((c) => c.closed).length;
  await Promise.all(conns.map((c) => c.leave()));
  const share = cpuShare(s0, s1);
  const notes = [`broker RSS ${rssBefore} → ${rssAfter} KiB`];
  if (pool.firstError !== undefined) notes.push(`first error: ${pool.firstError}`);
  if (dropped > 0) notes.push(`${dropped} connections closed by the broker while idle`);
  return {
    scenario: 'idle-tls',
    ok: conns.length > 0,
    metrics: {
      kib_per_conn: round((rssAfter - rssBefore) / Math.max(1, conns.length), 2),
      broker_ms_per_connect: round((1000 * share.brokerSeconds) / Math.max(1, conns.length), 3),
      errors: pool.errors + dropped,
      connected: conns.length,
    },
    cpu: publicShare(share),
    notes,
  };
}

// ---------------------------------------------------------------- publishers

/** A publishing client and the frames it sends. */
class Publisher {
  private nextId = 0;
  /** MAX_BURST copies of a QoS 0 frame, sliced per write (the bytes never change). */
  private readonly burst: Buffer;
  readonly conn: Conn;
  private readonly template: PublishTemplate;
  private readonly qos: 0 | 1;

  constructor(conn: Conn, template: PublishTemplate, qos: 0 | 1) {
    this.conn = conn;
    this.template = template;
    this.qos = qos;
    this.burst = Buffer.concat(Array.from({ length: MAX_BURST }, () => template.frame));
  }

  private packetId(): number {
    this.nextId = this.nextId === 65_535 ? 1 : this.nextId + 1;
    return this.nextId;
  }

  /** Writes `count` (≤ MAX_BURST) frames in one socket write. */
  sendBurst(count: number): void {
    const len = this.template.frame.length;
    if (this.qos === 0) {
      this.conn.write(this.burst.subarray(0, count * len));
      return;
    }
    const out = Buffer.allocUnsafe(count * len);
    for (let j = 0; j < count; j++) {
      this.template.frame.copy(out, j * len);
      out.writeUInt16BE(this.packetId(), j * len + this.template.idOffset);
    }
    this.conn.write(out);
  }

  /** Writes one frame whose payload starts with the current hrtime (ns, big-endian u64). */
  sendStamped(): void {
    const out = Buffer.from(this.template.frame);
    if (this.qos === 1) out.writeUInt16BE(this.packetId(), this.template.idOffset);
    out.writeBigUInt64BE(process.hrtime.bigint(), this.template.payloadOffset);
    this.conn.write(out);
  }
}

async function openPublishers(target: Target, useTls: boolean, count: number, qos: 0 | 1, deadline: number, topic: (i: number) => string): Promise<Publisher[]> {
  const pubs: Publisher[] = [];
  const pool = await runPool(count, count, deadline, async (i) => {
    const conn = await openConn(target, useTls, `pub-${process.pid}-${i}`, LOAD_KEEPALIVE);
    pubs.push(new Publisher(conn, publishTemplate(topic(i), PAYLOAD_BYTES, qos), qos));
  });
  if (pool.errors > 0) throw new Error(`${pool.errors} publishers failed to connect: ${pool.firstError ?? ''}`);
  return pubs;
}

/** Acknowledges QoS 1 deliveries: ids collected while scanning one chunk, flushed in one write. */
class AckBatch {
  private ids: number[] = [];
  add(id: number): void {
    this.ids.push(id);
  }
  flush(conn: Conn): void {
    if (this.ids.length === 0) return;
    const out = Buffer.allocUnsafe(this.ids.length * PUBACK_TEMPLATE.length);
    this.ids.forEach((id, k) => {
      const at = k * PUBACK_TEMPLATE.length;
      PUBACK_TEMPLATE.copy(out, at);
      out.writeUInt16BE(id, at + PUBACK_ID_OFFSET);
    });
    this.ids = [];
    conn.write(out);
  }
}

/** Packet identifier of a received QoS 1 PUBLISH (it follows the topic). */
function receivedPacketId(buf: Buffer, bodyStart: number): number {
  return buf.readUInt16BE(bodyStart + 2 + buf.readUInt16BE(bodyStart));
}

function closeAll(conns: Conn[]): void {
  for (const c of conns) c.sock.destroy();
}

// ---------------------------------------------------------------- qos*-fan-in and fanout

interface FlowState {
  sending: boolean;
  sent: number;
  delivered: number;
}

/** Warm-up, measured window and drain shared by the windowed throughput scenarios. */
async function measureFlow(
  scenario: ScenarioName,
  target: Target,
  timing: Timing,
  flow: FlowState,
  pump: () => void,
  expected: () => number,
  conns: Conn[],
): Promise<GeneratorResult> {
  const backstop = setInterval(pump, 5); // restarts the flow if no data or drain event is pending
  pump();
  await sleep(timing.warmup * 1000);
  const s0 = snapshot(target.brokerPid);
  const d0 = flow.delivered;
  await sleep(timing.duration * 1000);
  const s1 = snapshot(target.brokerPid);
  const d1 = flow.delivered;
  flow.sending = false;
  clearInterval(backstop);
  await waitUntil(() => flow.delivered >= expected(), timing.drain * 1000);
  const share = cpuShare(s0, s1);
  const delivered = d1 - d0;
  const dropped = conns.filter((c) => c.closed).length;
  const notes = dropped > 0 ? [`${dropped} connections closed by the broker during the run`] : [];
  const missing = expected() - flow.delivered;
  if (missing < 0) notes.push(`${-missing} more deliveries than expected (duplicates)`);
  closeAll(conns);
  return {
    scenario,
    ok: delivered > 0 && dropped === 0,
    error: dropped > 0 ? notes[0] : undefined,
    metrics: {
      msgs_per_s: round(delivered / share.wallSeconds, 0),
      broker_us_per_msg: round((1e6 * share.brokerSeconds) / Math.max(1, delivered), 2),
      missing: Math.max(0, missing),
      sent: flow.sent,
    },
    cpu: publicShare(share),
    notes,
  };
}

async function runFanIn(
  scenario: ScenarioName,
  shape: Extract<ScenarioShape, { kind: 'fanin' }>,
  target: Target,
  timing: Timing,
  deadline: number,
): Promise<GeneratorResult> {
  const sub = await openConn(target, shape.tls, `sub-${process.pid}`, LOAD_KEEPALIVE);
  await subscribe(sub, 'bench/#', shape.qos);
  const pubs = await openPublishers(target, shape.tls, shape.publishers, shape.qos, deadline, (i) => `bench/${i}`);
  const flow: FlowState = { sending: true, sent: 0, delivered: 0 };
  let cursor = 0;
  const pump = (): void => {
    if (!flow.sending) return;
    let budget = shape.window - (flow.sent - flow.delivered);
    let skipped = 0;
    while (budget > 0 && skipped < pubs.length) {
      const pub = pubs[cursor]!;
      cursor = (cursor + 1) % pubs.length;
      if (pub.conn.blocked || pub.conn.closed) {
        skipped++;
        continue;
      }
      skipped = 0;
      const count = Math.min(MAX_BURST, budget);
      pub.sendBurst(count);
      flow.sent += count;
      budget -= count;
    }
  };
  const acks = new AckBatch();
  sub.onFrame = (header, buf, start) => {
    if (header >> 4 !== PacketType.PUBLISH) return;
    flow.delivered++;
    if ((header & 0x06) !== 0) acks.add(receivedPacketId(buf, start));
  };
  sub.afterData = () => {
    acks.flush(sub);
    pump();
  };
  for (const pub of pubs) pub.conn.onDrain = pump;
  return measureFlow(scenario, target, timing, flow, pump, () => flow.sent, [sub, ...pubs.map((p) => p.conn)]);
}

async function runFanOut(shape: Extract<ScenarioShape, { kind: 'fanout' }>, target: Target, timing: Timing, deadline: number): Promise<GeneratorResult> {
  const topic = 'bench/fanout';
  const subs: Conn[] = [];
  const pool = await runPool(shape.subscribers, 100, deadline, async (i) => {
    const conn = await openConn(target, shape.tls, `fan-${process.pid}-${i}`, LOAD_KEEPALIVE);
    await subscribe(conn, topic, 0);
    subs.push(conn);
  });
  if (pool.errors > 0) throw new Error(`${pool.errors} subscribers failed: ${pool.firstError ?? ''}`);
  const [pub] = await openPublishers(target, shape.tls, 1, 0, deadline, () => topic);
  if (pub === undefined) throw new Error('publisher failed to connect');
  const fan = subs.length;
  const flow: FlowState = { sending: true, sent: 0, delivered: 0 };
  const pump = (): void => {
    if (!flow.sending) return;
    // Window in published messages: deliveries outstanding, rounded up to whole publishes.
    let budget = shape.window - Math.ceil((flow.sent * fan - flow.delivered) / fan);
    while (budget > 0 && !pub.conn.blocked && !pub.conn.closed) {
      const count = Math.min(MAX_BURST, budget);
      pub.sendBurst(count);
      flow.sent += count;
      budget -= count;
    }
  };
  for (const sub of subs) {
    sub.onFrame = (header) => {
      if (header >> 4 === PacketType.PUBLISH) flow.delivered++;
    };
    sub.afterData = pump;
  }
  pub.conn.onDrain = pump;
  return measureFlow('fanout', target, timing, flow, pump, () => flow.sent * fan, [pub.conn, ...subs]);
}

// ---------------------------------------------------------------- lat*-tls

function percentile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

async function runLatency(
  scenario: ScenarioName,
  shape: Extract<ScenarioShape, { kind: 'latency' }>,
  target: Target,
  timing: Timing,
  deadline: number,
): Promise<GeneratorResult> {
  const sub = await openConn(target, shape.tls, `latsub-${process.pid}`, LOAD_KEEPALIVE);
  await subscribe(sub, 'bench/#', shape.qos);
  const pubs = await openPublishers(target, shape.tls, shape.publishers, shape.qos, deadline, (i) => `bench/${i}`);

  const capacity = Math.ceil(shape.rate * timing.duration * 1.1) + 1000;
  const samples = new Float64Array(capacity);
  let nSamples = 0;
  let delivered = 0;
  let sent = 0;
  let skipped = 0;
  const start = process.hrtime.bigint();
  const t0 = start + BigInt(Math.round(timing.warmup * 1e9));
  const t1 = t0 + BigInt(Math.round(timing.duration * 1e9));
  let windowDelivered = 0;
  /** Send time of each sample, ms after the window opened (for --samples). */
  const sentAt = samplesPath === undefined ? undefined : new Float64Array(capacity);

  const acks = new AckBatch();
  sub.onFrame = (header, buf, bodyStart, bodyEnd) => {
    if (header >> 4 !== PacketType.PUBLISH) return;
    delivered++;
    if ((header & 0x06) !== 0) acks.add(receivedPacketId(buf, bodyStart));
    const at = publishPayloadStart(header, buf, bodyStart, bodyEnd);
    if (at < 0 || bodyEnd - at < 8) return;
    const stamp = buf.readBigUInt64BE(at);
    if (stamp >= t0 && stamp < t1) {
      windowDelivered++;
      if (nSamples < capacity) {
        if (sentAt !== undefined) sentAt[nSamples] = Number(stamp - t0) / 1e6;
        samples[nSamples++] = Number(sub.arrivalNs - stamp) / 1e6;
      }
    }
  };
  sub.afterData = () => acks.flush(sub);

  // Paced open loop with evenly spaced sends (one every 1/rate s, publishers in turn). The loop re-arms
  // itself with setImmediate, so the event loop polls without sleeping: a send goes out on its schedule
  // rather than in a burst per timer tick, and a delivery is stamped on the loop turn it arrives in
  // instead of after the rest of a burst has been written (which put the generator's own send time into
  // every sample). The generator's core is therefore busy for the whole run; its CPU share is reported.
  // A backlog beyond 100 ms (generator starved of CPU) is skipped, not burst, and reported.
  const maxBacklog = Math.ceil(shape.rate / 10);
  let cursor = 0;
  let s0: Snapshot | undefined;
  await new Promise<void>((resolve) => {
    const tick = (): void => {
      const now = process.hrtime.bigint();
      if (s0 === undefined && now >= t0) s0 = snapshot(target.brokerPid);
      if (now >= t1) {
        resolve();
        return;
      }
      let due = Math.floor((Number(now - start) * shape.rate) / 1e9) - sent - skipped;
      if (due > maxBacklog) {
        skipped += due - maxBacklog;
        due = maxBacklog;
      }
      for (; due > 0; due--) {
        const pub = pubs[cursor]!;
        cursor = (cursor + 1) % pubs.length;
        if (pub.conn.closed) continue;
        pub.sendStamped();
        sent++;
      }
      setImmediate(tick);
    };
    setImmediate(tick);
  });
  const s1 = snapshot(target.brokerPid);
  s0 ??= s1;
  await waitUntil(() => delivered >= sent, timing.drain * 1000);
  const share = cpuShare(s0, s1);
  if (samplesPath !== undefined && sentAt !== undefined) {
    const lines: string[] = ['# sent_ms latency_ms (sent: ms after the measured window opened)'];
    for (let i = 0; i < nSamples; i++) lines.push(`${sentAt[i]!.toFixed(3)} ${samples[i]!.toFixed(4)}`);
    writeFileSync(samplesPath, `${lines.join('\n')}\n`);
  }
  const sorted = samples.subarray(0, nSamples).sort();
  let over = 0;
  for (let i = nSamples - 1; i >= 0 && sorted[i]! > 0.2; i--) over++;
  const conns = [sub, ...pubs.map((p) => p.conn)];
  const dropped = conns.filter((c) => c.closed).length;
  const notes: string[] = [`${nSamples} latency samples`];
  if (skipped > 0) notes.push(`${skipped} messages skipped: generator fell more than 100 ms behind schedule`);
  if (dropped > 0) notes.push(`${dropped} connections closed by the broker during the run`);
  closeAll(conns);
  return {
    scenario,
    ok: nSamples > 0 && dropped === 0,
    error: dropped > 0 ? notes.at(-1) : undefined,
    metrics: {
      p50_ms: round(percentile(sorted, 0.5), 3),
      p99_ms: round(percentile(sorted, 0.99), 3),
      p999_ms: round(percentile(sorted, 0.999), 3),
      over_200us_pct: round((100 * over) / Math.max(1, nSamples), 3),
      broker_us_per_msg: round((1e6 * share.brokerSeconds) / Math.max(1, windowDelivered), 2),
      lost: Math.max(0, sent - delivered),
      msgs_per_s: round(windowDelivered / timing.duration, 0),
      skipped,
    },
    cpu: publicShare(share),
    notes,
  };
}

// ---------------------------------------------------------------- entry

async function runScenario(name: ScenarioName, target: Target, timing: Timing): Promise<GeneratorResult> {
  const { shape } = SCENARIOS[name];
  const deadline = Date.now() + (hardTimeoutSeconds(shape, timing) - 10) * 1000;
  switch (shape.kind) {
    case 'storm':
      return runStorm(shape, target, deadline);
    case 'idle':
      return runIdle(shape, target, deadline);
    case 'fanin':
      return runFanIn(name, shape, target, timing, deadline);
    case 'fanout':
      return runFanOut(shape, target, timing, deadline);
    case 'latency':
      return runLatency(name, shape, target, timing, deadline);
  }
}

function emit(result: GeneratorResult): void {
  if (result.tls === undefined && firstTls !== undefined) result.tls = firstTls;
  process.stdout.write(`${JSON.stringify(result)}\n`, () => process.exit(result.ok ? 0 : 1));
}

function fatal(message: string, code: number): never {
  process.stderr.write(`generator: ${message}\n`);
  process.exit(code);
}

function main(): void {
  const { values } = parseArgs({
    options: {
      scenario: { type: 'string' },
      host: { type: 'string', default: ONLY_HOST },
      port: { type: 'string' },
      'tls-port': { type: 'string' },
      ca: { type: 'string' },
      'broker-pid': { type: 'string' },
      warmup: { type: 'string', default: '2' },
      duration: { type: 'string', default: '6' },
      drain: { type: 'string', default: '3' },
      samples: { type: 'string' },
    },
  });
  samplesPath = values.samples;
  if (values.host !== ONLY_HOST) fatal(`refusing to target ${values.host}: only ${ONLY_HOST} is allowed`, 2);
  const name = values.scenario ?? '';
  if (!isScenarioName(name)) fatal(`unknown --scenario '${name}'`, 2);
  const port = Number(values.port);
  const tlsPort = Number(values['tls-port']);
  const brokerPid = Number(values['broker-pid']);
  if (!Number.isInteger(port) || !Number.isInteger(tlsPort) || !Number.isInteger(brokerPid) || values.ca === undefined) {
    fatal('--port, --tls-port, --ca and --broker-pid are required', 2);
  }
  const timing: Timing = { warmup: Number(values.warmup), duration: Number(values.duration), drain: Number(values.drain) };
  if (![timing.warmup, timing.duration, timing.drain].every((s) => Number.isFinite(s) && s >= 0 && s <= 600) || timing.duration <= 0) {
    fatal('--warmup/--duration/--drain must be seconds in [0, 600] (duration > 0)', 2);
  }
  // TLS 1.3 with X25519 only, a fresh context shared by all clients, and no session given: every connect is a full handshake.
  const secureContext = tls.createSecureContext({ ca: readFileSync(values.ca), minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3', ecdhCurve: 'X25519' });
  const target: Target = { port, tlsPort, secureContext, brokerPid };

  const hardTimeout = setTimeout(() => {
    emit({ scenario: name, ok: false, error: 'generator hard timeout', metrics: {}, cpu: null, notes: [] });
  }, hardTimeoutSeconds(SCENARIOS[name].shape, timing) * 1000);
  runScenario(name, target, timing).then(
    (result) => {
      clearTimeout(hardTimeout);
      emit(result);
    },
    (err: unknown) => {
      clearTimeout(hardTimeout);
      emit({ scenario: name, ok: false, error: err instanceof Error ? err.message : String(err), metrics: {}, cpu: null, notes: [] });
    },
  );
}

main();
