/**
 * Two Gatehouse nodes as `npm start` runs them (dist/main.mjs child processes), each with its own data
 * directory and loopback address (node A on 127.0.0.2, node B on 127.0.0.3), sharing one PostgreSQL
 * database (a schema of this run's own, beside the storage contract suite's) and the CI's nats-server
 * (GATEHOUSE_TEST_NATS_URL): issue 16, phase 1 — a shared control plane and routing across nodes — and
 * retained messages that outlive the node that set them (item 4).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { after, before, describe, test } from 'node:test';
import mqtt from 'mqtt';
import pg from 'pg';
import { freePort, removeDataDir } from '../harness/gatehouse.ts';
import { startGatehouseProcess, type GatehouseProcess } from '../harness/gatehouse-process.ts';
import { getPki, type SharedPki } from '../harness/pki.ts';

const natsUrl = process.env.GATEHOUSE_TEST_NATS_URL;
const databaseUrl = process.env.GATEHOUSE_TEST_DATABASE_URL;

interface GatewayJson { id: string; port: number; productKey: string; status: string }
interface DeviceJson { status: string }

const A = '127.0.0.2';
const B = '127.0.0.3';

async function waitFor<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, ms = 15_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** What a TLS client meets at host:port: a finished handshake, a refused connection, or something else. */
function probeTls(pki: SharedPki, host: string, port: number): Promise<'tls' | 'refused' | 'other'> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host, port, servername: 'localhost', ca: pki.root.certPem });
    socket.once('secureConnect', () => {
      socket.destroy();
      resolve('tls');
    });
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code === 'ECONNREFUSED' ? 'refused' : 'other'));
  });
}

