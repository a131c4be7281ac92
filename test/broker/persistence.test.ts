/** Retained messages and persistent sessions survive a restart of the engine (SQLite store). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import mqtt from 'mqtt';
import { Broker, listen, type Listener, type PersistenceBatch } from '../../src/broker/index.ts';
import { prepareBrokerState } from '../../src/storage/sqlite-broker-store.ts';
import { SqliteStateStores } from '../../src/storage/sqlite-state-stores.ts';

interface Engine { broker: Broker; listener: Listener; stores: SqliteStateStores; db: BetterSqlite3.Database }

/** The engine on the state file as the product runs it (writes on the writer's thread); `db` reads the file for the test. */
async function startEngine(file: string, port = 0): Promise<Engine> {
  const stores = new SqliteStateStores(file);
  const broker = new Broker({ persistence: stores.open('gw1') });
  await broker.restore();
  const listener = await listen(broker, { host: '127.0.0.1', port });
  return { broker, listener, stores, db: new BetterSqlite3(file, { readonly: true }) };
}

async function stopEngine(e: Engine): Promise<void> {
  await e.broker.close();
  await e.listener.close();
  await e.stores.close();
  e.db.close();
}

test('[MQTT-3.1.2-5] [MQTT-4.4.0-1] sessions, queued QoS 1/2 messages and retained messages survive a restart', { timeout: 20_000 }, async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'gh-persist-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'state.db');

  let engine = await startEngine(file);
  const url = () => `mqtt://127.0.0.1:${engine.listener.port}`;
  // A persistent v5 subscriber and a v3.1.1 clean-session=0 subscriber, both then offline.
  const sub5 = await mqtt.connectAsync(url(), { protocolVersion: 5, clientId: 'keeper5', clean: false, properties: { sessionExpiryInterval: 3600 } });
  await sub5.subscribeAsync('fleet/#', { qos: 2 });
  await sub5.endAsync();
  const sub3 = await mqtt.connectAsync(url(), { protocolVersion: 4, clientId: 'keeper3', clean: false });
  await sub3.subscribeAsync('fleet/+/temp', { qos: 1 });
  await sub3.endAsync();

  const pub = await mqtt.connectAsync(url(), { protocolVersion: 4 });
  await pub.publishAsync('fleet/a/temp', '21', { qos: 1 });
  await pub.publishAsync('fleet/b/temp', '22', { qos: 2 });
  await pub.publishAsync('fleet/config', 'v7', { qos: 1, retain: true });
  await pub.endAsync();

  await stopEngine(engine);
  engine = await startEngine(file);
  t.after(() => stopEngine(engine));

  // Listen before CONNACK: the stored messages follow it in the same read.
  const resume = async (clientId: string, protocolVersion: 4 | 5, got: string[]): Promise<mqtt.MqttClient> => {
    const client = mqtt.connect(url(), {
      protocolVersion, clientId, clean: false, reconnectPeriod: 0,
      ...(protocolVersion === 5 ? { properties: { sessionExpiryInterval: 3600 } } : {}),
    });
    t.after(() => client.end(true));
    client.on('message', (topic, payload) => got.push(`${topic}=${payload.toString()}`));
    await new Promise((resolve, reject) => client.once('connect', resolve).once('error', reject));
    return client;
  };
  const got5: string[] = [];
  const again5 = await resume('keeper5', 5, got5);
  const got3: string[] = [];
  const again3 = await resume('keeper3', 4, got3);
  const deadline = Date.now() + 5000;
  while ((got5.length < 3 || got3.length < 2) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  assert.equal(again5.connected && again3.connected, true);
  assert.deepEqual(got5.sort(), ['fleet/a/temp=21', 'fleet/b/temp=22', 'fleet/config=v7']);
  assert.deepEqual(got3.sort(), ['fleet/a/temp=21', 'fleet/b/temp=22']);

  // The retained message is still there for a new subscriber.
  const fresh = await mqtt.connectAsync(url(), { protocolVersion: 4 });
  const retained = new Promise<string>((resolve) => fresh.on('message', (_t, p, packet) => packet.retain && resolve(p.toString())));
  await fresh.subscribeAsync('fleet/config');
  assert.equal(await retained, 'v7');
  await Promise.all([again5.endAsync(), again3.endAsync(), fresh.endAsync()]);

  // Delivered and acknowledged messages are gone from the store; sessions stay.
  await new Promise((r) => setTimeout(r, 50));
  const rows = engine.db.prepare('SELECT count(*) AS n FROM mqtt_session_messages').get() as { n: number };
  assert.equal(rows.n, 0);
  const sessions = engine.db.prepare('SELECT client_id FROM mqtt_sessions ORDER BY client_id').all() as { client_id: string }[];
  assert.deepEqual(sessions.map((s) => s.client_id), ['keeper3', 'keeper5']);
});

