/**
 * What a cluster test needs (issue 16), in one place: a PostgreSQL schema of the run's own (the nodes' shared
 * database, dropped at the end), nodes in-process or as `npm start` runs them on their own loopback addresses
 * (127.0.0.2, 127.0.0.3, …) sharing one master key, a gateway and its devices, MQTT.js clients that connect or
 * report the CONNACK refusal, and a TCP relay in front of NATS that cuts one node off while the others stay.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import mqtt from 'mqtt';
import type mqttPacket from 'mqtt-packet';
import pg from 'pg';
import type { LeaseTimings } from '../../src/cluster/index.ts';
import type { Broker } from '../../src/broker/index.ts';
import { loadNatsClient } from '../../src/cluster/nats-client.ts';
import { freePort, removeDataDir, startTestGatehouse, type TestGatehouse } from './gatehouse.ts';
import { startGatehouseProcess, type GatehouseProcess, type SpawnOptions } from './gatehouse-process.ts';
import { getPki, type SharedPki } from './pki.ts';
import { connackOf } from './mqtt-connack.ts';
import { frame, readPackets } from './raw-mqtt.ts';
import { deleteInstallationStreams, TEST_STREAM_MAX_MB } from './nats-streams.ts';
import { privateNatsServer, type PrivateNatsServer } from './nats-server.ts';

export const clusterNatsUrl = process.env.GATEHOUSE_TEST_NATS_URL;
export const clusterDatabaseUrl = process.env.GATEHOUSE_TEST_DATABASE_URL;
/** Why a cluster suite is skipped, or undefined when it can run. */
export const clusterSkip = clusterNatsUrl === undefined || clusterDatabaseUrl === undefined
  ? 'GATEHOUSE_TEST_NATS_URL and GATEHOUSE_TEST_DATABASE_URL must be set (.ci/run sets both; test/cluster/README.md)'
  : undefined;

export interface GatewayJson { id: string; name: string; port: number; productKey: string; status: string }

/** How many times each value came (payloads a subscriber received, …). */
export function tally(values: Iterable<string>): Map<string, number> {
  const out = new Map<string, number>();
  for (const v of values) out.set(v, (out.get(v) ?? 0) + 1);
  return out;
}

export async function waitFor<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, ms = 20_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/**
 * A NATS outage under the nodes whose API base URLs are given: kill -9 of the private nats-server, until every node's
 * /ready is 503, `awayMs` more, then the server started again (same port and store), until every /ready is 200.
 * `killedAt`: the server is gone (its process exited); `from` / `until`: from every node not ready to the restart.
 */
export async function natsOutage(nats: PrivateNatsServer, nodeUrls: string[], awayMs = 2_000): Promise<{ killedAt: number; from: number; until: number }> {
  const all = (status: number) => async (): Promise<true | undefined> => {
    const answers = await Promise.all(nodeUrls.map(async (url) => (await fetch(`${url}/ready`)).status));
    return answers.every((s) => s === status) ? true : undefined;
  };
  await nats.stop('SIGKILL');
  const killedAt = Date.now();
  await waitFor('every node not ready', all(503), 10_000);
  const from = Date.now();
  await new Promise((resolve) => setTimeout(resolve, awayMs));
  const until = Date.now();
  await nats.start();
  await waitFor('every node ready again', all(200), 30_000);
  return { killedAt, from, until };
}

/** Anything with the admin API: an in-process node or a process. */
interface ApiNode {
  api<T = unknown>(method: string, urlPath: string, body?: unknown): Promise<{ status: number; json: T }>;
}

/**
 * One cluster of a test file: its schema, its nodes (stopped and dropped by `dispose`), its clients (ended).
 * `natsUrl` defaults to the CI's nats-server; nodes may be given another (a relay, a private server).
 */