if (natsUrl === undefined || databaseUrl === undefined) {
  test('two cluster nodes', { skip: 'GATEHOUSE_TEST_NATS_URL and GATEHOUSE_TEST_DATABASE_URL must be set (.ci/run sets both; see test/storage/README.md)' }, () => {});
} else {
  describe('two cluster nodes on one PostgreSQL and one NATS', { timeout: 180_000 }, () => {
    const schema = `cluster_${randomBytes(6).toString('hex')}`;
    const dbUrl = new URL(databaseUrl);
    dbUrl.searchParams.set('options', `-c search_path=${schema}`);
    // Every node of a cluster shares the master key (stored private keys) and the database.
    const common = { GATEHOUSE_DATABASE_URL: dbUrl.toString(), GATEHOUSE_NATS_URL: natsUrl, GATEHOUSE_MASTER_KEY: randomBytes(32).toString('hex') };
    const envOf = (nodeId: string, host: string): Record<string, string> => ({
      ...common, GATEHOUSE_NODE_ID: nodeId, GATEHOUSE_HTTP_HOST: host, GATEHOUSE_MQTT_HOST: host,
    });
    const dirs: string[] = [];
    const clients: mqtt.MqttClient[] = [];
    let pki: SharedPki;
    let nodeA: GatehouseProcess;
    let nodeB: GatehouseProcess;

    const createGateway = async (name: string): Promise<GatewayJson> => {
      const created = await nodeA.api<GatewayJson>('POST', '/gateways', {
        name, port: await freePort(), authType: 'ONE_PARTY',
        certificates: { serverCertificateChain: pki.server.chainPem, serverPrivateKey: pki.server.keyPem },
      });
      assert.equal(created.status, 201, JSON.stringify(created.json));
      assert.equal(created.json.status, 'RUNNING');
      return created.json;
    };
    const addDevice = async (productKey: string, name: string): Promise<void> => {
      const r = await nodeA.api('POST', `/products/${productKey}/devices`, { username: name, password: `pw-${name}` });
      assert.equal(r.status, 201, JSON.stringify(r.json));
    };
    const connect = (host: string, port: number, device: string, clientId = `c-${device}`): Promise<mqtt.MqttClient> => {
      const client = mqtt.connect({
        host, port, protocol: 'mqtts', ca: pki.root.certPem, servername: 'localhost', reconnectPeriod: 0, connectTimeout: 5000,
        protocolVersion: 5, clientId, username: device, password: `pw-${device}`,
      });
      clients.push(client);
      return new Promise((resolve, reject) => {
        client.once('connect', () => resolve(client));
        client.once('error', reject);
      });
    };
    const metric = async (node: GatehouseProcess, gatewayId: string, kind: string): Promise<number> => {
      const res = await fetch(`${node.url}/api/v1/metrics`, { headers: { authorization: 'Bearer e2e-admin-token-0123456789abcdef' } });
      const line = (await res.text()).split('\n')
        .find((l) => l.startsWith('gatehouse_cluster_messages_total{') && l.includes(`gateway_id="${gatewayId}"`) && l.includes(`kind="${kind}"`));
      return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1));
    };

    before(async () => {
      pki = await getPki();
      const admin = new pg.Client({ connectionString: databaseUrl });
      await admin.connect();
      await admin.query(`create schema ${schema}`);
      await admin.end();
      for (let i = 0; i < 2; i++) dirs.push(await mkdtemp(path.join(os.tmpdir(), 'gatehouse-node-')));
      // One after the other: the first start migrates the empty database and gives it its installation id.
      nodeA = await startGatehouseProcess(dirs[0]!, envOf('node-a', A));
      nodeB = await startGatehouseProcess(dirs[1]!, envOf('node-b', B));
    }, { timeout: 120_000 });

    after(async () => {
      for (const client of clients) client.end(true);
      await Promise.all([nodeA?.stop(), nodeB?.stop()]);
      const admin = new pg.Client({ connectionString: databaseUrl });
      await admin.connect();
      await admin.query(`drop schema if exists ${schema} cascade`);
      await admin.end();
      for (const dir of dirs) await removeDataDir(dir);
    }, { timeout: 60_000 });

    test('a gateway created, stopped, started and deleted through node A applies on node B, in force there when node A answers', { timeout: 60_000 }, async () => {
      // Each answer of node A comes once node B applied the change (registry-bus.ts): one probe right after it, no wait.
      const gateway = await createGateway('cluster_control');
      assert.equal(await probeTls(pki, B, gateway.port), 'tls', 'node B listens when node A answers 201');
      const onB = await nodeB.api<GatewayJson>('GET', `/gateways/${gateway.id}`);
      assert.equal(onB.json.status, 'RUNNING');

      assert.equal((await nodeA.api('POST', `/gateways/${gateway.id}/stop`)).status, 200);
      assert.equal(await probeTls(pki, B, gateway.port), 'refused', 'node B stopped listening when node A answers');
      assert.equal((await nodeB.api<GatewayJson>('GET', `/gateways/${gateway.id}`)).json.status, 'STOPPED');

      assert.equal((await nodeA.api('POST', `/gateways/${gateway.id}/start`)).status, 200);
      assert.equal(await probeTls(pki, B, gateway.port), 'tls', 'node B listens again when node A answers');

      // An edit moves the listener on every node.
      const moved = await freePort();
      assert.equal((await nodeA.api('PATCH', `/gateways/${gateway.id}`, { port: moved })).status, 200);
      assert.equal(await probeTls(pki, B, moved), 'tls', 'node B moved its listener when node A answers');

      assert.equal((await nodeA.api('DELETE', `/gateways/${gateway.id}`)).status, 204);
      assert.equal(await probeTls(pki, B, moved), 'refused', 'node B closed the deleted gateway when node A answers');
      assert.equal((await nodeB.api('GET', `/gateways/${gateway.id}`)).status, 404);
    });

    test('a PUBLISH on node A reaches a subscriber on node B at QoS 0 and 1, topic, properties and subscription id intact; a gateway without subscribers on B sends B nothing', { timeout: 60_000 }, async () => {
      const routed = await createGateway('cluster_routed');
      const quiet = await createGateway('cluster_quiet');
      for (const name of ['sub-b', 'pub-a']) await addDevice(routed.productKey, name);
      for (const name of ['sub-a', 'pub-q']) await addDevice(quiet.productKey, name);
      await waitFor('node B to listen', async () => ((await probeTls(pki, B, routed.port)) === 'tls' ? true : undefined));
      await waitFor('node B to listen', async () => ((await probeTls(pki, B, quiet.port)) === 'tls' ? true : undefined));

      const subscriber = await connect(B, routed.port, 'sub-b');
      const received: { topic: string; payload: string; qos: number; subId: unknown; user: unknown; correlation: string | undefined }[] = [];
      subscriber.on('message', (topic, payload, packet) => received.push({
        topic, payload: payload.toString(), qos: packet.qos, subId: packet.properties?.subscriptionIdentifier,
        user: packet.properties?.userProperties, correlation: packet.properties?.correlationData?.toString(),
      }));
      // The SUBACK comes once node B's interest in the gateway is in force across the cluster.
      await subscriber.subscribeAsync('plant/#', { qos: 1, properties: { subscriptionIdentifier: 7 } });

      const publisher = await connect(A, routed.port, 'pub-a');
      // A topic NATS subjects could not carry as is: dots, spaces, '*', '>', an empty level.
      const odd = 'plant/a.b c/*/>//end';
      await publisher.publishAsync(odd, 'zero', { qos: 0, properties: { userProperties: { line: '7' } } });
      await publisher.publishAsync('plant/one', 'one', { qos: 1, properties: { correlationData: Buffer.from('req-1') } });
      await waitFor('both messages on node B', () => (received.length >= 2 ? true : undefined));
      // As JSON: what a property the packet did not carry reads as (absent or undefined) does not matter.
      assert.deepEqual(JSON.parse(JSON.stringify(received)), [
        { topic: odd, payload: 'zero', qos: 0, subId: 7, user: { line: '7' } },
        { topic: 'plant/one', payload: 'one', qos: 1, subId: 7, correlation: 'req-1' },
      ]);

      // The quiet gateway has a subscriber on node A only: its traffic never reaches node B.
      const localSubscriber = await connect(A, quiet.port, 'sub-a');
      await localSubscriber.subscribeAsync('#', { qos: 0 });
      const localReceived: string[] = [];
      localSubscriber.on('message', (_topic, payload) => localReceived.push(payload.toString()));
      const quietPublisher = await connect(A, quiet.port, 'pub-q');
      for (let i = 0; i < 5; i++) await quietPublisher.publishAsync('quiet/x', `q${i}`, { qos: 1 });
      await waitFor('the quiet gateway\'s messages on node A', () => (localReceived.length >= 5 ? true : undefined));
      // Node A stores in order on one connection: once a later marker reached B, nothing of the quiet gateway is on its way.
      await publisher.publishAsync('plant/marker', 'marker', { qos: 1 });
      await waitFor('the marker on node B', () => (received.some((m) => m.payload === 'marker') ? true : undefined));
      assert.equal(await metric(nodeB, quiet.id, 'received') + await metric(nodeB, quiet.id, 'stored_received'), 0);
      // QoS 1: into the cluster's stream (issue 16 item 2), not over the QoS 0 route.
      assert.ok(await metric(nodeA, quiet.id, 'stored') >= 5, 'node A offered the quiet gateway\'s messages to the cluster');
      assert.ok(await metric(nodeB, routed.id, 'received') + await metric(nodeB, routed.id, 'stored_received') >= 3, 'node B counts what it receives');
    });

    test('a node that starts marks offline only the devices it held: a device connected to node B stays ONLINE across node A\'s restart', { timeout: 90_000 }, async () => {
      const gateway = await createGateway('cluster_presence');
      await addDevice(gateway.productKey, 'held-b');
      await waitFor('node B to listen', async () => ((await probeTls(pki, B, gateway.port)) === 'tls' ? true : undefined));
      const device = await connect(B, gateway.port, 'held-b');
      const status = async (node: GatehouseProcess): Promise<string> =>
        (await node.api<DeviceJson>('GET', `/products/${gateway.productKey}/devices/held-b`)).json.status;
      await waitFor('the device ONLINE', async () => ((await status(nodeA)) === 'ONLINE' ? true : undefined));

      await nodeA.stop();
      nodeA = await startGatehouseProcess(dirs[0]!, envOf('node-a', A));
      assert.equal(await status(nodeA), 'ONLINE', 'node A\'s start left node B\'s device online');
      assert.ok(device.connected);

      // The node holding it still records its end.
      device.end(true);
      await waitFor('the device OFFLINE', async () => ((await status(nodeA)) === 'OFFLINE' ? true : undefined));
    });

    test('a node killed (-9): once its lease lapsed node B marks its devices OFFLINE, and only those; started again it clears only its own', { timeout: 90_000 }, async () => {
      const gateway = await createGateway('cluster_presence_kill');
      for (const name of ['on-a', 'on-b']) await addDevice(gateway.productKey, name);
      await waitFor('node B to listen', async () => ((await probeTls(pki, B, gateway.port)) === 'tls' ? true : undefined));
      await connect(A, gateway.port, 'on-a');
      const onB = await connect(B, gateway.port, 'on-b');
      const status = async (name: string): Promise<string> =>
        (await nodeB.api<DeviceJson>('GET', `/products/${gateway.productKey}/devices/${name}`)).json.status;
      await waitFor('both devices ONLINE', async () => ((await status('on-a')) === 'ONLINE' && (await status('on-b')) === 'ONLINE' ? true : undefined));

      await nodeA.kill9(); // no shutdown code runs on A: it marks nothing
      // Node A's lease lapses (10 s); node B, checking once a lease, marks A's device OFFLINE.
      await waitFor('node A\'s device OFFLINE', async () => ((await status('on-a')) === 'OFFLINE' ? true : undefined), 40_000);
      assert.equal(await status('on-b'), 'ONLINE', 'node A\'s death left node B\'s device online');
      // The device comes back through node A, started again: A clears what it held before (nothing now), not B's.
      nodeA = await startGatehouseProcess(dirs[0]!, envOf('node-a', A));
      assert.equal(await status('on-b'), 'ONLINE', 'node A\'s start left node B\'s device online');
      await connect(A, gateway.port, 'on-a', 'c-on-a-again');
      await waitFor('node A\'s device ONLINE again', async () => ((await status('on-a')) === 'ONLINE' ? true : undefined));
      assert.ok(onB.connected);
    });

    test('a retained message set on node A survives A\'s kill -9: a new subscriber on node B gets it (issue 16 item 4)', { timeout: 90_000 }, async () => {
      const gateway = await createGateway('cluster_retained');
      for (const name of ['ret-pub', 'ret-sub']) await addDevice(gateway.productKey, name);
      await waitFor('node B to listen', async () => ((await probeTls(pki, B, gateway.port)) === 'tls' ? true : undefined));
      const publisher = await connect(A, gateway.port, 'ret-pub');
      await publisher.publishAsync('config/x', 'kept', { qos: 1, retain: true }); // acknowledged: in JetStream
      await nodeA.kill9();
      const subscriber = await connect(B, gateway.port, 'ret-sub');
      const got = new Promise<string>((resolve) => subscriber.once('message', (topic, payload, packet) => resolve(`${topic} ${payload.toString()} ${packet.retain}`)));
      await subscriber.subscribeAsync('config/#', { qos: 1 });
      assert.equal(await got, 'config/x kept true');
      nodeA = await startGatehouseProcess(dirs[0]!, envOf('node-a', A)); // for after(): a node to stop
    });
  });
}