test('subscriptions are journaled one row each: a SUBSCRIBE writes what it changed, not the session\'s other filters', { timeout: 30_000 }, async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'gh-persist-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const stores = new SqliteStateStores(path.join(dir, 'state.db'));
  const db = new BetterSqlite3(path.join(dir, 'state.db'), { readonly: true });
  t.after(async () => { await stores.close(); db.close(); });
  const store = stores.open('gw1');
  const batches: PersistenceBatch[] = [];
  const broker = new Broker({ persistence: { load: () => store.load(), write: (b) => { batches.push(b); return store.write(b); } } });
  await broker.restore();
  const listener = await listen(broker, { host: '127.0.0.1', port: 0 });
  t.after(async () => { await broker.close(); await listener.close(); });
  const c = await mqtt.connectAsync(`mqtt://127.0.0.1:${listener.port}`, { clientId: 'many-filters', clean: false, reconnectPeriod: 0 });
  t.after(() => c.end(true));
  for (let i = 0; i < 300; i += 100) await c.subscribeAsync(Array.from({ length: 100 }, (_, j) => `f/${i + j}/#`), { qos: 1 });
  batches.length = 0;
  await c.subscribeAsync('one/more', { qos: 1 });
  await c.unsubscribeAsync('f/0/#');
  const written = batches.reduce((n, b) => n + [...b.subscriptions.values()].reduce((m, subs) => m + subs.size, 0), 0);
  assert.equal(written, 2, 'one row added, one removed: the other 299 filters are not rewritten');
  for (const b of batches) for (const s of b.sessions.values()) assert.deepEqual(s?.subscriptions ?? [], [], 'no filters inside the session row');
  const rows = db.prepare("SELECT raw FROM mqtt_subscriptions WHERE client_id = 'many-filters'").all() as { raw: string }[];
  assert.equal(rows.length, 300);
  assert.ok(rows.some((r) => r.raw === 'one/more') && !rows.some((r) => r.raw === 'f/0/#'));
});

test('state written with filters inside the session row (before rows of their own) is moved into rows at load', { timeout: 20_000 }, async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'gh-persist-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'state.db');
  const old = new BetterSqlite3(file);
  prepareBrokerState(old); // creates the tables
  const legacy = [{ raw: 'legacy/#', qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0 }];
  old.prepare('INSERT INTO mqtt_sessions (gateway_id, client_id, expiry_interval, disconnected_at, subscriptions, incoming_qos2) VALUES (?, ?, ?, ?, ?, ?)')
    .run('gw1', 'old-client', 3600, Date.now(), JSON.stringify(legacy), '[]');
  old.close();
  const engine = await startEngine(file);
  t.after(() => stopEngine(engine));
  assert.deepEqual([...engine.broker.getSession('old-client')!.subscriptions.keys()], ['legacy/#']);
  assert.equal((engine.db.prepare("SELECT subscriptions FROM mqtt_sessions WHERE client_id = 'old-client'").get() as { subscriptions: string }).subscriptions, '[]');
  assert.equal((engine.db.prepare("SELECT count(*) AS n FROM mqtt_subscriptions WHERE client_id = 'old-client'").get() as { n: number }).n, 1);
});

test('[MQTT-3.1.2-4] a clean start of a stored session leaves none of the old filters in the store', { timeout: 20_000 }, async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'gh-persist-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'state.db');
  let engine = await startEngine(file);
  const url = () => `mqtt://127.0.0.1:${engine.listener.port}`;
  const first = await mqtt.connectAsync(url(), { protocolVersion: 5, clientId: 'restarter', clean: false, properties: { sessionExpiryInterval: 3600 }, reconnectPeriod: 0 });
  await first.subscribeAsync(['old/a', 'old/b'], { qos: 1 });
  await first.endAsync();
  const again = await mqtt.connectAsync(url(), { protocolVersion: 5, clientId: 'restarter', clean: true, properties: { sessionExpiryInterval: 3600 }, reconnectPeriod: 0 });
  await again.subscribeAsync('new/c', { qos: 1 });
  await again.endAsync();
  await stopEngine(engine);
  engine = await startEngine(file);
  t.after(() => stopEngine(engine));
  assert.deepEqual([...engine.broker.getSession('restarter')!.subscriptions.keys()], ['new/c']);
});

