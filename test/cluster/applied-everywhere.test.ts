/**
 * Issue 16 item 7: a change made through one node's API is answered once every other live node applied it
 * (registry events.ts `applied`, cluster/registry-bus.ts): what the API answered is in force everywhere. Two in-process
 * nodes on the nats-server and PostgreSQL of the test environment; node B's appliers are slowed on purpose (a listener
 * of its own that takes 400 ms), so an answer that did not wait for node B would come before it finished.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { TestGatehouse } from '../harness/gatehouse.ts';
import { clusterSkip, TestCluster, type GatewayJson } from '../harness/cluster.ts';

const A = '127.0.0.2';
const B = '127.0.0.3';
const SLOW_MS = 400;

if (clusterSkip !== undefined) {
  test('a change answered once applied on every node', { skip: clusterSkip, timeout: 1_000 }, () => {});
} else {
  describe('a change answered once applied on every node (issue 16 item 7)', { timeout: 120_000 }, () => {
    const cluster = new TestCluster();
    let nodeA: TestGatehouse;
    let nodeB: TestGatehouse;
    /** What node B's slow applier finished, by event. */
    const appliedOnB: string[] = [];

    before(async () => {
      await cluster.setUp();
      nodeA = await cluster.startNode('applied-a', A);
      nodeB = await cluster.startNode('applied-b', B);
      const slow = (what: string) => (): Promise<void> => new Promise((resolve) => setTimeout(() => {
        appliedOnB.push(what);
        resolve();
      }, SLOW_MS));
      nodeB.gatehouse.registry.events.on('gateway.created', slow('created'));
      nodeB.gatehouse.registry.events.on('gateway.updated', slow('updated'));
      nodeB.gatehouse.registry.events.on('webhook.changed', slow('webhook'));
      nodeB.gatehouse.registry.events.on('device.deleted', slow('device deleted'));
    }, { timeout: 60_000 });

    after(() => cluster.dispose(), { timeout: 60_000 });

    test('a gateway created, its rules edited, a webhook added and a device deleted through node A: each answered once node B applied it', { timeout: 60_000 }, async () => {
      const gateway: GatewayJson = await cluster.createGateway(nodeA, 'applied_gw');
      assert.deepEqual(appliedOnB, ['created']);
      assert.ok(nodeB.gatehouse.runtime.instance(gateway.id) !== undefined, 'node B runs the gateway when node A answers 201');
      await cluster.listening(B, gateway);

      const rules = { defaultAction: 'DENY', rules: [{ action: 'ALLOW', access: 'ALL', topic: 'devices/${deviceName}/#' }] };
      const patched = await nodeA.api('PATCH', `/gateways/${gateway.id}`, { accessControl: rules });
      assert.equal(patched.status, 200, JSON.stringify(patched.json));
      assert.deepEqual(appliedOnB, ['created', 'updated']);

      const hook = await nodeA.api('POST', '/webhooks', { url: 'https://127.0.0.1:9/hook', eventTypes: ['message'] });
      assert.equal(hook.status, 201, JSON.stringify(hook.json));
      assert.deepEqual(appliedOnB, ['created', 'updated', 'webhook']);

      const device = await cluster.addDevice(nodeA, gateway); // a creation is not waited for: no node keeps anything of it
      const deleted = await nodeA.api('DELETE', `/products/${gateway.productKey}/devices/${device}`);
      assert.equal(deleted.status, 204, JSON.stringify(deleted.json));
      assert.deepEqual(appliedOnB, ['created', 'updated', 'webhook', 'device deleted']);

      // A read is not held: nothing it waits for.
      const read = await nodeA.api('GET', `/gateways/${gateway.id}`);
      assert.equal(read.status, 200);
    });
  });
}
