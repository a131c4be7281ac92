/**
 * Bounded fuzz of the packet parser through real sockets: random bytes and mutated real frames (bit
 * flips, truncations, changed lengths, inserted and deleted bytes, odd write splits of CONNECT,
 * PUBLISH, SUBSCRIBE… frames). A fixed-seed PRNG makes every run the same cases
 * (`GATEHOUSE_FUZZ_SEED` / `GATEHOUSE_FUZZ_CASES` change them). Throughout, a well-behaved MQTT.js
 * subscriber must keep receiving a publisher's messages; afterwards the broker must still accept
 * clients, and the engine must not hold connections or sessions it should have dropped.
 *
 * To reproduce one case: `GATEHOUSE_FUZZ_SEED=<seed> GATEHOUSE_FUZZ_ONLY=<index>` runs just that case
 * and prints its bytes.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';
import { generate, parser, type Packet } from 'mqtt-packet';
import { startTestBroker, type TestBroker } from '../harness/broker.ts';
import { RawClient, Watchdog, closeAfter, delay, waitFor, withTimeout } from '../conformance/helpers.ts';

const SEED = Number(process.env.GATEHOUSE_FUZZ_SEED ?? 0x6a7e) >>> 0;
const CASES = Number(process.env.GATEHOUSE_FUZZ_CASES ?? 2_000);
const ONLY = process.env.GATEHOUSE_FUZZ_ONLY === undefined ? undefined : Number(process.env.GATEHOUSE_FUZZ_ONLY);
const PARALLEL = 8;
/** How long one case's socket stays open waiting for the broker to answer or close. */
const CASE_WINDOW_MS = 25;
const WATCHDOG_EVERY = 100;

/** mulberry32: small, fast, and the same sequence everywhere for one seed. */
function prng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

class Random {
  private readonly next: () => number;
  constructor(seed: number) { this.next = prng(seed); }
  int(maxExclusive: number): number { return Math.floor(this.next() * maxExclusive); }
  chance(p: number): boolean { return this.next() < p; }
  pick<T>(items: readonly T[]): T { return items[this.int(items.length)] as T; }
  bytes(n: number): Buffer { return Buffer.from(Array.from({ length: n }, () => this.int(256))); }
}

type Version = 4 | 5;

function connectFrame(version: Version, id: number, rnd: Random): Buffer {
  const will = rnd.chance(0.4)
    ? { topic: `fuzz/will/${id}`, payload: Buffer.from('w'), qos: rnd.pick([0, 1, 2] as const), retain: false,
      ...(version === 5 ? { properties: { willDelayInterval: 0, contentType: 'text/plain', userProperties: { k: 'v' } } } : {}) }
    : undefined;
  return generate({
    cmd: 'connect', protocolId: 'MQTT', protocolVersion: version, clean: true, clientId: `fz${id}`, keepalive: 30,
    ...(rnd.chance(0.3) ? { username: 'user', password: Buffer.from('pw') } : {}),
    ...(will ? { will } : {}),
    ...(version === 5 ? { properties: { receiveMaximum: 10, maximumPacketSize: 65_536, topicAliasMaximum: 4, userProperties: { a: 'b' } } } : {}),
  }, { protocolVersion: version });
}