test('retained payloads stay on disk after a restart: none is loaded at start, a new subscriber gets each whole, memory holds the cache only', { timeout: 30_000 }, async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'gh-persist-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'state.db');
  let engine = await startEngine(file);
  // 12 × 900 KiB: under the engine's 1 MiB packet limit, past its 8 MiB cache of retained payloads together.
  const payloads = Array.from({ length: 12 }, (_, i) => Buffer.alloc(900 * 1024, i + 1));
  // A live subscriber too: each frame arrives in many socket reads and is joined in shared memory (framer.ts),
  // written to disk from there and sent on from there.
  const live = await mqtt.connectAsync(`mqtt://127.0.0.1:${engine.listener.port}`, { clientId: 'big-live', reconnectPeriod: 0 });
  const heard = new Map<string, Buffer>();
  const heardAll = new Promise<void>((resolve) => live.on('message', (topic, payload) => {
    heard.set(topic, payload);
    if (heard.size === payloads.length) resolve();
  }));
  await live.subscribeAsync('big/#', { qos: 1 });
  const pub = await mqtt.connectAsync(`mqtt://127.0.0.1:${engine.listener.port}`, { clientId: 'big-pub', reconnectPeriod: 0 });
  for (const [i, p] of payloads.entries()) await pub.publishAsync(`big/${i}`, p, { qos: 1, retain: true });
  await pub.endAsync();
  await heardAll;
  for (const [i, p] of payloads.entries()) assert.ok(heard.get(`big/${i}`)?.equals(p), `big/${i} whole to the live subscriber`);
  await live.endAsync();
  // Written and acknowledged: past the 8 MiB cache, the oldest left memory already.
  assert.ok(engine.broker.retained.cachedBytes <= 8 * 1024 * 1024, `cached ${engine.broker.retained.cachedBytes}`);
  await stopEngine(engine);

  engine = await startEngine(file);
  t.after(() => stopEngine(engine));
  assert.equal(engine.broker.retained.size, 12);
  assert.equal(engine.broker.retained.bytes, 10 * (900 * 1024 + 'big/0'.length) + 2 * (900 * 1024 + 'big/10'.length));
  assert.equal(engine.broker.retained.cachedBytes, 0, 'no payload was loaded at start');
  const sub = await mqtt.connectAsync(`mqtt://127.0.0.1:${engine.listener.port}`, { clientId: 'big-sub', reconnectPeriod: 0 });
  t.after(() => sub.end(true));
  const got = new Map<string, Buffer>();
  const all = new Promise<void>((resolve) => sub.on('message', (topic, payload, packet) => {
    assert.equal(packet.retain, true);
    got.set(topic, payload);
    if (got.size === payloads.length) resolve();
  }));
  await sub.subscribeAsync('big/#', { qos: 1 });
  await all;
  for (const [i, p] of payloads.entries()) assert.ok(got.get(`big/${i}`)?.equals(p), `big/${i} whole`);
  assert.equal(engine.broker.retained.reads, 12, 'each payload read back once');
  assert.ok(engine.broker.retained.cachedBytes <= 8 * 1024 * 1024);
});

