/**
 * Issue 16 item 4: retained messages across two cluster nodes (in-process, node A on 127.0.0.2 and node B
 * on 127.0.0.3, one PostgreSQL, the nats-server of GATEHOUSE_TEST_NATS_URL). A retained message set,
 * replaced or cleared on one node is what a new subscriber on the other gets at once (after the PUBACK,
 * with no wait in between); a node that starts later reads the set; the gateway's retained limits count
 * the cluster's set. (Surviving a `kill -9` of the node that set it: two-nodes.test.ts.)
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import tls from 'node:tls';
import { after, before, describe, test } from 'node:test';
import mqtt from 'mqtt';
import pg from 'pg';
import { freePort, removeDataDir, startTestGatehouse, type TestGatehouse } from '../harness/gatehouse.ts';
import { getPki, type SharedPki } from '../harness/pki.ts';

const databaseUrl = process.env.GATEHOUSE_TEST_DATABASE_URL;
const natsUrl = process.env.GATEHOUSE_TEST_NATS_URL;

const A = '127.0.0.2';
const B = '127.0.0.3';
const C = '127.0.0.4';

interface GatewayJson { id: string; port: number; productKey: string }
interface Received { topic: string; payload: string; retain: boolean }

async function waitFor<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, ms = 20_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

if (databaseUrl === undefined || natsUrl === undefined) {
  test('retained messages across nodes', { skip: 'GATEHOUSE_TEST_NATS_URL and GATEHOUSE_TEST_DATABASE_URL must be set (.ci/run sets both; test/cluster/README.md)' }, () => {});
} else {
  describe('retained messages across cluster nodes', { timeout: 180_000 }, () => {
    const schema = `cluster_${randomBytes(6).toString('hex')}`;
    const dbUrl = new URL(databaseUrl);
    dbUrl.searchParams.set('options', `-c search_path=${schema}`);
    const masterKey = randomBytes(32).toString('hex');
    const clients: mqtt.MqttClient[] = [];
    const nodes: TestGatehouse[] = [];
    let pki: SharedPki;
    let nodeA: TestGatehouse;
    let nodeB: TestGatehouse;
    let gateway: GatewayJson;
    let device = 0;

    const startNode = async (nodeId: string, host: string): Promise<TestGatehouse> => {
      const node = await startTestGatehouse({
        env: {
          GATEHOUSE_DATABASE_URL: dbUrl.toString(), GATEHOUSE_NATS_URL: natsUrl, GATEHOUSE_MASTER_KEY: masterKey,
          GATEHOUSE_NODE_ID: nodeId, GATEHOUSE_HTTP_HOST: host, GATEHOUSE_MQTT_HOST: host,
        },
      });
      nodes.push(node);
      return node;
    };
    const listening = (host: string): Promise<true> => waitFor(`${host} to listen`, () => new Promise<true | undefined>((resolve) => {
      const socket = tls.connect({ host, port: gateway.port, servername: 'localhost', ca: pki.root.certPem });
      socket.once('secureConnect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(undefined));
    }));
    /** A new device (and client) of the gateway, connected to `host`. */
    const connect = async (host: string): Promise<mqtt.MqttClient> => {
      const name = `dev-${++device}`;
      const r = await nodeA.api('POST', `/products/${gateway.productKey}/devices`, { username: name, password: `pw-${name}` });
      assert.equal(r.status, 201, JSON.stringify(r.json));
      const client = mqtt.connect({
        host, port: gateway.port, protocol: 'mqtts', ca: pki.root.certPem, servername: 'localhost', reconnectPeriod: 0, connectTimeout: 5000,
        protocolVersion: 5, clientId: `c-${name}`, username: name, password: `pw-${name}`,
      });
      clients.push(client);
      return new Promise((resolve, reject) => {
        client.once('connect', () => resolve(client));
        client.once('error', reject);
      });
    };
    /**
     * What a new subscriber on `host` gets for `filter`: the retained messages, then a marker published on the
     * same node after the SUBACK (so "nothing retained" is known, not waited for).
     */
    const retainedOn = async (host: string, filter: string): Promise<Received[]> => {
      const subscriber = await connect(host);
      const got: Received[] = [];
      subscriber.on('message', (topic, payload, packet) => got.push({ topic, payload: payload.toString(), retain: packet.retain }));
      await subscriber.subscribeAsync([filter, 'marker/#'], { qos: 1 });
      const marker = `marker/${randomBytes(4).toString('hex')}`;
      await subscriber.publishAsync(marker, 'm', { qos: 1 });
      await waitFor('the marker', () => (got.some((m) => m.topic === marker) ? true : undefined));
      subscriber.end(true);
      return got.filter((m) => !m.topic.startsWith('marker/'));
    };

    before(async () => {
      pki = await getPki();
      const admin = new pg.Client({ connectionString: databaseUrl });
      await admin.connect();
      await admin.query(`create schema ${schema}`);
      await admin.end();
      nodeA = await startNode('retained-a', A); // first: it migrates the schema
      nodeB = await startNode('retained-b', B);
      const created = await nodeA.api<GatewayJson>('POST', '/gateways', {
        name: 'retained_gw', port: await freePort(), authType: 'ONE_PARTY',
        certificates: { serverCertificateChain: pki.server.chainPem, serverPrivateKey: pki.server.keyPem },
      });
      assert.equal(created.status, 201, JSON.stringify(created.json));
      gateway = created.json;
      await listening(B);
    }, { timeout: 60_000 });

    after(async () => {
      for (const client of clients) client.end(true);
      await Promise.all(nodes.map((n) => n.stop()));
      const admin = new pg.Client({ connectionString: databaseUrl });
      await admin.connect();
      await admin.query(`drop schema if exists ${schema} cascade`);
      await admin.end();
      for (const node of nodes) await removeDataDir(node.dataDir);
    }, { timeout: 60_000 });

    test('set on A, seen at once on B; replaced on B, seen on A; cleared on A, gone on B; a node started later reads the set', { timeout: 90_000 }, async () => {
      const publisherA = await connect(A);
      // Any topic: dots, spaces, '*', '>', an empty level (the bucket's key is its hash, the value carries it).
      const odd = 'state/a.b c/*/>//end';
      await publisherA.publishAsync('state/one', 'v1', { qos: 1, retain: true });
      await publisherA.publishAsync(odd, 'odd', { qos: 0, retain: true });
      await publisherA.publishAsync('state/two', 'two', { qos: 2, retain: true });
      // No wait between A's PUBACK and B's SUBSCRIBE: B's SUBACK waits until B holds what the cluster holds.
      // (The QoS 0 one before the QoS 2 one: the bucket keeps A's order, B has it once it has the later one.)
      assert.deepEqual((await retainedOn(B, 'state/#')).sort((x, y) => x.topic.localeCompare(y.topic)), [
        { topic: odd, payload: 'odd', retain: true },
        { topic: 'state/one', payload: 'v1', retain: true },
        { topic: 'state/two', payload: 'two', retain: true },
      ]);

      const publisherB = await connect(B);
      await publisherB.publishAsync('state/one', 'v2', { qos: 1, retain: true });
      assert.deepEqual(await retainedOn(A, 'state/one'), [{ topic: 'state/one', payload: 'v2', retain: true }]);

      // An empty retained PUBLISH clears the topic [MQTT-3.3.1-6], on every node.
      await publisherA.publishAsync('state/one', '', { qos: 1, retain: true });
      assert.deepEqual(await retainedOn(B, 'state/one'), []);

      // A third node, started now, reads the cluster's set (nothing of it is in its own files).
      const nodeC = await startNode('retained-c', C);
      await listening(C);
      assert.deepEqual((await retainedOn(C, 'state/#')).map((m) => `${m.topic} ${m.payload}`).sort(), [`${odd} odd`, 'state/two two']);
      await nodeC.stop();
    });

    test('the gateway\'s retained limit counts the cluster\'s set: two set on A, a third new topic on B is refused (0x97)', { timeout: 60_000 }, async () => {
      const limited = await nodeA.api('PATCH', `/gateways/${gateway.id}`, { limits: { maxRetainedMessages: 4 } });
      assert.equal(limited.status, 200, JSON.stringify(limited.json));
      await waitFor('node B to apply the limit', () => {
        const instance = [...nodeB.gatehouse.runtime.instances()].find((i) => i.config.id === gateway.id);
        return instance?.broker.options.maxRetained === 4 ? true : undefined;
      });
      // Two are left from the first test (the odd topic and state/two); two more fill the cluster's four.
      const publisherA = await connect(A);
      await publisherA.publishAsync('quota/1', '1', { qos: 1, retain: true });
      await publisherA.publishAsync('quota/2', '2', { qos: 1, retain: true });
      assert.equal((await retainedOn(B, 'quota/#')).length, 2); // node B holds them (its SUBACK waited)
      const publisherB = await connect(B);
      const reasons: number[] = [];
      publisherB.on('packetreceive', (packet) => {
        if (packet.cmd === 'puback') reasons.push(packet.reasonCode ?? 0);
      });
      await publisherB.publishAsync('quota/3', '3', { qos: 1, retain: true }).catch(() => undefined);
      await waitFor('the PUBACK', () => (reasons.length > 0 ? true : undefined));
      assert.deepEqual(reasons, [0x97]);
      // Replacing a topic the cluster holds is no new one: accepted.
      reasons.length = 0;
      await publisherB.publishAsync('quota/2', '2b', { qos: 1, retain: true });
      assert.deepEqual(reasons, [0]);
      assert.deepEqual(await retainedOn(A, 'quota/#'), [{ topic: 'quota/1', payload: '1', retain: true }, { topic: 'quota/2', payload: '2b', retain: true }]);
    });
  });
}