/** One real frame of a packet a client may send after CONNECT. */
function followUpFrame(version: Version, rnd: Random): Buffer {
  const v5 = version === 5;
  const messageId = 1 + rnd.int(65_535);
  const packets: Packet[] = [
    { cmd: 'publish', topic: `fuzz/t/${rnd.int(10)}`, payload: rnd.bytes(rnd.int(40)), qos: 0, dup: false, retain: false },
    { cmd: 'publish', topic: 'fuzz/q', payload: Buffer.from('x'), qos: rnd.pick([1, 2] as const), dup: false, retain: rnd.chance(0.2), messageId,
      ...(v5 ? { properties: { messageExpiryInterval: 60, topicAlias: 1, userProperties: { u: 'p' }, contentType: 'a/b', correlationData: Buffer.from([1]) } } : {}) },
    { cmd: 'subscribe', messageId, subscriptions: [{ topic: 'fuzz/+/x', qos: 1, ...(v5 ? { nl: true, rap: true, rh: 1 } : {}) }, { topic: 'fuzz/#', qos: 2 }],
      ...(v5 ? { properties: { subscriptionIdentifier: 1 + rnd.int(1_000) } } : {}) },
    { cmd: 'unsubscribe', messageId, unsubscriptions: ['fuzz/#', 'fuzz/+/x'] },
    { cmd: 'pubrel', messageId, ...(v5 ? { reasonCode: 0 } : {}) },
    { cmd: 'puback', messageId, ...(v5 ? { reasonCode: 0x10 } : {}) },
    { cmd: 'pubrec', messageId },
    { cmd: 'pubcomp', messageId },
    { cmd: 'pingreq' },
    { cmd: 'disconnect', ...(v5 ? { reasonCode: 0x04, properties: { reasonString: 'bye' } } : {}) },
    ...(v5 ? [{ cmd: 'auth', reasonCode: 0x19, properties: { authenticationMethod: 'x' } } as Packet] : []),
  ];
  return generate(rnd.pick(packets), { protocolVersion: version });
}

/** A damaged copy of `frame`: one to three mutations. */
function mutate(frame: Buffer, rnd: Random): Buffer {
  let b = Buffer.from(frame);
  for (let n = 1 + rnd.int(3); n > 0; n -= 1) {
    switch (rnd.int(7)) {
      case 0: { // flip a few bits
        for (let i = 1 + rnd.int(4); i > 0 && b.length > 0; i -= 1) {
          const at = rnd.int(b.length);
          b[at] = (b[at] ?? 0) ^ (1 << rnd.int(8));
        }
        break;
      }
      case 1: b = b.subarray(0, rnd.int(b.length + 1)); break; // truncate
      case 2: { // change the Remaining Length (first length byte) to something else
        if (b.length > 1) b[1] = rnd.pick([0x00, 0x01, 0x7f, 0xff, ((b[1] ?? 0) + 1) & 0xff, ((b[1] ?? 0) - 1) & 0xff, rnd.int(256)]);
        break;
      }
      case 3: { // insert random bytes
        const at = rnd.int(b.length + 1);
        b = Buffer.concat([b.subarray(0, at), rnd.bytes(1 + rnd.int(8)), b.subarray(at)]);
        break;
      }
      case 4: { // delete a slice
        const at = rnd.int(b.length + 1);
        b = Buffer.concat([b.subarray(0, at), b.subarray(at + 1 + rnd.int(6))]);
        break;
      }
      case 5: if (b.length > 0) b[0] = rnd.int(256); break; // another packet type / flags
      default: { // a string length field pointing past the end
        if (b.length > 4) b[2 + rnd.int(b.length - 3)] = 0xff;
      }
    }
  }
  return b;
}

/** Splits `bytes` into 1–4 writes so partial frames reach the parser. */
function split(bytes: Buffer, rnd: Random): Buffer[] {
  const chunks: Buffer[] = [];
  let rest = bytes;
  for (let n = rnd.int(4); n > 0 && rest.length > 1; n -= 1) {
    const at = 1 + rnd.int(rest.length - 1);
    chunks.push(rest.subarray(0, at));
    rest = rest.subarray(at);
  }
  chunks.push(rest);
  return chunks;
}

interface FuzzCase { chunks: Buffer[]; connect: Buffer | null; version: Version }

function makeCase(id: number, rnd: Random): FuzzCase {
  const version: Version = rnd.chance(0.5) ? 5 : 4;
  const valid = connectFrame(version, id, rnd);
  const kind = rnd.int(20);
  let bytes: Buffer;
  let connect: Buffer | null = valid;
  if (kind < 4) { bytes = rnd.bytes(1 + rnd.int(256)); connect = null; } // noise
  else if (kind < 9) { bytes = mutate(valid, rnd); connect = bytes; } // a damaged CONNECT
  else if (kind < 17) { // a valid CONNECT, then damaged follow-ups
    const tail = Array.from({ length: 1 + rnd.int(3) }, () => (rnd.chance(0.7) ? mutate(followUpFrame(version, rnd), rnd) : followUpFrame(version, rnd)));
    bytes = Buffer.concat([valid, ...tail]);
  } else { bytes = Buffer.concat([valid, rnd.bytes(1 + rnd.int(64))]); } // a valid CONNECT, then noise
  return { chunks: split(bytes, rnd), connect, version };
}

