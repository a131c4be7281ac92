/**
 * Issue 16: what a gateway limits is the gateway's, not one node's. Two in-process nodes (A on 127.0.0.2 behind a NATS
 * relay the test cuts, B on 127.0.0.3), one gateway. Password guesses from one address spread over both nodes meet one
 * throttle (one at a time, a short queue, the surplus refused 0x9F without a hash: at most 8 of 40 checked, as on one
 * process); `maxConnections: 2` counts the connections of both nodes (a third device refused 0x97 on either, a
 * takeover from the other node let through, the API's use and refusals the gateway's); a node cut off stops counting
 * once its lease has lapsed (its connections free their places without it); `maxSessionsPerDevice: 2` counts a device's
 * sessions on both nodes (a third client id refused 0x97 on either, its own sessions resumed on the other node); without
 * a limit, the gateway's connected clients each node's API shows are both nodes'.
 */
import assert from 'node:assert/strict';
import tls from 'node:tls';
import { after, before, describe, test } from 'node:test';
import type mqtt from 'mqtt';
import mqttPacket from 'mqtt-packet';
import type { TestGatehouse } from '../harness/gatehouse.ts';
import { clusterNatsUrl, clusterSkip, engineOf, natsRelay, TestCluster, waitFor, type GatewayJson, type NatsRelay } from '../harness/cluster.ts';
import { connackReasonCode } from '../harness/raw-mqtt.ts';

const A = '127.0.0.2';
const B = '127.0.0.3';
/** Where the guesses come from (both nodes see the same source), and the real device's own address. */
const ATTACKER = '127.0.0.9';
const DEVICE_ADDRESS = '127.0.0.10';
// A lease short enough to wait for its lapse, long enough for the steps before the cut on a loaded machine.
const LEASE = { heartbeatMs: 500, leaseMs: 8_000 };

/** MQTT.js hands its options to tls.connect, localAddress included (not in its types). */
const FROM_DEVICE = { localAddress: DEVICE_ADDRESS } as mqtt.IClientOptions;

interface LimitsJson { limitsUsage: { maxConnections: { current: number; hits: number } } | null }