/**
 * What a subscriber received, in the order the PUBLISH packets arrived: MQTT.js hands a QoS 2 message to the
 * application at PUBREL and a QoS 1 one at PUBLISH, so with both in flight its 'message' order is not the order the
 * server sent them in [MQTT-4.6.0-6] — a QoS 1 message sent after a QoS 2 one comes out first whenever the PUBREC /
 * PUBREL round trip is slower than the next PUBLISH (a loaded machine). A QoS 2 PUBLISH whose packet id is held
 * (received, its PUBREL not yet) is a resend of the same message, counted once [MQTT-4.3.3]; it is kept across the
 * client's reconnects, as the session is.
 */
export function collectAtPublish(client: mqtt.MqttClient): {
  received: { topic: string; payload: string }[];
  /** The payloads received, in order; of one topic if given. */
  payloads(topic?: string): string[];
  count(payload: string): number;
} {
  const received: { topic: string; payload: string }[] = [];
  const held = new Set<number>();
  client.on('packetreceive', (packet) => {
    if (packet.cmd === 'pubrel') held.delete(packet.messageId!);
    if (packet.cmd !== 'publish') return;
    if (packet.qos === 2) {
      if (held.has(packet.messageId!)) return;
      held.add(packet.messageId!);
    }
    received.push({ topic: packet.topic, payload: packet.payload.toString() });
  });
  return {
    received,
    payloads: (topic) => received.filter((r) => topic === undefined || r.topic === topic).map((r) => r.payload),
    count: (payload) => received.filter((r) => r.payload === payload).length,
  };
}

export class TestCluster {
  readonly schema = `cluster_${randomBytes(6).toString('hex')}`;
  readonly masterKey = randomBytes(32).toString('hex');
  readonly clients: mqtt.MqttClient[] = [];
  readonly #inProcess: TestGatehouse[] = [];
  readonly #processes: { node: GatehouseProcess; dir: string }[] = [];
  #pki: SharedPki | undefined;
  #device = 0;
  #nats: PrivateNatsServer | null = null;

