/**
 * Issue 16 item 3: one owner per session across nodes, fenced. Two in-process nodes (A on 127.0.0.2, reaching
 * NATS through a relay the test can cut, and B on 127.0.0.3), one PostgreSQL, the CI's nats-server. A CONNECT on
 * B takes a session over from A (v5 hears 0x8E, v3.1.1 a close [MQTT-3.1.4-3]; Session Present 1, the state
 * moved with the record, item 2); the will of the connection taken over is published once, by B, without delay and not at all
 * with one [MQTT-3.1.3-9]; two clients racing with one client id end with one connected; a node cut off while
 * its session is claimed elsewhere cannot write over the record and lets go of its connection when back.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import tls from 'node:tls';
import type mqtt from 'mqtt';
import type mqttPacket from 'mqtt-packet';
import { randomUUID } from 'node:crypto';
import { createMessage, type RecordedWill } from '../../src/broker/index.ts';
import { SessionOwnership } from '../../src/cluster/session-ownership.ts';
import { MAX_EPOCH_USES, SessionRecords, willOf, type SessionState } from '../../src/cluster/session-records.ts';
import { silentLogger } from '../../src/core/logger.ts';
import type { TestGatehouse } from '../harness/gatehouse.ts';
import { clusterCounter, clusterNatsUrl, clusterSkip, collectAtPublish, engineOf, gatewayCounter, natsRelay, TestCluster, waitFor, type GatewayJson, type NatsRelay } from '../harness/cluster.ts';
import { frame } from '../harness/raw-mqtt.ts';

const A = '127.0.0.2';
const B = '127.0.0.3';
// A lease longer than any step here: a node cut off on purpose is not yet dead to the other (that is item 6's test).
const LEASE = { heartbeatMs: 500, leaseMs: 60_000 };

/** Wills seen by a subscriber, by topic; markers show that everything published before them has arrived. */
class WillWatch {
  readonly seen: string[] = [];
  readonly client: mqtt.MqttClient;
  constructor(client: mqtt.MqttClient) {
    this.client = client;
    client.on('message', (topic, payload) => this.seen.push(`${topic} ${payload.toString()}`));
  }
  count(entry: string): number {
    return this.seen.filter((s) => s === entry).length;
  }
}