if (clusterSkip !== undefined) {
  test('gateway counts across nodes', { skip: clusterSkip, timeout: 1_000 }, () => {});
} else {
  describe('a gateway\'s limits across two nodes (issue 16)', { timeout: 300_000 }, () => {
    const cluster = new TestCluster();
    const sockets: tls.TLSSocket[] = [];
    let relay: NatsRelay;
    let nodeA: TestGatehouse;
    let nodeB: TestGatehouse;
    let gateway: GatewayJson;

    before(async () => {
      await cluster.setUp();
      relay = await natsRelay(clusterNatsUrl!);
      nodeA = await cluster.startNode('counts-a', A, { natsUrl: relay.url, leaseTimings: LEASE });
      nodeB = await cluster.startNode('counts-b', B, { leaseTimings: LEASE });
      gateway = await cluster.createGateway(nodeA, 'counted_gw');
      await cluster.listening(A, gateway);
      await cluster.listening(B, gateway);
      // Each node knows the other's lease (the throttle's homes are chosen from them).
      await waitFor('both leases seen by both nodes', async () => {
        const live = await Promise.all([nodeA, nodeB].map((n) => n.gatehouse.cluster!.leases.live()));
        return live.every((leases) => leases.length === 2) ? true : undefined;
      });
    }, { timeout: 120_000 });

    after(async () => {
      for (const s of sockets) s.destroy();
      relay.restore();
      await cluster.dispose();
      await relay.close();
    }, { timeout: 90_000 });

    function openTls(host: string): Promise<tls.TLSSocket> {
      return new Promise((resolve, reject) => {
        // localAddress is net's (tls.connect passes it on): every guess from one source.
        const options = { host, port: gateway.port, localAddress: ATTACKER, ca: cluster.pki.root.certPem, servername: 'localhost' } as tls.ConnectionOptions;
        const socket = tls.connect(options, () => resolve(socket));
        sockets.push(socket);
        socket.once('error', reject);
      });
    }


    /** 0 when the device connects (its client ended again at once), else the CONNACK's refusal. */
    async function outcome(host: string, device: string, clientId = `c-${device}`): Promise<number> {
      return cluster.connect(host, gateway, device, { clientId, ...FROM_DEVICE }).then((client) => {
        client.end(true);
        return 0;
      }, (err: { code?: number }) => err.code ?? -1);
    }

    test('parallel password guesses from one address over both nodes are judged by one throttle: at most 8 of 40 checked, the rest 0x9F; the device still gets in', { timeout: 90_000 }, async () => {
      const device = await cluster.addDevice(nodeA, gateway);
      const ATTEMPTS = 40;
      const attackers = await Promise.all(Array.from({ length: ATTEMPTS }, (_, i) => openTls(i % 2 === 0 ? A : B)));
      const answers = attackers.map(connackReasonCode);
      // Every guess leaves in the same turn, half to each node.
      attackers.forEach((socket, i) => socket.write(mqttPacket.generate({
        cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clean: true, keepalive: 30, clientId: `guess-${i}`,
        username: device, password: Buffer.from(`guess-${i}`),
      })));
      const codes = await Promise.all(answers);
      const checked = codes.filter((c) => c === 0x86).length;
      const refused = codes.filter((c) => c === 0x9f).length;
      assert.equal(checked + refused, ATTEMPTS, `unexpected codes ${JSON.stringify(codes)}`);
      // One throttle for the address: one running and four waiting after the free failures, whichever node a guess reached
      // (a throttle per node checks up to 8 on each).
      assert.ok(checked <= 8, `${checked} guesses were checked: ${JSON.stringify(codes)}`);
      assert.ok(codes.filter((c, i) => i % 2 === 1 && c === 0x9f).length > 0 && codes.filter((c, i) => i % 2 === 0 && c === 0x9f).length > 0,
        `refused on both nodes: ${JSON.stringify(codes)}`);
      // The device, from its own address, on either node.
      assert.equal(await outcome(A, device), 0);
      assert.equal(await outcome(B, device), 0);
    });

    test('maxSessionsPerDevice: 2 counts the device\'s sessions on both nodes: a third client id is refused 0x97 on either; its sessions still resume on the other node', { timeout: 90_000 }, async () => {
      const r = await nodeA.api('PATCH', `/gateways/${gateway.id}`, { limits: { maxSessionsPerDevice: 2 } });
      assert.equal(r.status, 200, JSON.stringify(r.json));
      await waitFor('both nodes to apply the limit', () => ([nodeA, nodeB].every((n) => engineOf(n, gateway.id).options.maxSessionsPerOwner === 2) ? true : undefined));
      const device = await cluster.addDevice(nodeA, gateway);
      const kept = { clean: false, properties: { sessionExpiryInterval: 300 }, ...FROM_DEVICE } as mqtt.IClientOptions;
      // One session on each node (kept after their connections end).
      const a = await cluster.connect(A, gateway, device, { clientId: 'sess-a', ...kept });
      const b = await cluster.connect(B, gateway, device, { clientId: 'sess-b', ...kept });
      await Promise.all([a.endAsync(), b.endAsync()]);
      // Each node holds one: a node counting its own would admit a third.
      assert.equal(await outcome(A, device, 'sess-c'), 0x97, 'A: sess-a here, sess-b on B');
      assert.equal(await outcome(B, device, 'sess-c'), 0x97, 'B: sess-b here, sess-a on A');
      // Its own sessions are not "more": sess-a resumes on B (it moves there), and the device still holds two.
      const resumed = await cluster.connect(B, gateway, device, { clientId: 'sess-a', ...kept });
      await resumed.endAsync();
      assert.equal(await outcome(A, device, 'sess-d'), 0x97, 'both on B now');
      // The use shown is the device's sessions on every node (B holds both).
      assert.equal(engineOf(nodeB, gateway.id).mostSessionsOfAnOwner, 2);
      // Lifted: a third opens.
      await nodeA.api('PATCH', `/gateways/${gateway.id}`, { limits: { maxSessionsPerDevice: null } });
      await waitFor('both nodes to lift the limit', () => ([nodeA, nodeB].every((n) => engineOf(n, gateway.id).options.maxSessionsPerOwner === 0) ? true : undefined));
      assert.equal(await outcome(A, device, 'sess-c'), 0);
    });

    test('without a limit, each node\'s API shows the gateway\'s connected clients on both nodes', { timeout: 60_000 }, async () => {
      const [d1, d2] = [await cluster.addDevice(nodeA, gateway), await cluster.addDevice(nodeA, gateway)];
      const onA = await cluster.connect(A, gateway, d1, FROM_DEVICE);
      const onB = await cluster.connect(B, gateway, d2, FROM_DEVICE);
      for (const node of [nodeA, nodeB]) {
        // Written with each node's heartbeat (no CONNECT waits for it): polled until it has caught up.
        let seen: unknown;
        await waitFor('the gateway\'s connected clients through each node\'s API', async () => {
          seen = (await node.api<{ connectedClients: number }>('GET', `/gateways/${gateway.id}`)).json.connectedClients;
          return seen === 2 ? true : undefined;
        }, 10_000).catch(() => undefined);
        assert.equal(seen, 2, 'one connection on each node');
      }
      await Promise.all([onA.endAsync(), onB.endAsync()]);
      await waitFor('the API to follow the disconnects', async () => {
        const counts = await Promise.all([nodeA, nodeB].map(async (node) => (await node.api<{ connectedClients: number }>('GET', `/gateways/${gateway.id}`)).json.connectedClients));
        return counts.every((n) => n === 0) ? true : undefined;
      }, 10_000);
    });

    test('maxConnections: 2 counts both nodes: a third device is refused 0x97 on either, a takeover from the other node passes, the API shows the gateway\'s use', { timeout: 90_000 }, async () => {
      const r = await nodeA.api('PATCH', `/gateways/${gateway.id}`, { limits: { maxConnections: 2 } });
      assert.equal(r.status, 200, JSON.stringify(r.json));
      await waitFor('both nodes to apply the limit', () => ([nodeA, nodeB].every((n) => engineOf(n, gateway.id).options.maxConnections === 2) ? true : undefined));
      // The previous test's devices have gone on both nodes (their places given back).
      await waitFor('no connection left', () => ([nodeA, nodeB].every((n) => engineOf(n, gateway.id).connectedCount === 0) ? true : undefined));
      const [d1, d2, d3] = [await cluster.addDevice(nodeA, gateway), await cluster.addDevice(nodeA, gateway), await cluster.addDevice(nodeA, gateway)];
      const first = await cluster.connect(A, gateway, d1, FROM_DEVICE);
      await cluster.connect(B, gateway, d2, FROM_DEVICE);
      assert.equal(await outcome(A, d3), 0x97, 'A holds one, B one: full');
      assert.equal(await outcome(B, d3), 0x97);
      // d1 taking its own session over on B frees the place it held on A.
      const takenOver = new Promise((resolve) => first.once('close', () => resolve(undefined)));
      await cluster.connect(B, gateway, d1, FROM_DEVICE);
      await takenOver;
      assert.equal(await outcome(A, d3), 0x97, 'still two: the takeover took one place and freed one');
      for (const node of [nodeA, nodeB]) {
        // Each node's view of the others' parts follows their writes (a watch): polled until it has caught up.
        let seen: unknown;
        await waitFor('the gateway\'s use through each node\'s API', async () => {
          const got = (await node.api<LimitsJson>('GET', `/gateways/${gateway.id}`)).json.limitsUsage?.maxConnections;
          seen = got;
          return got?.current === 2 && got.hits === 3 ? got : undefined;
        }, 10_000).catch(() => undefined);
        assert.deepEqual(seen, { current: 2, hits: 3 });
      }
      assert.equal(engineOf(nodeA, gateway.id).connectedCount + engineOf(nodeB, gateway.id).connectedCount, 2);
    });

    test('a node cut off from NATS stops counting once its lease has lapsed: its places are the others\' again', { timeout: 90_000 }, async () => {
      // B holds d1 and d2 from the previous test: one goes, and A takes the place.
      const onB = cluster.clients.filter((c) => c.connected);
      assert.equal(onB.length, 2);
      await onB[0]!.endAsync(true);
      const d4 = await cluster.addDevice(nodeA, gateway);
      const d5 = await cluster.addDevice(nodeA, gateway);
      await waitFor('A to take the place B gave back', async () => {
        const c = await cluster.connect(A, gateway, d4, FROM_DEVICE).catch(() => undefined);
        return c === undefined ? undefined : c;
      }, 10_000);
      assert.equal(await outcome(B, d5), 0x97, 'A one, B one: full');
      relay.sever();
      // At once A's place still counts (its lease is fresh): B refuses.
      assert.equal(await outcome(B, d5), 0x97);
      // Once A's lease lapsed without renewal, its connections no longer hold places: B admits.
      const admitted = await waitFor('B to admit once A\'s lease lapsed', async () => ((await outcome(B, d5)) === 0 ? true : undefined), 45_000);
      assert.equal(admitted, true);
    });
  });
}
