/**
 * A cluster node's retained messages are acknowledged once the cluster's store (JetStream KV) holds them
 * (issue 16 item 4). A 3.1.1 client need not wait for its PUBACKs, so with NATS slow to answer (here: a relay
 * that holds everything, the connection itself staying up) the puts on their way must stay bounded in bytes
 * like the disk's writes (issue 12: src/broker/commit-gate.ts): the node stops reading the gateway's
 * connections instead, and once NATS answers again every message is stored and acknowledged, in order.
 * One in-process node on 127.0.0.2, PostgreSQL and the CI's nats-server behind the relay.
 */
import assert from 'node:assert/strict';
import tls from 'node:tls';
import { after, before, describe, test } from 'node:test';
import type mqttPacket from 'mqtt-packet';
import { frame, readPackets } from '../harness/raw-mqtt.ts';
import { DEFAULT_BROKER_OPTIONS } from '../../src/broker/index.ts';
import { clusterSkip, engineOf, startRelayedNode, waitFor, type RelayedNode } from '../harness/cluster.ts';

const A = '127.0.0.2';
const PAYLOAD = 64 * 1024;
const LIMIT = DEFAULT_BROKER_OPTIONS.maxUncommittedBytes;
const MESSAGES = Math.ceil((LIMIT * 1.5) / PAYLOAD); // half as much again as the bound
/**
 * What one packet may take past the bound (the check follows each packet): its four records — the node's
 * retained row, its uplink journal row, its put to the cluster's retained store, and (since issue 16 item 2)
 * its store in the cluster's message stream before its PUBACK — with their fixed parts.
 */
const ONE_PACKET = 4 * (PAYLOAD + 1024);


if (clusterSkip !== undefined) {
  test('retained puts to the cluster\'s store are bounded in bytes', { skip: clusterSkip, timeout: 1_000 }, () => {});
} else {
  describe('retained messages on their way to the cluster\'s store are bounded in bytes (issue 12, issue 16 item 4)', { timeout: 180_000 }, () => {
    let relayed: (RelayedNode & { stop(): Promise<void> }) | undefined;

    before(async () => { relayed = await startRelayedNode('bp-a', A, 'replica_bp_gw'); }, { timeout: 60_000 });

    after(() => relayed?.stop(), { timeout: 60_000 });

    test('a 3.1.1 QoS 1 retained flood while NATS does not answer pauses reads within the bound; all acknowledged in order once it does', { timeout: 120_000 }, async (t) => {
      const { cluster, relay, node, gateway } = relayed!;
      const device = await cluster.addDevice(node, gateway);
      const socket = tls.connect({ host: A, port: gateway.port, servername: 'localhost', ca: cluster.pki.root.certPem });
      t.after(() => socket.destroy());
      await new Promise<void>((resolve, reject) => { socket.once('secureConnect', resolve); socket.once('error', reject); });
      const packets = readPackets(socket);
      socket.write(frame({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: `c-${device}`, keepalive: 0, username: device, password: Buffer.from(`pw-${device}`) }));
      await waitFor('CONNACK', () => (packets.some((p) => p.cmd === 'connack') ? true : undefined));
      assert.equal((packets[0] as mqttPacket.IConnackPacket).returnCode, 0);

      const engine = engineOf(node, gateway.id);
      let peak = 0;
      const sampler = setInterval(() => { peak = Math.max(peak, engine.commits.uncommittedBytes); }, 1);
      t.after(() => clearInterval(sampler));

      relay.stall();
      const frames: Buffer[] = [];
      for (let i = 1; i <= MESSAGES; i++) {
        frames.push(frame({ cmd: 'publish', topic: `bp/${i}`, payload: Buffer.alloc(PAYLOAD, i & 0xff), qos: 1, messageId: i, retain: true, dup: false }));
      }
      socket.write(Buffer.concat(frames));

      await waitFor('reads paused, or the whole flood read', () => (
        engine.stats.readsPausedForWrites > 0 || engine.stats.messagesReceived >= MESSAGES ? true : undefined));
      assert.ok(engine.stats.readsPausedForWrites > 0, 'the flooder\'s reads paused while NATS did not answer');
      assert.ok(engine.stats.messagesReceived < MESSAGES, `reading stopped short of the flood (${engine.stats.messagesReceived} of ${MESSAGES})`);
      peak = Math.max(peak, engine.commits.uncommittedBytes);
      assert.ok(peak <= LIMIT + ONE_PACKET, `bytes on their way to the cluster's store stayed within the bound: ${peak} (limit ${LIMIT})`);
      assert.equal(packets.filter((p) => p.cmd === 'puback').length, 0, 'no PUBACK before the cluster\'s store holds the message');

      relay.flow();
      await waitFor('every PUBACK once NATS answers', () => (packets.filter((p) => p.cmd === 'puback').length === MESSAGES ? true : undefined), 60_000);
      const acked = packets.filter((p): p is mqttPacket.IPubackPacket => p.cmd === 'puback').map((p) => p.messageId);
      assert.deepEqual(acked, Array.from({ length: MESSAGES }, (_, i) => i + 1), 'in the order of the PUBLISHes [MQTT-4.6.0-2]');
      assert.ok(peak <= LIMIT + ONE_PACKET, `within the bound throughout: ${peak}`);
      await waitFor('nothing left on its way', () => (engine.commits.uncommittedBytes === 0 ? true : undefined));
    });
  });
}