  get pki(): SharedPki {
    assert.ok(this.#pki !== undefined, 'TestCluster.setUp() first');
    return this.#pki;
  }

  get databaseUrl(): string {
    const url = new URL(clusterDatabaseUrl!);
    url.searchParams.set('options', `-c search_path=${this.schema}`);
    return url.toString();
  }

  async setUp(): Promise<void> {
    this.#pki = await getPki();
    const admin = new pg.Client({ connectionString: clusterDatabaseUrl });
    await admin.connect();
    await admin.query(`create schema ${this.schema}`);
    await admin.end();
  }

  env(nodeId: string, host: string, natsUrl = clusterNatsUrl!): Record<string, string> {
    return {
      GATEHOUSE_DATABASE_URL: this.databaseUrl, GATEHOUSE_NATS_URL: natsUrl, GATEHOUSE_MASTER_KEY: this.masterKey,
      GATEHOUSE_NODE_ID: nodeId, GATEHOUSE_HTTP_HOST: host, GATEHOUSE_MQTT_HOST: host,
      // JetStream reserves a stream's whole size when it is made: a test installation's small one leaves the CI's
      // nats-server room for every file of the suite (at the 1 GiB default, ~55 fill a 74 GB disk's store).
      GATEHOUSE_CLUSTER_STREAM_MAX_MB: String(TEST_STREAM_MAX_MB),
    };
  }

  /**
   * A node in this process (its engines can be inspected). The first one started migrates the schema. `dataDir`: the
   * directory of a node stopped before, to start it again as the same node.
   */
  async startNode(nodeId: string, host: string, options: { natsUrl?: string; leaseTimings?: LeaseTimings; dataDir?: string } = {}): Promise<TestGatehouse> {
    const node = await startTestGatehouse({
      env: this.env(nodeId, host, options.natsUrl), clusterLeaseTimings: options.leaseTimings, ...(options.dataDir === undefined ? {} : { dataDir: options.dataDir }),
    });
    this.#inProcess.push(node);
    return node;
  }

  /** A node as `npm start` runs it (dist/main.mjs): one a test can kill -9. `env`: more settings (GATEHOUSE_WORKERS …). */
  async startProcess(nodeId: string, host: string, env: Record<string, string> = {}, options: SpawnOptions = {}): Promise<GatehouseProcess & { dir: string }> {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'gatehouse-node-'));
    const node = await startGatehouseProcess(dir, { ...this.env(nodeId, host), ...env }, options);
    this.#processes.push({ node, dir });
    return Object.assign(node, { dir });
  }

  /**
   * The shared parts, node A as `npm start` runs it (first: it migrates the schema) and node B in-process, with a
   * gateway named `<name>_gw` listening on both: the start of the tests that kill -9 A while B carries on.
   */
  async startProcessAndNode(name: string, hostA: string, hostB: string): Promise<{ nodeA: GatehouseProcess; nodeB: TestGatehouse; gateway: GatewayJson }> {
    await this.setUp();
    const nodeA = await this.startProcess(`${name}-a`, hostA);
    const nodeB = await this.startNode(`${name}-b`, hostB);
    const gateway = await this.createGateway(nodeA, `${name}_gw`);
    await this.listening(hostA, gateway);
    await this.listening(hostB, gateway);
    return { nodeA, nodeB, gateway };
  }

  /**
   * The shared parts on a nats-server of this cluster's own (`setUpOnPrivateNats`), two in-process nodes on it with the
   * lease `leaseTimings` and a gateway named `<name>_gw` listening on both: the start of the tests that stop NATS.
   */
  async startTwoOnPrivateNats(name: string, hostA: string, hostB: string, leaseTimings: LeaseTimings): Promise<{
    nats: PrivateNatsServer; nodeA: TestGatehouse; nodeB: TestGatehouse; gateway: GatewayJson;
  }> {
    const nats = await this.setUpOnPrivateNats();
    const nodeA = await this.startNode(`${name}-a`, hostA, { natsUrl: nats.url, leaseTimings });
    const nodeB = await this.startNode(`${name}-b`, hostB, { natsUrl: nats.url, leaseTimings });
    const gateway = await this.createGateway(nodeA, `${name}_gw`, [hostA, hostB]);
    return { nats, nodeA, nodeB, gateway };
  }

  /** Which node holds each device of the gateway (`devices.online_node`; null when offline), by device name. */
  async onlineNodes(gateway: GatewayJson): Promise<Map<string, string | null>> {
    const db = new pg.Client({ connectionString: this.databaseUrl });
    await db.connect();
    try {
      const { rows } = await db.query<{ device_name: string; online_node: string | null }>(
        'select device_name, online_node from devices where product_key = $1', [gateway.productKey]);
      return new Map(rows.map((r) => [r.device_name, r.online_node]));
    } finally {
      await db.end();
    }
  }

  /**
   * The shared parts, and a nats-server of this cluster's own for its nodes (`natsUrl: nats.url`), which a test may
   * kill and start again; dispose starts it again first (the nodes stop cleanly with NATS there), then removes it.
   */
  async setUpOnPrivateNats(): Promise<PrivateNatsServer> {
    await this.setUp();
    this.#nats = await privateNatsServer();
    await this.#nats.start();
    return this.#nats;
  }

  /** A gateway made through `node`'s API, once listening on each of `listeningOn` (the nodes' MQTT hosts) if given. */
  async createGateway(node: ApiNode, name: string, listeningOn: string[] = []): Promise<GatewayJson> {
    const created = await node.api<GatewayJson>('POST', '/gateways', {
      name, port: await freePort(), authType: 'ONE_PARTY',
      certificates: { serverCertificateChain: this.pki.server.chainPem, serverPrivateKey: this.pki.server.keyPem },
    });
    assert.equal(created.status, 201, JSON.stringify(created.json));
    for (const host of listeningOn) await this.listening(host, created.json);
    return created.json;
  }

  /** A new device of the gateway (username = its name, password `pw-<name>`); its name. */
  async addDevice(node: ApiNode, gateway: GatewayJson, name = `dev-${++this.#device}`): Promise<string> {
    const r = await node.api('POST', `/products/${gateway.productKey}/devices`, { username: name, password: `pw-${name}` });
    assert.equal(r.status, 201, JSON.stringify(r.json));
    return name;
  }

  /** Resolves once `host` completes a TLS handshake on the gateway's port. */
  listening(host: string, gateway: GatewayJson): Promise<true> {
    return waitFor(`${host} to listen on ${gateway.port}`, () => new Promise<true | undefined>((resolve) => {
      const socket = tls.connect({ host, port: gateway.port, servername: 'localhost', ca: this.pki.root.certPem });
      socket.once('secureConnect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(undefined));
    }));
  }

  /**
   * A device's persistent v5 session (Session Expiry 600 s, keep-alive off), raw over TLS: the test decides what it
   * sends after the CONNECT and sees every packet.
   */
  rawSession(host: string, gateway: GatewayJson, device: string, clientId: string): { socket: tls.TLSSocket; packets: mqttPacket.Packet[] } {
    const socket = tls.connect({ host, port: gateway.port, servername: 'localhost', ca: this.pki.root.certPem });
    socket.on('error', () => undefined);
    const packets = readPackets(socket, 5);
    socket.once('secureConnect', () => socket.write(frame({
      cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clean: false, clientId, keepalive: 0,
      username: device, password: Buffer.from(`pw-${device}`), properties: { sessionExpiryInterval: 600 },
    }, 5)));
    return { socket, packets };
  }

  /** An MQTT.js client of `device` (v5 unless told; client id `c-<device>` unless told), not yet connected. */
  open(host: string, gateway: GatewayJson, device: string, options: mqtt.IClientOptions = {}): mqtt.MqttClient {
    const client = mqtt.connect({
      host, port: gateway.port, protocol: 'mqtts', ca: this.pki.root.certPem, servername: 'localhost', reconnectPeriod: 0,
      connectTimeout: 10_000, protocolVersion: 5, clientId: `c-${device}`, username: device, password: `pw-${device}`, ...options,
    });
    this.clients.push(client);
    return client;
  }

  connect(host: string, gateway: GatewayJson, device: string, options: mqtt.IClientOptions = {}): Promise<mqtt.MqttClient> {
    const client = this.open(host, gateway, device, options);
    return connackOf(client).then(() => client, (err: Error) => {
      throw Object.assign(new Error(`${device}: ${err.message}`), { code: (err as { code?: unknown }).code });
    });
  }

  async dispose(): Promise<void> {
    await this.#nats?.start();
    for (const client of this.clients) client.end(true);
    await Promise.all([...this.#inProcess.map((n) => n.stop()), ...this.#processes.map((p) => p.node.stop())]);
    const admin = new pg.Client({ connectionString: clusterDatabaseUrl });
    await admin.connect();
    const installation = await admin.query<{ value: string }>(`select value from ${this.schema}.settings where key = 'installation_id'`).catch(() => null);
    await admin.query(`drop schema if exists ${this.schema} cascade`);
    await admin.end();
    const installationId = installation?.rows[0]?.value;
    if (installationId !== undefined) await deleteInstallationStreams(clusterNatsUrl!, installationId);
    for (const dir of [...this.#inProcess.map((n) => n.dataDir), ...this.#processes.map((p) => p.dir)]) await removeDataDir(dir);
    await this.#nats?.dispose();
  }
}

/**
 * A NATS connection of its own on the CI's nats-server, as a stranger to the nodes: it hears a subject as any
 * node would (`count`: how many messages came on it), and can say it listens to the nodes' platform events as a
 * node with a /stream open would (`listen`: resolves once the node answered that it noted it).
 */
export async function natsObserver(): Promise<{
  count(subject: string): Promise<() => number>;
  listen(prefix: string, instance: string): Promise<void>;
  /** Resolves once everything the server had for this connection when called has been counted. */
  settle(): Promise<void>;
  close(): Promise<void>;
}> {
  const client = await loadNatsClient();
  const nc = await client.connect({ servers: clusterNatsUrl! });
  return {
    async count(subject) {
      let n = 0;
      nc.subscribe(subject, { callback: () => void n++ });
      await nc.flush(); // the server has the SUB: whatever is published from now on is counted
      return () => n;
    },
    async listen(prefix, instance) {
      await nc.request(`${prefix}.platform.listening`, JSON.stringify({ instance, listening: true }), { timeout: 5_000 });
    },
    settle: () => nc.flush(),
    close: () => nc.close(),
  };
}

/** The engine of a gateway on an in-process node. */
export function engineOf(node: TestGatehouse, gatewayId: string): Broker {
  const instance = [...node.gatehouse.runtime.instances()].find((i) => i.config.id === gatewayId);
  assert.ok(instance !== undefined, `gateway ${gatewayId} runs on the node`);
  return instance.broker;
}

/** A counter of a gateway's cluster link (`gatehouse_cluster_messages_total{kind}`) as a node's /metrics shows it. */
export async function clusterCounter(node: { url: string }, gateway: GatewayJson, kind: string): Promise<number> {
  const res = await fetch(`${node.url}/api/v1/metrics`, { headers: { authorization: 'Bearer e2e-admin-token-0123456789abcdef' } });
  const line = (await res.text()).split('\n').find((l) => l.startsWith('gatehouse_cluster_messages_total{')
    && l.includes(`gateway_id="${gateway.id}"`) && l.includes(`kind="${kind}"`));
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1));
}

/** A counter of the gateway engines' (`gatehouse_gateway_<name>_total`) as a node's /metrics shows it. */
export async function gatewayCounter(node: { url: string }, gateway: GatewayJson, name: string): Promise<number> {
  const res = await fetch(`${node.url}/api/v1/metrics`, { headers: { authorization: 'Bearer e2e-admin-token-0123456789abcdef' } });
  const line = (await res.text()).split('\n').find((l) => l.startsWith(`gatehouse_gateway_${name}_total{gateway="${gateway.name}"}`));
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1));
}

