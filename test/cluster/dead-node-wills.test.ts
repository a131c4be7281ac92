/**
 * Issue 16 item 6: the wills of a dead node's devices are published once, by one survivor, after the dead node's
 * lease lapsed. Three nodes as `npm start` runs them (A on 127.0.0.2, B on 127.0.0.3, C on 127.0.0.4); devices
 * on A with wills without and with a delay, and one that reconnects to B in time; `kill -9` of A; subscribers on
 * B and on C each get every due will exactly once (a will published by both survivors would reach each twice).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type mqtt from 'mqtt';
import type { GatehouseProcess } from '../harness/gatehouse-process.ts';
import { clusterSkip, gatewayCounter, TestCluster, waitFor, type GatewayJson } from '../harness/cluster.ts';

const A = '127.0.0.2';
const B = '127.0.0.3';
const C = '127.0.0.4';

if (clusterSkip !== undefined) {
  test('wills of a dead node', { skip: clusterSkip, timeout: 1_000 }, () => {});
} else {
  describe('wills of a dead cluster node (issue 16 item 6)', { timeout: 300_000 }, () => {
    const cluster = new TestCluster();
    let nodeA: GatehouseProcess;
    let nodeB: GatehouseProcess;
    let nodeC: GatehouseProcess;
    let gateway: GatewayJson;

    before(async () => {
      await cluster.setUp();
      nodeA = await cluster.startProcess('wills-a', A); // first: it migrates the schema
      nodeB = await cluster.startProcess('wills-b', B);
      nodeC = await cluster.startProcess('wills-c', C);
      gateway = await cluster.createGateway(nodeA, 'wills_gw');
      await cluster.listening(B, gateway);
      await cluster.listening(C, gateway);
    }, { timeout: 120_000 });

    after(() => cluster.dispose(), { timeout: 60_000 });

    test('kill -9 of node A: after its lease, one survivor publishes each due will once; a device back on B in time has none [MQTT-3.1.3-9]', { timeout: 180_000 }, async () => {
      const seen: { B: string[]; C: string[] } = { B: [], C: [] };
      for (const [host, list] of [[B, seen.B], [C, seen.C]] as const) {
        const watcher = await cluster.connect(host, gateway, await cluster.addDevice(nodeA, gateway));
        watcher.on('message', (topic, payload) => list.push(`${topic} ${payload.toString()}`));
        await watcher.subscribeAsync('will/#', { qos: 1 });
      }
      const will = (device: string, delay?: number): mqtt.IClientOptions => ({
        properties: { sessionExpiryInterval: 120 },
        will: {
          topic: `will/${device}`, payload: Buffer.from('gone'), qos: 1, retain: false,
          ...(delay === undefined ? {} : { properties: { willDelayInterval: delay } }),
        },
      });
      const now = await cluster.addDevice(nodeA, gateway);
      const delayed = await cluster.addDevice(nodeA, gateway);
      const back = await cluster.addDevice(nodeA, gateway);
      const polite = await cluster.addDevice(nodeA, gateway);
      await cluster.connect(A, gateway, now, will(now));
      await cluster.connect(A, gateway, delayed, will(delayed, 3));
      await cluster.connect(A, gateway, back, will(back, 60));
      // DISCONNECT 0x00 deletes the will [MQTT-3.1.2-10]: nobody may publish it.
      const leaving = await cluster.connect(A, gateway, polite, will(polite));
      await leaving.endAsync();
      // Its end reaches the record one NATS round trip after the DISCONNECT: a node killed within that window
      // leaves the will in the record, and a survivor publishes it (README, "what does not hold yet").
      await new Promise((resolve) => setTimeout(resolve, 1_000));

      await nodeA.kill9();
      // Back on B before its will's delay ran out: the new connection cancels it, wherever it was recorded.
      await cluster.connect(B, gateway, back, { properties: { sessionExpiryInterval: 120 } });

      for (const list of [seen.B, seen.C]) {
        await waitFor('the due wills', () => (list.includes(`will/${now} gone`) && list.includes(`will/${delayed} gone`) ? true : undefined), 60_000);
      }
      // Markers through both survivors: what either published before them has arrived everywhere.
      const markers = await cluster.connect(B, gateway, await cluster.addDevice(nodeB, gateway));
      const markersC = await cluster.connect(C, gateway, await cluster.addDevice(nodeB, gateway));
      await markers.publishAsync('will/marker', 'b', { qos: 1 });
      await markersC.publishAsync('will/marker', 'c', { qos: 1 });
      for (const list of [seen.B, seen.C]) {
        await waitFor('the markers', () => (list.includes('will/marker b') && list.includes('will/marker c') ? true : undefined));
        assert.deepEqual(list.filter((m) => !m.startsWith('will/marker')).sort(), [`will/${delayed} gone`, `will/${now} gone`].sort());
      }
      // One survivor published them all: the one that won the dead node's reap.
      const published = [await gatewayCounter(nodeB, gateway, 'cluster_wills_published'), await gatewayCounter(nodeC, gateway, 'cluster_wills_published')];
      assert.deepEqual(published.sort(), [0, 2]);
    });
  });
}