test('[MQTT-3.3.2-5] an expired retained message leaves the disk too, asked for or not, and one expired while the process was down goes at start', { timeout: 30_000 }, async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'gh-persist-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'state.db');
  let engine = await startEngine(file);
  let running = true;
  t.after(async () => { if (running) await stopEngine(engine); });
  const rows = (): string[] => (engine.db.prepare('SELECT topic FROM mqtt_retained ORDER BY topic').pluck().all() as string[]);
  const pub = await mqtt.connectAsync(`mqtt://127.0.0.1:${engine.listener.port}`, { clientId: 'exp-pub', protocolVersion: 5, reconnectPeriod: 0 });
  // Before: the index let go of an expired message and its bytes, the row stayed (disk no limit counted).
  await pub.publishAsync('exp/asked', Buffer.alloc(1000, 1), { qos: 1, retain: true, properties: { messageExpiryInterval: 1 } });
  await pub.publishAsync('exp/unasked', Buffer.alloc(1000, 2), { qos: 1, retain: true, properties: { messageExpiryInterval: 1 } });
  await pub.publishAsync('exp/later', Buffer.alloc(1000, 3), { qos: 1, retain: true, properties: { messageExpiryInterval: 3 } });
  await pub.publishAsync('keep', Buffer.alloc(1000, 4), { qos: 1, retain: true });
  await pub.endAsync();
  assert.deepEqual(rows(), ['exp/asked', 'exp/later', 'exp/unasked', 'keep']);
  await new Promise((r) => setTimeout(r, 1_100));
  const sub = await mqtt.connectAsync(`mqtt://127.0.0.1:${engine.listener.port}`, { clientId: 'exp-sub', reconnectPeriod: 0 });
  const got: string[] = [];
  sub.on('message', (topic) => got.push(topic));
  await sub.subscribeAsync('exp/asked', { qos: 1 });
  await sub.subscribeAsync('keep', { qos: 1 });
  await sub.endAsync();
  assert.deepEqual(got, ['keep'], 'the expired one is not delivered');
  // The asked-for one at once; the other by the engine's sweep (every 250 ms).
  for (let i = 0; i < 40 && rows().length > 2; i++) await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(rows(), ['exp/later', 'keep']);
  assert.equal(engine.broker.retained.size, 2);
  running = false;
  await stopEngine(engine);

  await new Promise((r) => setTimeout(r, 2_000)); // exp/later expires while nothing runs
  engine = await startEngine(file);
  running = true;
  // Deleted by the restore's first commit, which the writer thread applies a moment later.
  for (let i = 0; i < 40 && rows().length > 1; i++) await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(rows(), ['keep'], 'expired during the downtime: deleted at start');
  assert.equal(engine.broker.retained.size, 1);
});

test('a cluster node\'s stream position and a replaying session\'s floor are kept per gateway; a file from before them gains the column, and a deleted gateway loses them', { timeout: 20_000 }, async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'gh-persist-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'state.db');
  // A file written before issue 16's columns: mqtt_sessions without stream_floor.
  const old = new BetterSqlite3(file);
  old.exec(`CREATE TABLE mqtt_sessions (gateway_id TEXT NOT NULL, client_id TEXT NOT NULL, expiry_interval INTEGER NOT NULL,
    disconnected_at INTEGER, subscriptions TEXT NOT NULL, incoming_qos2 TEXT NOT NULL, PRIMARY KEY (gateway_id, client_id))`);
  old.close();
  const stores = new SqliteStateStores(file);
  t.after(() => stores.close());
  const gw1 = stores.open('gw1');
  const gw2 = stores.open('gw2');
  assert.equal((await gw1.load()).streamPosition, undefined, 'none written yet');
  const session = (clientId: string, streamFloor?: number): PersistenceBatch['sessions'] => new Map([[clientId, {
    clientId, expiryInterval: 60, disconnectedAt: 1, subscriptions: [], incomingQos2: [], ...(streamFloor === undefined ? {} : { streamFloor }),
  }]]);
  const batch = (changes: Partial<PersistenceBatch>): PersistenceBatch => ({
    retained: new Map(), sessions: new Map(), outbound: new Map(), subscriptions: new Map(), sessionsEnded: new Set(), streamPosition: undefined, ...changes,
  });
  await gw1.write(batch({ sessions: session('replaying', 40), streamPosition: 70 }));
  await gw1.write(batch({ sessions: session('live') }));
  await gw1.write(batch({ streamPosition: 75 })); // a position alone
  await gw2.write(batch({ streamPosition: 9 }));
  const loaded = await gw1.load();
  assert.equal(loaded.streamPosition, 75);
  assert.deepEqual(loaded.sessions.map((s) => [s.clientId, s.streamFloor]).sort(), [['live', undefined], ['replaying', 40]]);
  assert.equal((await gw2.load()).streamPosition, 9, 'each gateway its own');
  await stores.forget('gw1');
  assert.equal((await gw1.load()).streamPosition, undefined, 'a deleted gateway keeps none');
  assert.equal((await gw2.load()).streamPosition, 9);
});
