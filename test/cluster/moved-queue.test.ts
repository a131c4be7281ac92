/**
 * Issue 16 item 2: a persistent session that moves to another node takes its queued messages with it, also those no
 * subscription of the session matches any more. Two in-process nodes (A on 127.0.0.2, B on 127.0.0.3), one PostgreSQL,
 * the CI's nats-server. A session offline on A has messages queued for its `#`; the gateway's access rules then allow
 * it only its own topics: A removes the `#` and drops the queued message it may no longer read, and keeps the one it
 * may. Its device reconnects on B: B resumes the session from A's record and must deliver that kept message, as A
 * would have [MQTT-4.1.0-1] (it is part of the session's state), though no subscription of the session matches it.
 * Before, B replayed the stream against the subscriptions only and the message was lost (found with
 * GATEHOUSE_TEST_WORKERS=2: access-control-changes' v3.1.1 test, whose reconnect lands on the other worker).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { TestGatehouse } from '../harness/gatehouse.ts';
import { clusterSkip, engineOf, TestCluster, waitFor, type GatewayJson } from '../harness/cluster.ts';

const A = '127.0.0.2';
const B = '127.0.0.3';
const OPEN = { defaultAction: 'ALLOW', rules: [] };
const OWN_TOPICS = { defaultAction: 'DENY', rules: [{ action: 'ALLOW', access: 'ALL', topic: 'devices/${deviceName}/#' }] };
const PERSISTENT = { clean: false, properties: { sessionExpiryInterval: 3600 } };

if (clusterSkip !== undefined) {
  test('queued messages move with their session', { skip: clusterSkip, timeout: 1_000 }, () => {});
} else {
  describe('a session moved to another node keeps its queued messages (issue 16 item 2)', { timeout: 120_000 }, () => {
    const cluster = new TestCluster();
    let nodeA: TestGatehouse;
    let gateway: GatewayJson;

    before(async () => {
      await cluster.setUp();
      nodeA = await cluster.startNode('moved-queue-a', A);
      await cluster.startNode('moved-queue-b', B);
      gateway = await cluster.createGateway(nodeA, 'moved_queue_gw', [A, B]);
    }, { timeout: 60_000 });

    after(() => cluster.dispose(), { timeout: 60_000 });

    test('a message queued on A for a subscription the access rules then removed is delivered on B, the refused one is not', { timeout: 30_000 }, async () => {
      const setRules = async (accessControl: object): Promise<void> => {
        const r = await nodeA.api('PATCH', `/gateways/${gateway.id}`, { accessControl });
        assert.equal(r.status, 200, JSON.stringify(r.json));
      };
      await setRules(OPEN);
      const spyDevice = await cluster.addDevice(nodeA, gateway);
      const publisherDevice = await cluster.addDevice(nodeA, gateway);
      const first = await cluster.connect(A, gateway, spyDevice, { clientId: 'spy', ...PERSISTENT });
      assert.deepEqual((await first.subscribeAsync('#', { qos: 1 })).map((g) => g.qos), [1]);
      await first.endAsync();

      const publisher = await cluster.connect(B, gateway, publisherDevice);
      await publisher.publishAsync(`devices/${publisherDevice}/secret`, 'theirs', { qos: 1 });
      await publisher.publishAsync(`devices/${spyDevice}/cmd`, 'mine', { qos: 1 });
      const held = (): { queued: number; subscriptions: number } | undefined => {
        const session = [...engineOf(nodeA, gateway.id).sessions()].find((s) => s.clientId === 'spy');
        return session === undefined ? undefined : { queued: session.queuedCount, subscriptions: session.subscriptionCount };
      };
      await waitFor('both messages queued for the session on A', () => (held()?.queued === 2 ? true : undefined));

      await setRules(OWN_TOPICS);
      // Wherever the edit applies first: A removes the '#' and drops what the device may no longer read.
      await waitFor('the rules applied on A', () => {
        const h = held();
        return h?.queued === 1 && h.subscriptions === 0 ? true : undefined;
      });

      const got: string[] = [];
      const again = cluster.open(B, gateway, spyDevice, { clientId: 'spy', ...PERSISTENT });
      again.on('message', (topic, payload) => got.push(`${topic} ${payload.toString()}`));
      const connack = await new Promise<{ sessionPresent: boolean }>((resolve, reject) => {
        again.once('connect', resolve);
        again.once('error', reject);
      });
      assert.equal(connack.sessionPresent, true);
      // Queued messages come before anything published after the reconnect: the marker, once here, says all came.
      assert.deepEqual((await again.subscribeAsync(`devices/${spyDevice}/#`, { qos: 1 })).map((g) => g.qos), [1]);
      await again.publishAsync(`devices/${spyDevice}/marker`, 'm', { qos: 1 });
      await waitFor('the marker on B', () => (got.includes(`devices/${spyDevice}/marker m`) ? true : undefined));
      assert.deepEqual(got, [`devices/${spyDevice}/cmd mine`, `devices/${spyDevice}/marker m`]);
      await again.endAsync();
      await publisher.endAsync();
    });

    test('messages stored after the session\'s node stopped, under a subscription the rules remove as it resumes on B: the readable one is delivered, the refused one not', { timeout: 60_000 }, async () => {
      const setRules = async (accessControl: object): Promise<void> => {
        const r = await nodeA.api('PATCH', `/gateways/${gateway.id}`, { accessControl });
        assert.equal(r.status, 200, JSON.stringify(r.json));
      };
      await setRules(OPEN);
      const C = '127.0.0.4';
      const nodeC = await cluster.startNode('moved-queue-c', C);
      await cluster.listening(C, gateway);
      const spyDevice = await cluster.addDevice(nodeA, gateway);
      const publisherDevice = await cluster.addDevice(nodeA, gateway);
      const first = await cluster.connect(C, gateway, spyDevice, { clientId: 'spy-stopped', ...PERSISTENT });
      assert.deepEqual((await first.subscribeAsync('#', { qos: 1 })).map((g) => g.qos), [1]);
      await first.endAsync();
      // C stops (its record says the session's '#' and its floor); what follows is stored while no node holds it.
      await nodeC.stop();
      const publisher = await cluster.connect(B, gateway, publisherDevice);
      await publisher.publishAsync(`devices/${publisherDevice}/secret`, 'theirs', { qos: 1 });
      await publisher.publishAsync(`devices/${spyDevice}/cmd`, 'mine', { qos: 1 });
      await setRules(OWN_TOPICS);
      await waitFor('the rules on B', async () => {
        const probe = await cluster.connect(B, gateway, spyDevice, { clientId: `probe-${Date.now()}` });
        try {
          // MQTT.js rejects a SUBACK that refuses (0x87 Not authorized).
          return await probe.subscribeAsync('#', { qos: 1 }).then(() => undefined, () => true as const);
        } finally {
          await probe.endAsync();
        }
      });

      // B resumes it from the record: the rules take its '#' away as it resumes, before the replay reaches either
      // message; what it was owed under that '#' and may read still comes, as it would from a queue.
      const got: string[] = [];
      const again = cluster.open(B, gateway, spyDevice, { clientId: 'spy-stopped', ...PERSISTENT });
      again.on('message', (topic, payload) => got.push(`${topic} ${payload.toString()}`));
      const connack = await new Promise<{ sessionPresent: boolean }>((resolve, reject) => {
        again.once('connect', resolve);
        again.once('error', reject);
      });
      assert.equal(connack.sessionPresent, true);
      assert.deepEqual((await again.subscribeAsync(`devices/${spyDevice}/#`, { qos: 1 })).map((g) => g.qos), [1]);
      await again.publishAsync(`devices/${spyDevice}/marker`, 'm', { qos: 1 });
      await waitFor('the marker on B', () => (got.includes(`devices/${spyDevice}/marker m`) ? true : undefined));
      assert.deepEqual(got, [`devices/${spyDevice}/cmd mine`, `devices/${spyDevice}/marker m`]);
      await again.endAsync();
      await publisher.endAsync();
    });
  });
}
