/**
 * Issue 16 item 8: two cluster nodes (in-process, node A on 127.0.0.2 and node B on 127.0.0.3, one
 * PostgreSQL) on a private nats-server that the test stops and starts again. Cut off from NATS, a node
 * fails closed and says so: new CONNECTs refused (0x88, v3.1.1 3), a QoS 1/2 PUBLISH not acknowledged
 * (its connection closed, 0x9C, nothing delivered), `/ready` 503 with `checks.cluster: unreachable`;
 * cut off longer than its lease, it ends every connection; when NATS returns, everything works again
 * without anyone's help (routing across nodes, retained messages through the nodes' bucket watchers).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import tls from 'node:tls';
import { after, before, describe, test } from 'node:test';
import mqtt from 'mqtt';
import pg from 'pg';
import type { BrokerStats } from '../../src/broker/index.ts';
import { freePort, removeDataDir, startTestGatehouse, type TestGatehouse } from '../harness/gatehouse.ts';
import { privateNatsServer, type PrivateNatsServer } from '../harness/nats-server.ts';
import { getPki, type SharedPki } from '../harness/pki.ts';

const databaseUrl = process.env.GATEHOUSE_TEST_DATABASE_URL;
const natsConfigured = process.env.GATEHOUSE_TEST_NATS_URL !== undefined; // nats-server is installed (.ci/run)

const A = '127.0.0.2';
const B = '127.0.0.3';
// Long enough for the steps before the cut-off on a loaded machine, short enough not to wait long for it.
const LEASE = { heartbeatMs: 250, leaseMs: 5_000 };

interface GatewayJson { id: string; port: number; productKey: string }
interface Readiness { status: string; checks: { storage: string; gateways: string; cluster?: string } }
interface EventJson { type: string; reason: string; mqttReasonCode: number | null; clientId: string | null }

async function waitFor<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, ms = 20_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

if (databaseUrl === undefined || !natsConfigured) {
  test('NATS outage', { skip: 'GATEHOUSE_TEST_NATS_URL and GATEHOUSE_TEST_DATABASE_URL must be set (.ci/run sets both; test/cluster/README.md)' }, () => {});
} else {
  describe('two cluster nodes when NATS goes away and comes back', { timeout: 180_000 }, () => {
    const schema = `cluster_${randomBytes(6).toString('hex')}`;
    const dbUrl = new URL(databaseUrl);
    dbUrl.searchParams.set('options', `-c search_path=${schema}`);
    const clients: mqtt.MqttClient[] = [];
    let pki: SharedPki;
    let nats: PrivateNatsServer;
    let nodeA: TestGatehouse;
    let nodeB: TestGatehouse;

    const startNode = async (nodeId: string, host: string, masterKey: string): Promise<TestGatehouse> => startTestGatehouse({
      env: {
        GATEHOUSE_DATABASE_URL: dbUrl.toString(), GATEHOUSE_NATS_URL: nats.url, GATEHOUSE_MASTER_KEY: masterKey,
        GATEHOUSE_NODE_ID: nodeId, GATEHOUSE_HTTP_HOST: host, GATEHOUSE_MQTT_HOST: host,
      },
      clusterLeaseTimings: LEASE,
    });
    const ready = async (node: TestGatehouse): Promise<{ status: number; json: Readiness }> => {
      const res = await fetch(`${node.gatehouse.url}/ready`);
      return { status: res.status, json: await res.json() as Readiness };
    };
    const open = (host: string, port: number, device: string, options: mqtt.IClientOptions = {}): mqtt.MqttClient => {
      const client = mqtt.connect({
        host, port, protocol: 'mqtts', ca: pki.root.certPem, servername: 'localhost', reconnectPeriod: 0, connectTimeout: 5000,
        protocolVersion: 5, clientId: `c-${device}`, username: device, password: `pw-${device}`, ...options,
      });
      clients.push(client);
      return client;
    };
    const connect = (host: string, port: number, device: string, options: mqtt.IClientOptions = {}): Promise<mqtt.MqttClient> => {
      const client = open(host, port, device, options);
      return new Promise((resolve, reject) => {
        client.once('connect', () => resolve(client));
        client.once('error', reject);
      });
    };
    /** The CONNACK code of a refused CONNECT (MQTT.js reports it as the error's code). */
    const refusal = (host: string, port: number, device: string, options: mqtt.IClientOptions = {}): Promise<number | undefined> => {
      const client = open(host, port, device, options);
      return new Promise((resolve, reject) => {
        client.once('connect', () => reject(new Error(`${device} was accepted`)));
        client.once('error', (err) => resolve((err as { code?: number }).code));
      });
    };
    const statsOf = (node: TestGatehouse, gatewayId: string): BrokerStats => {
      const instance = [...node.gatehouse.runtime.instances()].find((i) => i.config.id === gatewayId);
      assert.ok(instance !== undefined);
      return instance.broker.stats;
    };

    before(async () => {
      pki = await getPki();
      nats = await privateNatsServer();
      await nats.start();
      const admin = new pg.Client({ connectionString: databaseUrl });
      await admin.connect();
      await admin.query(`create schema ${schema}`);
      await admin.end();
      const masterKey = randomBytes(32).toString('hex');
      nodeA = await startNode('outage-a', A, masterKey); // first: it migrates the schema
      nodeB = await startNode('outage-b', B, masterKey);
    }, { timeout: 60_000 });

    after(async () => {
      for (const client of clients) client.end(true);
      await nats.start(); // a node stops faster when it can say goodbye
      await Promise.all([nodeA?.stop(), nodeB?.stop()]);
      await nats.dispose();
      const admin = new pg.Client({ connectionString: databaseUrl });
      await admin.connect();
      await admin.query(`drop schema if exists ${schema} cascade`);
      await admin.end();
      for (const node of [nodeA, nodeB]) if (node !== undefined) await removeDataDir(node.dataDir);
    }, { timeout: 60_000 });

    test('cut off: CONNECTs refused 0x88 / 3, QoS 1 and 2 not acknowledged, /ready 503; past the lease every device goes; NATS back: all works again', { timeout: 120_000 }, async () => {
      const created = await nodeA.api<GatewayJson>('POST', '/gateways', {
        name: 'outage_gw', port: await freePort(), authType: 'ONE_PARTY',
        certificates: { serverCertificateChain: pki.server.chainPem, serverPrivateKey: pki.server.keyPem },
      });
      assert.equal(created.status, 201, JSON.stringify(created.json));
      const gateway = created.json;
      for (const name of ['sub-b', 'sub-a', 'pub-a', 'v3-a', 'late-a', 'late-v3']) {
        const r = await nodeA.api('POST', `/products/${gateway.productKey}/devices`, { username: name, password: `pw-${name}` });
        assert.equal(r.status, 201, JSON.stringify(r.json));
      }
      await waitFor('node B to listen', () => new Promise<true | undefined>((resolve) => {
        const socket = tls.connect({ host: B, port: gateway.port, servername: 'localhost', ca: pki.root.certPem });
        socket.once('secureConnect', () => {
          socket.destroy();
          resolve(true);
        });
        socket.once('error', () => resolve(undefined));
      }));
      assert.deepEqual((await ready(nodeA)).json.checks, { storage: 'ok', gateways: 'ok', cluster: 'ok' });

      const onB: string[] = [];
      const onA: string[] = [];
      const subB = await connect(B, gateway.port, 'sub-b');
      subB.on('message', (topic, payload) => onB.push(`${topic} ${payload.toString()}`));
      await subB.subscribeAsync('plant/#', { qos: 2 });
      const subA = await connect(A, gateway.port, 'sub-a');
      subA.on('message', (topic, payload) => onA.push(`${topic} ${payload.toString()}`));
      await subA.subscribeAsync('plant/#', { qos: 2 });
      const pubA = await connect(A, gateway.port, 'pub-a');
      const v3A = await connect(A, gateway.port, 'v3-a', { protocolVersion: 4 });
      await pubA.publishAsync('plant/before', 'x', { qos: 1 });
      await waitFor('the first message on node B', () => (onB.includes('plant/before x') ? true : undefined));

      await nats.stop();
      // Past the lease (LEASE.leaseMs after the connection dropped) every connection of both nodes goes: listen from now.
      const cutOff = (client: mqtt.MqttClient): Promise<number | undefined> =>
        new Promise((resolve) => client.once('disconnect', (packet) => resolve(packet.reasonCode)));
      const subsCutOff = Promise.all([cutOff(subA), cutOff(subB)]);
      const down = await waitFor('node A not ready', async () => {
        const r = await ready(nodeA);
        return r.status === 503 ? r : undefined;
      });
      assert.deepEqual(down.json, { status: 'not_ready', checks: { storage: 'ok', gateways: 'ok', cluster: 'unreachable' }, gatewaysNotReady: [] });

      // A QoS 1 PUBLISH gets no PUBACK: its connection is closed with 0x9C (use another server), and it is not delivered.
      const acks: string[] = [];
      for (const client of [pubA, v3A]) client.on('packetreceive', (packet) => {
        if (packet.cmd === 'puback' || packet.cmd === 'pubrec') acks.push(packet.cmd);
      });
      const pubAGone = cutOff(pubA);
      pubA.publish('plant/during', 'qos1', { qos: 1 });
      assert.equal(await pubAGone, 0x9c);
      // QoS 0 still reaches this node's own subscribers; a marker after the refused message shows it was not delivered.
      v3A.publish('plant/marker', 'qos0', { qos: 0 });
      await waitFor('the marker on node A', () => (onA.includes('plant/marker qos0') ? true : undefined));
      // QoS 2 from a v3.1.1 client: no PUBREC, the connection closed.
      const v3Gone = new Promise<void>((resolve) => v3A.once('close', () => resolve()));
      v3A.publish('plant/during', 'qos2', { qos: 2 });
      await v3Gone;
      assert.deepEqual(acks, []);
      assert.deepEqual(onA, ['plant/before x', 'plant/marker qos0']);

      // New CONNECTs are refused: server unavailable, in v5 and in v3.1.1.
      assert.equal(await refusal(A, gateway.port, 'late-a'), 0x88);
      assert.equal(await refusal(A, gateway.port, 'late-v3', { protocolVersion: 4 }), 3);
      const stats = statsOf(nodeA, gateway.id);
      assert.equal(stats.connectsRefusedClusterUnreachable, 2);
      assert.equal(stats.publishesRefusedClusterUnreachable, 2);

      // Cut off longer than the lease: the other nodes count these dead, so their connections go too (0x9C).
      assert.deepEqual(await subsCutOff, [0x9c, 0x9c]);
      assert.equal(statsOf(nodeB, gateway.id).clusterCutOffDisconnects, 1);

      // Recorded (PostgreSQL is up): the refusals and the ends, with one stable reason.
      const events = await waitFor('the outage\'s connection events', async () => {
        const r = await nodeA.api<{ items: EventJson[] }>('GET', `/events?gatewayId=${gateway.id}&reason=CLUSTER_UNAVAILABLE&limit=50`);
        return r.json.items.length >= 6 ? r.json.items : undefined;
      });
      const seen = new Set(events.map((e) => `${e.type} ${e.clientId} ${e.mqttReasonCode}`));
      for (const expected of [
        'CONNECT_REFUSED c-late-a 136', 'CONNECT_REFUSED c-late-v3 3', 'DISCONNECTED c-pub-a 156', 'DISCONNECTED c-v3-a null',
        'DISCONNECTED c-sub-a 156', 'DISCONNECTED c-sub-b 156',
      ]) assert.ok(seen.has(expected), `${expected} in ${[...seen].join(', ')}`);

      // NATS returns: both nodes are ready again, devices connect, QoS 1 crosses nodes and is acknowledged.
      await nats.start();
      for (const node of [nodeA, nodeB]) {
        await waitFor('ready again', async () => ((await ready(node)).status === 200 ? true : undefined), 30_000);
        assert.equal((await ready(node)).json.checks.cluster, 'ok');
      }
      onB.length = 0;
      const subAgain = await connect(B, gateway.port, 'sub-b');
      subAgain.on('message', (topic, payload) => onB.push(`${topic} ${payload.toString()}`));
      await subAgain.subscribeAsync('plant/#', { qos: 1 });
      const pubAgain = await connect(A, gateway.port, 'late-a');
      await pubAgain.publishAsync('plant/after', 'y', { qos: 1 });
      await waitFor('the message after the outage on node B', () => (onB.includes('plant/after y') ? true : undefined));
      // The nodes follow the cluster's retained messages again (their bucket watchers outlived the restart).
      await pubAgain.publishAsync('plant/state', 'z', { qos: 1, retain: true });
      const late = await connect(B, gateway.port, 'late-v3');
      const retained = new Promise<string>((resolve) => late.once('message', (topic, payload, packet) => resolve(`${topic} ${payload.toString()} ${packet.retain}`)));
      await late.subscribeAsync('plant/state', { qos: 1 });
      assert.equal(await retained, 'plant/state z true');
    });
  });
}