/**
 * A TCP relay on 127.0.0.1 in front of a NATS server: a node connected through it is cut off from the cluster
 * (`sever`: its connections dropped, new ones refused) while the others stay connected; `restore` lets it back.
 * `stall` keeps the connections open but forwards nothing (NATS slow to answer, as a congested link): what
 * either side sends meanwhile is held, in order, and `flow` passes it on. `deafenAfter(pattern)`: once the node
 * sends a protocol line matching `pattern` (a `PUB` to a subject), what NATS sends the node is dropped until `sever`
 * — that message lands, its answer is lost. `holdFromNode(pattern)`: the next protocol message the node sends whose
 * line matches `pattern` (a `PUB`/`HPUB` to a subject, with its payload) is held until `flow` (which also ends a hold
 * that caught nothing), and everything else passes: a store in flight while the node goes on talking and hearing. `dropFromNode(pattern)`: every protocol
 * message the node sends whose whole text (line and payload) matches is dropped, until `restore`: a write that never
 * arrives (a record's value naming what the test forbids it to name).
 */
export interface NatsRelay {
  readonly url: string;
  sever(): void;
  restore(): void;
  stall(): void;
  flow(): void;
  deafenAfter(pattern: RegExp): void;
  holdFromNode(pattern: RegExp): void;
  dropFromNode(pattern: RegExp): void;
  close(): Promise<void>;
}