/** Whether an accepted CONNECT (as the broker would read it) asks for a session that outlives the connection. */
function persistent(c: FuzzCase): boolean {
  if (c.connect === null) return true; // unknown: allow for it
  let result = true;
  const p = parser({ protocolVersion: c.version });
  p.on('packet', (packet: Packet) => {
    if (packet.cmd !== 'connect') return;
    result = packet.protocolVersion === 5 ? (packet.properties?.sessionExpiryInterval ?? 0) > 0 : packet.clean === false;
  });
  p.on('error', () => undefined);
  try { p.parse(c.connect); } catch { /* stays "unknown" */ }
  return result;
}

/** Sends one case on its own socket; returns whether the broker accepted its CONNECT. */
async function runCase(broker: TestBroker, c: FuzzCase): Promise<boolean> {
  const socket = net.connect({ host: broker.host, port: broker.port });
  socket.setNoDelay(true);
  socket.on('error', () => undefined);
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  let reply = Buffer.alloc(0);
  socket.on('data', (d: Buffer) => { reply = Buffer.concat([reply, d]); });
  try {
    await withTimeout(new Promise<void>((resolve, reject) => {
      socket.once('connect', () => resolve());
      socket.once('error', reject);
    }), 2_000, 'fuzz socket connect');
    for (const chunk of c.chunks) socket.write(chunk);
    await Promise.race([closed, delay(CASE_WINDOW_MS)]);
  } finally {
    socket.destroy();
  }
  await closed;
  return reply.length >= 4 && reply[0] === 0x20 && reply[3] === 0x00;
}

test('parser fuzz: random and mutated frames never take the broker down or starve a well-behaved client', { timeout: 60_000 }, async (t) => {
  const broker = await startTestBroker({ maxPacketSize: 64 * 1024 });
  t.after(() => broker.close());
  const dog = await Watchdog.start(t, broker);
  const rnd = new Random(SEED);
  let cases = Array.from({ length: ONLY === undefined ? CASES : ONLY + 1 }, (_, i) => makeCase(i, rnd));
  if (ONLY !== undefined) {
    cases = cases.slice(ONLY);
    t.diagnostic(`case ${ONLY} (v${cases[0]?.version}): ${cases[0]?.chunks.map((c) => c.toString('hex')).join(' | ')}`);
  }
  t.diagnostic(`seed 0x${SEED.toString(16)}, ${cases.length} cases`);

  let next = 0;
  let accepted = 0;
  let persistentAllowance = 0;
  let checks = 0;
  const started = Date.now();
  const worker = async (): Promise<void> => {
    while (next < cases.length) {
      const index = next;
      next += 1;
      const c = cases[index] as FuzzCase;
      if (await runCase(broker, c)) {
        accepted += 1;
        if (persistent(c)) persistentAllowance += 1;
      }
      if (index % WATCHDOG_EVERY === WATCHDOG_EVERY - 1) {
        await dog.check(3_000).catch((error: unknown) => {
          throw new Error(`well-behaved client stopped receiving after case ${index}: ${String(error)}`);
        });
        checks += 1;
      }
    }
  };
  await Promise.all(Array.from({ length: PARALLEL }, worker));
  t.diagnostic(`${cases.length} cases in ${Date.now() - started} ms; ${accepted} CONNECTs accepted; ${checks} watchdog checks`);

  await dog.check(3_000);
  const { raw, connack } = await RawClient.connect(broker, {});
  closeAfter(t, raw);
  assert.equal(connack.reasonCode, 0, 'a new client is still accepted');
  raw.close();

  const engine = broker.engine;
  if (engine === undefined) {
    t.diagnostic('reference broker: no session/connection counts to check');
    return;
  }
  // Only the watchdog's two clients remain connected once every fuzz socket is closed.
  await waitFor(() => engine.connectionCount === 2, `connections back to 2 (now ${engine.connectionCount})`, 5_000);
  assert.ok(engine.sessionCount <= 2 + persistentAllowance,
    `sessions ${engine.sessionCount} > 2 watchdog + ${persistentAllowance} persistent fuzz sessions`);
});