if (clusterSkip !== undefined) {
  test('session ownership across nodes', { skip: clusterSkip, timeout: 1_000 }, () => {});
} else {
  describe('one owner per session across cluster nodes (issue 16 item 3)', { timeout: 300_000 }, () => {
    const cluster = new TestCluster();
    let relay: NatsRelay;
    let nodeA: TestGatehouse;
    let nodeB: TestGatehouse;
    let gateway: GatewayJson;
    let watchA: WillWatch;
    let watchB: WillWatch;
    let markers = 0;

    /** Publishes a marker through each node and waits for both on both watchers: what was published before is in. */
    const settle = async (): Promise<void> => {
      const pubA = await cluster.connect(A, gateway, await cluster.addDevice(nodeA, gateway));
      const pubB = await cluster.connect(B, gateway, await cluster.addDevice(nodeA, gateway));
      const mark = `${++markers}`;
      await pubA.publishAsync('will/marker', `a${mark}`, { qos: 1 });
      await pubB.publishAsync('will/marker', `b${mark}`, { qos: 1 });
      for (const watch of [watchA, watchB]) {
        await waitFor('the markers', () => (watch.count(`will/marker a${mark}`) === 1 && watch.count(`will/marker b${mark}`) === 1 ? true : undefined));
      }
      pubA.end(true);
      pubB.end(true);
    };
    const clientsOn = (node: TestGatehouse, clientId: string): number =>
      engineOf(node, gateway.id).clients().filter((c) => c.clientId === clientId).length;

    before(async () => {
      await cluster.setUp();
      relay = await natsRelay(clusterNatsUrl!);
      nodeA = await cluster.startNode('own-a', A, { natsUrl: relay.url, leaseTimings: LEASE }); // first: it migrates the schema
      nodeB = await cluster.startNode('own-b', B, { leaseTimings: LEASE });
      gateway = await cluster.createGateway(nodeA, 'ownership_gw');
      await cluster.listening(B, gateway);
      watchA = new WillWatch(await cluster.connect(A, gateway, await cluster.addDevice(nodeA, gateway)));
      watchB = new WillWatch(await cluster.connect(B, gateway, await cluster.addDevice(nodeA, gateway)));
      await watchA.client.subscribeAsync('will/#', { qos: 1 });
      await watchB.client.subscribeAsync('will/#', { qos: 1 });
    }, { timeout: 60_000 });

    after(async () => {
      relay?.restore();
      await cluster.dispose();
      await relay?.close();
    }, { timeout: 60_000 });

    test('a CONNECT on node B takes over the session connected on node A: v5 hears 0x8E, v3.1.1 a close; Session Present 1 on B with its subscriptions (the record holds its state), and again 1 [MQTT-3.1.4-3, MQTT-3.2.2-2]', { timeout: 60_000 }, async () => {
      const device = await cluster.addDevice(nodeA, gateway);
      const persistent = { clean: false, properties: { sessionExpiryInterval: 300 } };
      const old = await cluster.connect(A, gateway, device, persistent);
      await old.subscribeAsync('cmd/#', { qos: 1 });
      const taken = new Promise<number | undefined>((resolve) => old.once('disconnect', (packet) => resolve(packet.reasonCode)));

      const fresh = cluster.open(B, gateway, device, persistent);
      const connack = await new Promise<mqtt.IConnackPacket>((resolve, reject) => {
        fresh.once('connect', resolve);
        fresh.once('error', reject);
      });
      assert.equal(await taken, 0x8e);
      // The session's state moved with its record (issue 16 item 2): B resumes it [MQTT-3.2.2-2], its subscription too.
      assert.equal(connack.sessionPresent, true);
      await waitFor('node A to drop the session', () => (engineOf(nodeA, gateway.id).getSession(`c-${device}`) === undefined ? true : undefined));
      assert.equal(clientsOn(nodeB, `c-${device}`), 1);
      const command = new Promise<string>((resolve) => fresh.once('message', (topic) => resolve(topic)));
      await watchA.client.publishAsync('cmd/moved', 'x', { qos: 1 });
      assert.equal(await command, 'cmd/moved');
      // The DISCONNECT arrives before the socket's close: MQTT.js clears `connected` only at the close.
      await waitFor('the taken-over client to be closed', () => (!old.connected ? true : undefined));

      // Node B holds it now: its next connection resumes it here.
      fresh.end(true);
      await waitFor('the connection to end on B', () => (clientsOn(nodeB, `c-${device}`) === 0 ? true : undefined));
      const again = cluster.open(B, gateway, device, persistent);
      const resumed = await new Promise<mqtt.IConnackPacket>((resolve, reject) => {
        again.once('connect', resolve);
        again.once('error', reject);
      });
      assert.equal(resumed.sessionPresent, true);

      // v3.1.1: no DISCONNECT from a server; the network connection is closed.
      const v3Device = await cluster.addDevice(nodeA, gateway);
      const oldV3 = await cluster.connect(A, gateway, v3Device, { protocolVersion: 4 });
      const packets: string[] = [];
      oldV3.on('packetreceive', (packet) => packets.push(packet.cmd));
      const closed = new Promise<void>((resolve) => oldV3.once('close', () => resolve()));
      await cluster.connect(B, gateway, v3Device, { protocolVersion: 4 });
      await closed;
      assert.ok(!packets.includes('disconnect'));
      assert.equal(clientsOn(nodeA, `c-${v3Device}`), 0);
      assert.equal(clientsOn(nodeB, `c-${v3Device}`), 1);
    });

    test('a takeover resumes the session from its state on A when its connection closed, not from the record\'s last write: QoS 1 messages acknowledged on A do not come again on B', { timeout: 60_000 }, async () => {
      const records = SessionRecords.opener(nodeA.gatehouse.cluster!.connection);
      const device = await cluster.addDevice(nodeA, gateway);
      const clientId = `c-${device}`;
      const key = SessionRecords.key(gateway.id, clientId);
      const revision = async (): Promise<number | undefined> => (await (await records()).get(key))?.revision;
      const persistent = { clean: false, properties: { sessionExpiryInterval: 300 } };
      const old = await cluster.connect(A, gateway, device, persistent);
      await old.subscribeAsync('handover/#', { qos: 1 });
      const onA: string[] = [];
      old.on('message', (_topic, payload) => onA.push(payload.toString()));
      const publisher = await cluster.connect(A, gateway, await cluster.addDevice(nodeA, gateway));

      // A round of messages delivered and acknowledged on A with no write of the record from its start to the takeover
      // (A writes a session's floor once a second): the record's floor is then below all of them.
      let batch: string[] = [];
      for (let round = 1; ; round++) {
        const before = await revision();
        batch = Array.from({ length: 20 }, (_, i) => `r${round}-${i}`);
        for (const m of batch) await publisher.publishAsync('handover/x', m, { qos: 1 });
        await waitFor('the round on A', () => (batch.every((m) => onA.includes(m)) ? true : undefined));
        await waitFor('its PUBACKs on A', () => (engineOf(nodeA, gateway.id).getSession(clientId)?.inflightCount === 0 ? true : undefined));
        if (await revision() === before) break;
        assert.ok(round < 10, 'ten rounds each with a write of the record in it');
      }

      const fresh = cluster.open(B, gateway, device, persistent);
      const onB: string[] = [];
      fresh.on('message', (_topic, payload) => onB.push(payload.toString()));
      const connack = await new Promise<mqtt.IConnackPacket>((resolve, reject) => {
        fresh.once('connect', resolve);
        fresh.once('error', reject);
      });
      assert.equal(connack.sessionPresent, true);
      // A resumed session replays the stream after its floor before it joins the live feed: once a message published
      // after the takeover is in, whatever the resume replays is too.
      await publisher.publishAsync('handover/x', 'after', { qos: 1 });
      await waitFor('the message after the takeover on B', () => (onB.includes('after') ? true : undefined));
      assert.deepEqual(onB.filter((m) => batch.includes(m)), [], 'acknowledged on A, not delivered again on B');
      publisher.end(true);
    });

    const rawSession = (host: string, device: string, clientId: string): ReturnType<TestCluster['rawSession']> => cluster.rawSession(host, gateway, device, clientId);

    /** A subscriber on B to `<prefix>/#` at QoS 2, and what it got. */
    const qos2Subscriber = async (prefix: string): Promise<{ client: mqtt.MqttClient; got: string[] }> => {
      const client = await cluster.connect(B, gateway, await cluster.addDevice(nodeA, gateway));
      const got: string[] = [];
      client.on('message', (topic, payload) => got.push(`${topic} ${payload.toString()}`));
      await client.subscribeAsync(`${prefix}/#`, { qos: 2 });
      return { client, got };
    };

    /**
     * The device resends `<prefix>/once` (QoS 2, `packetId`) with DUP on B, which must know the id: PUBREC without a
     * second store, PUBCOMP success (not 0x92), and the subscriber gets the message once [MQTT-4.3.3-10].
     */
    const resendOnBCompletesOnce = async (onB: { socket: tls.TLSSocket; packets: mqttPacket.Packet[] }, prefix: string,
      packetId: number, got: string[]): Promise<void> => {
      onB.socket.write(frame({ cmd: 'publish', topic: `${prefix}/once`, payload: Buffer.from('q2'), qos: 2, messageId: packetId, retain: false, dup: true }, 5));
      const pubrec = await waitFor('PUBREC on B', () => onB.packets.find((p): p is mqttPacket.IPubrecPacket => p.cmd === 'pubrec'));
      assert.deepEqual([pubrec.messageId, pubrec.reasonCode ?? 0], [packetId, 0]);
      onB.socket.write(frame({ cmd: 'pubrel', messageId: packetId }, 5));
      const pubcomp = await waitFor('PUBCOMP on B', () => onB.packets.find((p): p is mqttPacket.IPubcompPacket => p.cmd === 'pubcomp'));
      assert.deepEqual([pubcomp.messageId, pubcomp.reasonCode ?? 0], [packetId, 0], 'B knew the packet id: PUBCOMP success, not 0x92');
      // A marker published after it: whatever the resend caused has reached the subscriber by then.
      const marker = await cluster.connect(B, gateway, await cluster.addDevice(nodeA, gateway));
      await marker.publishAsync(`${prefix}/marker`, 'm', { qos: 2 });
      await waitFor('the marker', () => (got.includes(`${prefix}/marker m`) ? true : undefined));
      assert.deepEqual(got.filter((g) => g === `${prefix}/once q2`), [`${prefix}/once q2`], 'delivered once');
      await marker.endAsync();
    };

    /**
     * Node A cut off from NATS (a claim's notice goes unanswered there); the device's session resumed on B from the
     * record (Session Present 1) and `steps` run on that connection; then A back and the sockets and subscriber gone.
     */
    const resumeOnBWhileACutOff = async (device: string, clientId: string, onA: { socket: tls.TLSSocket }, subscriber: { client: mqtt.MqttClient },
      steps: (onB: { socket: tls.TLSSocket; packets: mqttPacket.Packet[] }) => Promise<void>): Promise<void> => {
      relay.sever();
      const clusterA = nodeA.gatehouse.cluster!;
      await waitFor('node A cut off', () => (clusterA.connection.state === 'disconnected' ? true : undefined));
      const onB = rawSession(B, device, clientId);
      try {
        await waitFor('CONNACK from B', () => onB.packets.find((p) => p.cmd === 'connack'));
        assert.equal((onB.packets[0] as mqttPacket.IConnackPacket).sessionPresent, true, 'resumed from the record');
        await steps(onB);
      } finally {
        relay.restore();
        await waitFor('node A back', () => (clusterA.connection.state === 'connected' ? true : undefined), 30_000);
        onA.socket.destroy();
        onB.socket.destroy();
        await subscriber.client.endAsync();
      }
    };

    test('a QoS 2 PUBLISH whose PUBREC A sent, resent with DUP to B after a takeover: PUBREC without a second store, delivered once, its PUBREL completed [MQTT-4.3.3-10]', { timeout: 60_000 }, async () => {
      const device = await cluster.addDevice(nodeA, gateway);
      const subscriber = await qos2Subscriber('exactly');
      const onA = rawSession(A, device, `exactly-${device}`);
      await waitFor('CONNACK from A', () => onA.packets.find((p) => p.cmd === 'connack'));
      onA.socket.write(frame({ cmd: 'publish', topic: 'exactly/once', payload: Buffer.from('q2'), qos: 2, messageId: 7, retain: false, dup: false }, 5));
      // PUBREC: the stream holds the message. The device does not see it (say the connection broke), so it resends.
      await waitFor('PUBREC on A', () => onA.packets.find((p) => p.cmd === 'pubrec'));
      const onB = rawSession(B, device, `exactly-${device}`);
      try {
        await waitFor('CONNACK from B', () => onB.packets.find((p) => p.cmd === 'connack'));
        assert.equal((onB.packets[0] as mqttPacket.IConnackPacket).sessionPresent, true);
        await waitFor('A closed the connection taken over', () => (onA.socket.destroyed || onA.socket.readableEnded ? true : undefined));
        await resendOnBCompletesOnce(onB, 'exactly', 7, subscriber.got);
      } finally {
        onA.socket.destroy();
        onB.socket.destroy();
        await subscriber.client.endAsync();
      }
    });

    test('a QoS 2 PUBLISH still being stored on A when B takes the session over: A\'s answer waits for the store, and the DUP resent to B gets PUBREC without a second store, delivered once [MQTT-4.3.3-10]', { timeout: 60_000 }, async () => {
      const device = await cluster.addDevice(nodeA, gateway);
      const subscriber = await qos2Subscriber('storing');
      const onA = rawSession(A, device, `storing-${device}`);
      await waitFor('CONNACK from A', () => onA.packets.find((p) => p.cmd === 'connack'));
      // A's store of the message waits in the relay (everything else A sends passes): in flight, no PUBREC yet.
      relay.holdFromNode(/^H?PUB [^ ]*\.qos\./);
      onA.socket.write(frame({ cmd: 'publish', topic: 'storing/once', payload: Buffer.from('q2'), qos: 2, messageId: 9, retain: false, dup: false }, 5));
      await new Promise((resolve) => setTimeout(resolve, 200));
      assert.equal(onA.packets.find((p) => p.cmd === 'pubrec'), undefined, 'no PUBREC while the store is in flight');
      const onB = rawSession(B, device, `storing-${device}`);
      try {
        // The notice reached A (its engine let the connection taken over go; the bytes of its close wait behind the
        // turn's store); A's answer is what the claim waits for.
        await waitFor('A let the connection taken over go', () => (clientsOn(nodeA, `storing-${device}`) === 0 ? true : undefined));
        relay.flow();
        await waitFor('CONNACK from B', () => onB.packets.find((p) => p.cmd === 'connack'));
        assert.equal((onB.packets[0] as mqttPacket.IConnackPacket).sessionPresent, true);
        await resendOnBCompletesOnce(onB, 'storing', 9, subscriber.got);
      } finally {
        relay.flow();
        onA.socket.destroy();
        onB.socket.destroy();
        await subscriber.client.endAsync();
      }
    });

    test('a QoS 2 delivery on A whose record write is still on its way when B takes the session over: the PUBLISH never leaves A (its close goes alone, 0x8E); B sends it from A\'s answer under the same packet id, and the session gets it once [MQTT-4.3.3, MQTT-3.1.4-3]', { timeout: 60_000 }, async () => {
      // Before, A's takeover close waited behind that write, and the PUBLISH left with it once the write found the
      // record claimed: the message reached the connection taken over and the one on B.
      const device = await cluster.addDevice(nodeA, gateway);
      const clientId = `withheld-${device}`;
      const onA = rawSession(A, device, clientId);
      let onB: ReturnType<typeof rawSession> | undefined;
      const publisher = await cluster.connect(B, gateway, await cluster.addDevice(nodeA, gateway));
      try {
        await waitFor('CONNACK from A', () => onA.packets.find((p) => p.cmd === 'connack'));
        onA.socket.write(frame({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'withheld/#', qos: 2 }] }, 5));
        await waitFor('SUBACK from A', () => onA.packets.find((p) => p.cmd === 'suback'));
        // The next write of the session's record from A (the delivery's packet id) waits in the relay.
        const key = SessionRecords.key(gateway.id, clientId).replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
        relay.holdFromNode(new RegExp(`^H?PUB \\$KV\\.gatehouse-sessions-[^ .]+\\.${key} `));
        await publisher.publishAsync('withheld/once', 'q2', { qos: 2 });
        const held = (): number | undefined => engineOf(nodeA, gateway.id).getSession(clientId)?.inflightCount;
        await waitFor('the delivery in flight on A', () => (held() === 1 ? true : undefined));
        await new Promise((resolve) => setTimeout(resolve, 200));
        assert.equal(onA.packets.some((p) => p.cmd === 'publish'), false, 'held for its record write');

        onB = rawSession(B, device, clientId);
        await waitFor('A let the connection taken over go', () => (clientsOn(nodeA, clientId) === 0 ? true : undefined));
        relay.flow(); // the write lands on a record B claimed: refused
        const connack = await waitFor('CONNACK from B', () => onB!.packets.find((p): p is mqttPacket.IConnackPacket => p.cmd === 'connack'));
        assert.equal(connack.sessionPresent, true);
        const resent = await waitFor('the PUBLISH on B', () => onB!.packets.find((p): p is mqttPacket.IPublishPacket => p.cmd === 'publish'));
        assert.equal(resent.topic, 'withheld/once');
        onB.socket.write(frame({ cmd: 'pubrec', messageId: resent.messageId! }, 5));
        await waitFor('PUBREL from B', () => onB!.packets.find((p) => p.cmd === 'pubrel'));
        onB.socket.write(frame({ cmd: 'pubcomp', messageId: resent.messageId! }, 5));
        const disconnect = await waitFor('A\'s connection closed', () => (onA.socket.closed || onA.socket.readableEnded ? true : undefined), 15_000);
        assert.equal(disconnect, true);
        assert.deepEqual(onA.packets.filter((p) => p.cmd !== 'connack' && p.cmd !== 'suback').map((p) => [p.cmd, (p as mqttPacket.IDisconnectPacket).reasonCode]),
          [['disconnect', 0x8e]], 'the PUBLISH never left A: only its close');
        assert.equal(onB.packets.filter((p) => p.cmd === 'publish').length, 1);
      } finally {
        relay.flow();
        onA.socket.destroy();
        onB?.socket.destroy();
        await publisher.endAsync();
      }
    });

    test('A gone without an answer (cut off) after PUBREC: B resumes from the record, which holds the packet id: the DUP resend gets PUBREC without a second store, and an id released on A before is free on B [MQTT-4.3.3-10]', { timeout: 90_000 }, async () => {
      const device = await cluster.addDevice(nodeA, gateway);
      const subscriber = await qos2Subscriber('gone');
      const clientId = `gone-${device}`;
      const publishOf = (text: string, packetId: number, dup: boolean): Buffer =>
        frame({ cmd: 'publish', topic: 'gone/once', payload: Buffer.from(text), qos: 2, messageId: packetId, retain: false, dup }, 5);
      const onA = rawSession(A, device, clientId);
      await waitFor('CONNACK from A', () => onA.packets.find((p) => p.cmd === 'connack'));
      // Packet id 11 completed on A (PUBCOMP after its release is in the record), 12 stored (its store id in the record
      // first, then, with the next write, the id as received).
      onA.socket.write(publishOf('first', 11, false));
      await waitFor('PUBREC 11 on A', () => onA.packets.find((p) => p.cmd === 'pubrec' && p.messageId === 11));
      onA.socket.write(frame({ cmd: 'pubrel', messageId: 11 }, 5));
      await waitFor('PUBCOMP 11 on A', () => onA.packets.find((p) => p.cmd === 'pubcomp' && p.messageId === 11));
      onA.socket.write(publishOf('q2', 12, false));
      await waitFor('PUBREC 12 on A', () => onA.packets.find((p) => p.cmd === 'pubrec' && p.messageId === 12));
      const records = SessionRecords.opener(nodeA.gatehouse.cluster!.connection);
      await waitFor('the record naming 12 as received', async () =>
        ((await (await records()).get(SessionRecords.key(gateway.id, clientId)))?.record.state?.received?.includes(12) === true ? true : undefined));

      await resumeOnBWhileACutOff(device, clientId, onA, subscriber, async (onB) => {
        const duplicatesBefore = await clusterCounter(nodeB.gatehouse, gateway, 'store_duplicates');
        // The device never saw A's PUBREC of 12: it resends it. And it reuses 11, released, for a new message.
        onB.socket.write(publishOf('q2', 12, true));
        const pubrec = await waitFor('PUBREC 12 on B', () => onB.packets.find((p): p is mqttPacket.IPubrecPacket => p.cmd === 'pubrec' && p.messageId === 12));
        assert.equal(pubrec.reasonCode ?? 0, 0);
        onB.socket.write(frame({ cmd: 'pubrel', messageId: 12 }, 5));
        const pubcomp = await waitFor('PUBCOMP 12 on B', () => onB.packets.find((p): p is mqttPacket.IPubcompPacket => p.cmd === 'pubcomp' && p.messageId === 12));
        assert.equal(pubcomp.reasonCode ?? 0, 0, 'B knew the packet id from the record: PUBCOMP success, not 0x92');
        onB.socket.write(publishOf('second', 11, false));
        await waitFor('PUBREC 11 on B', () => onB.packets.find((p) => p.cmd === 'pubrec' && p.messageId === 11));
        onB.socket.write(frame({ cmd: 'pubrel', messageId: 11 }, 5));
        await waitFor('PUBCOMP 11 on B', () => onB.packets.find((p) => p.cmd === 'pubcomp' && p.messageId === 11));
        const marker = await cluster.connect(B, gateway, await cluster.addDevice(nodeA, gateway));
        await marker.publishAsync('gone/marker', 'm', { qos: 2 });
        await waitFor('the marker', () => (subscriber.got.includes('gone/marker m') ? true : undefined));
        assert.deepEqual(subscriber.got.filter((g) => g.startsWith('gone/once ')), ['gone/once first', 'gone/once q2', 'gone/once second'],
          'each once: the resend not stored again, the reused id not taken for a resend');
        assert.equal(await clusterCounter(nodeB.gatehouse, gateway, 'store_duplicates'), duplicatesBefore, 'no second store tried');
        await marker.endAsync();
      });
    });

    test('A cut off after its store of a QoS 2 PUBLISH landed and before the record named the packet id as received: B stores the DUP resend under the message id the record named before the store, the stream keeps one copy, delivered once [MQTT-4.3.3-10]', { timeout: 90_000 }, async () => {
      const device = await cluster.addDevice(nodeA, gateway);
      const subscriber = await qos2Subscriber('window');
      const clientId = `window-${device}`;
      const onA = rawSession(A, device, clientId);
      await waitFor('CONNACK from A', () => onA.packets.find((p) => p.cmd === 'connack'));
      // No write of A's naming packet id 13 as received reaches NATS: A dies in that window, as far as the record goes.
      relay.dropFromNode(/"received":\[13\]/);
      onA.socket.write(frame({ cmd: 'publish', topic: 'window/once', payload: Buffer.from('q2'), qos: 2, messageId: 13, retain: false, dup: false }, 5));
      await waitFor('the message stored and delivered', () => (subscriber.got.includes('window/once q2') ? true : undefined));

      await resumeOnBWhileACutOff(device, clientId, onA, subscriber, async (onB) => {
        const duplicatesBefore = await clusterCounter(nodeB.gatehouse, gateway, 'store_duplicates');
        // Whether or not A's PUBREC reached it, the device resends: the PUBREC may be lost with A.
        await resendOnBCompletesOnce(onB, 'window', 13, subscriber.got);
        assert.equal(await clusterCounter(nodeB.gatehouse, gateway, 'store_duplicates'), duplicatesBefore + 1, 'the stream answered B\'s store as a duplicate');
      });
    });

    test('inbound QoS 2 store ids: where the record determines the id (its epoch and the packet id\'s uses written), the PUBLISH is stored at once, PUBREC while record writes wait; where it does not (a new epoch on its way), the store waits for the write naming the id and the PUBLISHes after it wait behind it [MQTT-4.6.0-6]; writes failing: a PUBREL gets no PUBCOMP and the connection goes (0x9C), the waiting PUBLISHes are given up (not stored, not acknowledged); resent, the PUBREL completes and the PUBLISHes are stored once, in order', { timeout: 120_000 }, async () => {
      const device = await cluster.addDevice(nodeA, gateway);
      const subscriber = await qos2Subscriber('gated');
      // In the order the PUBLISHes reach it (MQTT.js hands a QoS 2 message over at its PUBREL, a QoS 1 one at once).
      const arrived = collectAtPublish(subscriber.client);
      const clientId = `gated-${device}`;
      const publishOf = (topic: string, text: string, qos: 1 | 2, packetId: number, dup = false): Buffer =>
        frame({ cmd: 'publish', topic, payload: Buffer.from(text), qos, messageId: packetId, retain: false, dup }, 5);
      const key = SessionRecords.key(gateway.id, clientId);
      const recordWrite = new RegExp(`^H?PUB \\$KV\\.[^ ]+\\.${key.replace(/[.*+?^${}()|[\]\\-]/g, '\\$&')} `);
      const records = SessionRecords.opener(nodeA.gatehouse.cluster!.connection);
      const has = (packets: mqttPacket.Packet[], cmd: string, id: number): boolean => packets.some((p) => p.cmd === cmd && (p as { messageId?: number }).messageId === id);
      const onA = rawSession(A, device, clientId);
      let again: ReturnType<typeof rawSession> | undefined;
      try {
        await waitFor('CONNACK from A', () => onA.packets.find((p) => p.cmd === 'connack'));
        await waitFor('the record holding the epoch', async () => ((await (await records()).get(key))?.record.state?.qos2Epoch !== undefined ? true : undefined));
        // Every record write of the session waits in the relay now (each waits for the one before): none is needed.
        relay.holdFromNode(recordWrite);
        onA.socket.write(Buffer.concat([publishOf('gated/t', 'first', 2, 31), publishOf('gated/t', 'second', 1, 32)]));
        await waitFor('both delivered', () => (arrived.payloads('gated/t').length === 2 ? true : undefined));
        assert.deepEqual(arrived.payloads('gated/t'), ['first', 'second'], 'in the order they came');
        await waitFor('PUBREC 31 and PUBACK 32', () => (has(onA.packets, 'pubrec', 31) && has(onA.packets, 'puback', 32) ? true : undefined));
        relay.flow();
        onA.socket.write(frame({ cmd: 'pubrel', messageId: 31 }, 5));
        await waitFor('PUBCOMP 31', () => (has(onA.packets, 'pubcomp', 31) ? true : undefined));

        // MAX_EPOCH_USES packet ids released in the epoch (31 among them), then 1025: its release begins a new epoch.
        const ids = Array.from({ length: MAX_EPOCH_USES }, (_, k) => 1 + k).filter((id) => id !== 31);
        onA.socket.write(Buffer.concat(ids.map((id) => publishOf('gated/bulk', `${id}`, 2, id))));
        await waitFor('their PUBRECs', () => (ids.every((id) => has(onA.packets, 'pubrec', id)) ? true : undefined));
        onA.socket.write(Buffer.concat(ids.map((id) => frame({ cmd: 'pubrel', messageId: id }, 5))));
        await waitFor('their PUBCOMPs', () => (ids.every((id) => has(onA.packets, 'pubcomp', id)) ? true : undefined));
        onA.socket.write(publishOf('gated/bulk', '1025', 2, 1025));
        await waitFor('PUBREC 1025', () => (has(onA.packets, 'pubrec', 1025) ? true : undefined));
        // From here no record write of the session reaches NATS (each fails after NATS's 5 s timeout).
        const refusedBefore = await gatewayCounter(nodeA.gatehouse, gateway, 'publishes_refused_cluster_unwritable');
        relay.dropFromNode(recordWrite);
        onA.socket.write(frame({ cmd: 'pubrel', messageId: 1025 }, 5));
        await new Promise((resolve) => setTimeout(resolve, 200));
        // The new epoch is not in the record: 2001 waits for the write naming its id, and 2002 behind it.
        onA.socket.write(Buffer.concat([publishOf('gated/t', 'third', 2, 2001), publishOf('gated/t', 'fourth', 1, 2002)]));
        await new Promise((resolve) => setTimeout(resolve, 500));
        assert.deepEqual(arrived.payloads('gated/t'), ['first', 'second'], 'neither handed on while the write waits');
        // The release of 1025 not written: no PUBCOMP, the connection goes (the client sends the PUBREL again).
        const disconnect = await waitFor('DISCONNECT from A', () => onA.packets.find((p): p is mqttPacket.IDisconnectPacket => p.cmd === 'disconnect'), 20_000);
        assert.equal(disconnect.reasonCode, 0x9c);
        assert.equal(has(onA.packets, 'pubcomp', 1025), false, 'no PUBCOMP for a release the record did not learn');
        await waitFor('2001 and 2002 given up', async () =>
          (await gatewayCounter(nodeA.gatehouse, gateway, 'publishes_refused_cluster_unwritable') === refusedBefore + 2 ? true : undefined), 20_000);
        assert.equal(has(onA.packets, 'pubrec', 2001) || has(onA.packets, 'puback', 2002), false, 'neither acknowledged');
        relay.restore();

        // The device reconnects and resends both, with DUP: each stored and delivered once, in order.
        again = rawSession(A, device, clientId);
        await waitFor('CONNACK from A again', () => again!.packets.find((p) => p.cmd === 'connack'));
        again.socket.write(frame({ cmd: 'pubrel', messageId: 1025 }, 5));
        const pubcomp = await waitFor('PUBCOMP 1025', () => again!.packets.find((p): p is mqttPacket.IPubcompPacket => p.cmd === 'pubcomp' && p.messageId === 1025));
        assert.equal(pubcomp.reasonCode ?? 0, 0, 'the id was still held: success, not 0x92');
        // Its PUBCOMP came once the record let the id go (a reuse of 1025 after this node's death is a new message).
        const state = (await (await records()).get(key))?.record.state;
        assert.equal([...(state?.received ?? []), ...(state?.receiving ?? []).map(([id]) => id)].includes(1025), false, 'the record no longer holds 1025');
        again.socket.write(Buffer.concat([publishOf('gated/t', 'third', 2, 2001, true), publishOf('gated/t', 'fourth', 1, 2002, true)]));
        await waitFor('PUBREC 2001', () => (has(again!.packets, 'pubrec', 2001) ? true : undefined));
        again.socket.write(frame({ cmd: 'pubrel', messageId: 2001 }, 5));
        await waitFor('PUBCOMP 2001 and PUBACK 2002', () => (has(again!.packets, 'pubcomp', 2001) && has(again!.packets, 'puback', 2002) ? true : undefined));
        await waitFor('both delivered', () => (arrived.payloads('gated/t').length === 4 ? true : undefined));
        // A marker after them: anything more (a second copy) has arrived by then.
        const marker = await cluster.connect(A, gateway, await cluster.addDevice(nodeA, gateway));
        await marker.publishAsync('gated/marker', 'm', { qos: 1 });
        await waitFor('the marker', () => (arrived.payloads('gated/marker').length === 1 ? true : undefined));
        await marker.endAsync();
        assert.deepEqual(arrived.payloads('gated/t'), ['first', 'second', 'third', 'fourth']);
        assert.equal(arrived.payloads('gated/bulk').length, MAX_EPOCH_USES, 'every bulk message once');
      } finally {
        relay.restore();
        relay.flow();
        onA.socket.destroy();
        again?.socket.destroy();
        await subscriber.client.endAsync();
      }
    });

    test('the will of the connection taken over: without delay published once, by B and not by A; with a delay not at all [MQTT-3.1.3-9]', { timeout: 60_000 }, async () => {
      const now = await cluster.addDevice(nodeA, gateway);
      await cluster.connect(A, gateway, now, { will: { topic: `will/${now}`, payload: Buffer.from('gone'), qos: 1, retain: false } });
      await cluster.connect(B, gateway, now);
      for (const watch of [watchA, watchB]) await waitFor('the will', () => (watch.count(`will/${now} gone`) > 0 ? true : undefined));

      const delayed = await cluster.addDevice(nodeA, gateway);
      await cluster.connect(A, gateway, delayed, {
        properties: { sessionExpiryInterval: 60 },
        will: { topic: `will/${delayed}`, payload: Buffer.from('gone'), qos: 1, retain: false, properties: { willDelayInterval: 1 } },
      });
      await cluster.connect(B, gateway, delayed, { properties: { sessionExpiryInterval: 60 } });
      // Past the will's delay: had either node kept it, it would have gone by now.
      await new Promise((resolve) => setTimeout(resolve, 2_500));
      await settle();
      for (const watch of [watchA, watchB]) {
        assert.equal(watch.count(`will/${now} gone`), 1, 'the will without delay, once');
        assert.equal(watch.count(`will/${delayed} gone`), 0, 'the delayed will, cancelled by the new connection');
      }
    });

    test('two clients racing with one client id on nodes A and B, 20 rounds: each round ends with exactly one connected', { timeout: 240_000 }, async () => {
      const device = await cluster.addDevice(nodeA, gateway);
      const clientId = `c-${device}`;
      for (let round = 0; round < 20; round++) {
        const pair = [cluster.open(A, gateway, device), cluster.open(B, gateway, device)];
        // Each one is accepted and then perhaps taken over, or refused (a later claim won before its CONNACK).
        await Promise.all(pair.map((client) => new Promise<void>((resolve) => {
          client.on('error', () => undefined); // a refusal (0x89) is an outcome here, not a failure
          client.once('connect', () => resolve());
          client.once('close', () => resolve());
        })));
        await waitFor(`round ${round}: one connection left`, () =>
          (pair.filter((c) => c.connected).length === 1 && clientsOn(nodeA, clientId) + clientsOn(nodeB, clientId) === 1 ? true : undefined));
        for (const client of pair) client.end(true);
        await waitFor(`round ${round}: both gone`, () => (clientsOn(nodeA, clientId) + clientsOn(nodeB, clientId) === 0 ? true : undefined));
      }
    });

    test('a process that lost the record cannot write over it: its connection\'s end and its delayed will are refused by the revision they name', { timeout: 30_000 }, async () => {
      // Two holders of one session as two processes would be, on node A's NATS connection: `late` claimed first,
      // then `winner`; `late` never heard of it (no process listens on its notice subject).
      const conn = nodeA.gatehouse.cluster!.connection;
      const records = SessionRecords.opener(conn);
      const moved: string[] = [];
      const holder = (instance: string): SessionOwnership => new SessionOwnership(conn, records, gateway.id, { nodeId: instance, instance }, silentLogger,
        () => ({ receive: () => undefined, retained: () => undefined, retainedHeld: () => [], cutOff: () => undefined, sessionMoved: (id) => moved.push(id), publishWill: () => undefined,
          sharedElsewhere: () => undefined, receiveShared: () => false, reshare: () => false, receivedQos2: () => ({ received: [], storing: [] }), landedQos2: () => undefined }));
      const late = holder(`late-${randomUUID()}`);
      const winner = holder(`winner-${randomUUID()}`);
      const will: RecordedWill = {
        message: createMessage({ topic: 'will/fenced', payload: Buffer.from('x'), qos: 1, retain: false, properties: undefined, expiresAt: 0, senderId: 'c-fenced' }),
        delay: 5, expiry: 0,
      };
      const first = await late.claim('c-fenced', 'owner-1', will, false);
      assert.deepEqual(first, { local: true, displacedWill: null });
      // The session's state in the record (issue 16 item 2): what the next holder resumes from.
      // Queued entries of another shape (a QoS 0, a sequence that is not a number) are left out; the rest in stream order.
      // Received QoS 2 packet ids: only packet ids (1-65535), each once. Receiving ones: a packet id (the first entry of
      // one kept) with a message id of 1-128 characters. Uses in the epoch: a packet id (the first entry kept) with a
      // count of at least 1.
      const state: SessionState = {
        subscriptions: [], floor: 41, inflight: [[42, 7, 2, 1], [43, 8, 2, 0]],
        queued: [[45, 1], [44, 2], [46, 0], ['47', 1] as unknown as [number, number], 48 as unknown as [number, number]],
        received: [9, 0, 65_536, 9, '10' as unknown as number, 65_535],
        receiving: [[20, 'n1.5'], [20, 'n1.6'], [0, 'n1.7'], [21, ''], [22, 'x'.repeat(129)], [23, 7 as unknown as string],
          24 as unknown as [number, string], [25, 'x'.repeat(128)]],
        qos2Epoch: 'epoch-1',
        qos2Uses: [[30, 2], [30, 5], [31, 0], [0, 1], [32, 1.5], [33, 1]],
      };
      assert.equal(await late.saveState('c-fenced', () => state), true);
      const second = await winner.claim('c-fenced', 'owner-1', null, false);
      assert.ok(typeof second === 'object' && !second.local, 'claimed from another process');
      assert.deepEqual(second.moved, {
        subscriptions: [], floor: 41,
        inflight: [{ seq: 42, packetId: 7, qos: 2, released: true }, { seq: 43, packetId: 8, qos: 2, released: false }],
        queued: [{ seq: 44, qos: 2 }, { seq: 45, qos: 1 }], received: [9, 65_535],
        receiving: [{ packetId: 20, storeId: 'n1.5' }, { packetId: 25, storeId: 'x'.repeat(128) }],
        qos2Epoch: 'epoch-1', qos2Uses: [[30, 2], [33, 1]],
      }, 'the claim hands over the state the record held');
      // Another principal cannot claim it at all.
      assert.equal(await holder(`third-${randomUUID()}`).claim('c-fenced', 'owner-2', null, false), 'owned');

      // Nor its session's state: the winner's record keeps the state it took over.
      assert.equal(await late.saveState('c-fenced', () => ({ subscriptions: [], floor: 99, inflight: [] })), false);
      assert.equal(await late.connectionEnded('c-fenced', { will, sessionEnds: false }), false);
      assert.equal(await late.takeWill('c-fenced'), false);
      const seen = await (await records()).get(SessionRecords.key(gateway.id, 'c-fenced'));
      assert.ok(seen !== null);
      assert.deepEqual([seen.record.node.startsWith('winner-'), seen.record.connected, seen.record.will], [true, true, null]);
      assert.deepEqual(seen.record.state, state);
      // The winner's own writes go through.
      assert.equal(await winner.connectionEnded('c-fenced', { will, sessionEnds: false }), true);
      assert.equal(await winner.takeWill('c-fenced'), true);
      assert.deepEqual(moved, []);
    });

    test('a dead process\'s record adopted here for its will and claimed by a CONNECT here before the will is due: the old will is not published, whichever comes first [MQTT-3.1.3-9]', { timeout: 30_000 }, async () => {
      // A node restarted as itself reaps its previous life's record (will-reaper.ts) while that device reconnects to it.
      const conn = nodeA.gatehouse.cluster!.connection;
      const records = SessionRecords.opener(conn);
      const published: string[] = [];
      const holder = (instance: string): SessionOwnership => new SessionOwnership(conn, records, gateway.id, { nodeId: 'restarted', instance }, silentLogger,
        () => ({ receive: () => undefined, retained: () => undefined, retainedHeld: () => [], cutOff: () => undefined, sessionMoved: () => undefined,
          publishWill: (w) => published.push(w.message.topic), sharedElsewhere: () => undefined, receiveShared: () => false, reshare: () => false,
          receivedQos2: () => ({ received: [], storing: [] }), landedQos2: () => undefined }));
      const willOn = (topic: string): RecordedWill => ({
        message: createMessage({ topic, payload: Buffer.from('x'), qos: 1, retain: false, properties: undefined, expiresAt: 0, senderId: 'c' }),
        delay: 0, expiry: 0,
      });
      const oldWill = willOn('will/old');
      /** The dead process's record, taken the way the reaper takes it: its revision. */
      const reaped = async (clientId: string, dueAt: number): Promise<number> => {
        assert.ok(typeof await holder(`dead-${randomUUID()}`).claim(clientId, 'owner-1', oldWill, false) === 'object');
        const key = SessionRecords.key(gateway.id, clientId);
        const seen = (await (await records()).get(key))!;
        return (await records()).update(key, {
          ...seen.record, node: 'restarted', instance: me.instance, connected: false, will: { ...seen.record.will!, dueAt }, at: Date.now(),
        }, seen.revision);
      };
      const me = { instance: `me-${randomUUID()}` };
      const ownership = holder(me.instance);

      // Adopted first, then the device's CONNECT here claims the record before the will is due.
      const taken1 = await reaped('c-adopt-1', Date.now() + 1_500);
      ownership.adopt('c-adopt-1', taken1, oldWill, Date.now() + 1_500);
      assert.ok(typeof await ownership.claim('c-adopt-1', 'owner-1', willOn('will/new-1'), false) === 'object');
      // The CONNECT's claim first, then the reaper's adoption (its update had landed before the claim read the record).
      const taken2 = await reaped('c-adopt-2', Date.now());
      assert.ok(typeof await ownership.claim('c-adopt-2', 'owner-1', willOn('will/new-2'), false) === 'object');
      ownership.adopt('c-adopt-2', taken2, oldWill, Date.now());

      await new Promise((resolve) => setTimeout(resolve, 2_500));
      assert.deepEqual(published, [], 'the dead connection\'s will is not due: its client connected again [MQTT-3.1.3-9]');
      for (const clientId of ['c-adopt-1', 'c-adopt-2']) {
        const seen = await (await records()).get(SessionRecords.key(gateway.id, clientId));
        assert.equal(seen?.record.will === null || seen === null ? null : willOf(seen.record.will).message.topic, `will/new-${clientId.slice(-1)}`,
          'the live connection\'s will stays in its record');
      }
      // The live connection's own writes still go through (the claim's revision is the one held).
      assert.equal(await ownership.connectionEnded('c-adopt-2', { will: null, sessionEnds: false }), true);

      // A write of this process whose answer was lost (made here through a twin of the same process) moved the record's
      // revision on: the session's end still removes the record rather than leaving it, and its will, behind.
      const twin = holder(me.instance);
      assert.ok(typeof await twin.claim('c-adopt-1', 'owner-1', willOn('will/new-1'), false) === 'object');
      assert.equal(await ownership.connectionEnded('c-adopt-1', { will: null, sessionEnds: true }), true);
      assert.equal(await (await records()).get(SessionRecords.key(gateway.id, 'c-adopt-1')), null, 'the ended session\'s record is gone');
    });

    test('node A cut off from NATS while B claims its sessions: A publishes no will of them, and back it lets go of its connection', { timeout: 90_000 }, async () => {
      const kept = await cluster.addDevice(nodeA, gateway);
      const dropped = await cluster.addDevice(nodeA, gateway);
      const will = (device: string): mqtt.IClientOptions['will'] => ({ topic: `will/${device}`, payload: Buffer.from('gone'), qos: 1, retain: false });
      const keptOnA = await cluster.connect(A, gateway, kept, { clean: false, properties: { sessionExpiryInterval: 300 }, will: will(kept) });
      const droppedOnA = await cluster.connect(A, gateway, dropped, { will: will(dropped) });

      relay.sever();
      const clusterA = nodeA.gatehouse.cluster!;
      await waitFor('node A cut off', () => (clusterA.connection.state === 'disconnected' ? true : undefined));
      // Node B claims both; node A cannot hear it (B does not wait for an answer that cannot come).
      const keptOnB = await cluster.connect(B, gateway, kept, { clean: false, properties: { sessionExpiryInterval: 300 } });
      const droppedOnB = await cluster.connect(B, gateway, dropped);
      assert.ok(keptOnA.connected, 'node A could not be told');
      // The device drops node A's connection while A is cut off: A's end of it must not reach the record.
      droppedOnA.stream.destroy();
      await waitFor('node A to see it go', () => (clientsOn(nodeA, `c-${dropped}`) === 0 ? true : undefined));

      const letGo = new Promise<number | undefined>((resolve) => keptOnA.once('disconnect', (packet) => resolve(packet.reasonCode)));
      relay.restore();
      await waitFor('node A back', () => (clusterA.connection.state === 'connected' ? true : undefined), 30_000);
      // Back, node A reads its records: the session it held went to B, so its connection goes (0x8E) and its state too.
      assert.equal(await letGo, 0x8e);
      await waitFor('node A to drop the session', () => (engineOf(nodeA, gateway.id).getSession(`c-${kept}`) === undefined ? true : undefined));

      // The wills: once each, by B when it took the live connections over (their delay was 0). QoS 1, so they are in
      // the cluster's stream (item 2): A's subscriber gets B's once A is back and has read what it missed. None by A:
      // a will A published too would reach each subscriber twice.
      for (const device of [kept, dropped]) {
        await waitFor(`${device}'s will on A, read back`, () => (watchA.count(`will/${device} gone`) > 0 ? true : undefined));
      }
      await settle();
      for (const device of [kept, dropped]) {
        assert.equal(watchB.count(`will/${device} gone`), 1, `${device}'s will on B`);
        assert.equal(watchA.count(`will/${device} gone`), 1, `${device}'s will on A`);
      }
      // The records still name B, connected: node A wrote nothing over them.
      const records = await SessionRecords.open(nodeB.gatehouse.cluster!.connection);
      for (const device of [kept, dropped]) {
        const seen = await records.get(SessionRecords.key(gateway.id, `c-${device}`));
        assert.ok(seen !== null);
        assert.deepEqual([seen.record.node, seen.record.connected], ['own-b', true], device);
      }
      assert.ok(keptOnB.connected && droppedOnB.connected);
      assert.equal(clientsOn(nodeB, `c-${kept}`) + clientsOn(nodeB, `c-${dropped}`), 2);
    });
  });
}