/**
 * Splits what a NATS client sends into whole protocol messages: a line, and for `PUB`/`HPUB` the payload its last
 * field counts and the CRLF after it. Bytes of a message not yet complete are kept for the next chunk.
 */
class ClientProtocolSplitter {
  #pending: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): Buffer[] {
    this.#pending = this.#pending.length === 0 ? chunk : Buffer.concat([this.#pending, chunk]);
    const out: Buffer[] = [];
    for (;;) {
      const eol = this.#pending.indexOf('\r\n');
      if (eol < 0) break;
      const line = this.#pending.subarray(0, eol).toString('latin1');
      const size = /^H?PUB /i.test(line) ? Number(line.trim().split(/\s+/).at(-1)) + 2 : 0;
      const end = eol + 2 + size;
      if (this.#pending.length < end) break;
      out.push(this.#pending.subarray(0, end));
      this.#pending = this.#pending.subarray(end);
    }
    return out;
  }
}

export async function natsRelay(target: string): Promise<NatsRelay> {
  const to = new URL(target);
  const sockets = new Set<net.Socket>();
  let open = true;
  let stalled = false;
  let deaf = false;
  let deafenAt: RegExp | null = null;
  let holdOne: RegExp | null = null;
  let dropping: RegExp | null = null;
  const held: { to: net.Socket; data: Buffer }[] = [];
  const forward = (from: net.Socket, to: net.Socket, toNode: boolean): void => {
    const messages = toNode ? null : new ClientProtocolSplitter();
    from.on('data', (chunk: Buffer) => {
      if (deaf && toNode) return;
      if (!toNode && deafenAt?.test(chunk.toString('latin1')) === true) {
        deafenAt = null;
        deaf = true;
      }
      // The node's bytes go message by message (a chunk may hold several, or part of one), so that one can be held.
      for (const data of messages === null ? [chunk] : messages.push(chunk)) {
        if (holdOne !== null && !toNode && holdOne.test(data.subarray(0, data.indexOf(0x0d)).toString('latin1'))) {
          holdOne = null;
          held.push({ to, data });
          continue;
        }
        if (dropping !== null && !toNode && dropping.test(data.toString('latin1'))) continue;
        forwardOne(to, data);
      }
    });
  };
  const forwardOne = (to: net.Socket, data: Buffer): void => {
    if (stalled) held.push({ to, data });
    else to.write(data);
  };
  const server = net.createServer((client) => {
    if (!open) {
      client.destroy();
      return;
    }
    const upstream = net.connect(Number(to.port), to.hostname);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.once('close', () => sockets.delete(s));
      s.on('error', () => undefined);
    }
    forward(client, upstream, false);
    forward(upstream, client, true);
    client.once('close', () => upstream.destroy());
    upstream.once('close', () => client.destroy());
  });
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    url: `nats://127.0.0.1:${port}`,
    sever() {
      open = false;
      deaf = false;
      for (const s of sockets) s.destroy();
    },
    restore() {
      open = true;
      dropping = null;
    },
    stall() {
      stalled = true;
    },
    flow() {
      stalled = false;
      holdOne = null; // a hold that caught nothing ends here too
      for (const { to, data } of held.splice(0)) if (!to.destroyed) to.write(data);
    },
    deafenAfter(pattern) {
      deafenAt = pattern;
    },
    holdFromNode(pattern) {
      holdOne = pattern;
    },
    dropFromNode(pattern) {
      dropping = pattern;
    },
    async close() {
      open = false;
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** One in-process node whose NATS connection goes through a relay (`stall` / `sever` it), with one gateway listening. */
export interface RelayedNode {
  readonly cluster: TestCluster;
  readonly relay: NatsRelay;
  readonly node: TestGatehouse;
  readonly gateway: GatewayJson;
}

/**
 * Starts a cluster's shared parts, a relay in front of the CI's nats-server and one node on `host` behind it
 * (a long lease, so a stall does not cut it off), with a gateway named `gatewayName` listening. `stop` lets the
 * relay flow again (what it held reaches the node, which then closes cleanly) and disposes of everything.
 */
export async function startRelayedNode(nodeId: string, host: string, gatewayName: string): Promise<RelayedNode & { stop(): Promise<void> }> {
  const cluster = new TestCluster();
  await cluster.setUp();
  const relay = await natsRelay(clusterNatsUrl!);
  const node = await cluster.startNode(nodeId, host, { natsUrl: relay.url, leaseTimings: { heartbeatMs: 500, leaseMs: 60_000 } });
  const gateway = await cluster.createGateway(node, gatewayName);
  await cluster.listening(host, gateway);
  return {
    cluster, relay, node, gateway,
    async stop() {
      relay.flow();
      await cluster.dispose();
      await relay.close();
    },
  };
}
