/**
 * Issue 16 item 5: a shared group's QoS 1 messages whose keeper died. The node a QoS 1/2 message is published on picks
 * the group's member and keeps a pick of another node until that node's member completed it; when the keeper itself
 * dies nobody keeps it any more. Node A as `npm start` runs it (127.0.0.2, killed with -9), node B in-process
 * (127.0.0.3), the nats-server of GATEHOUSE_TEST_NATS_URL:
 *
 * - A published and picked its own member, which had not acknowledged them: once A's lease lapsed the survivor
 *   reaping A picks them again, to a member on B; a QoS 2 message its member on A was completing is not given to
 *   another member [MQTT-4.8.2-5].
 * - A published and picked B's members, then died; B's members that then go away without acknowledging, one before
 *   A's death is known (B's answer to A unheard) and one after: B gives their messages to the member left.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type mqtt from 'mqtt';
import type { GatehouseProcess } from '../harness/gatehouse-process.ts';
import type { TestGatehouse } from '../harness/gatehouse.ts';
import { clusterSkip, tally, TestCluster, waitFor, type GatewayJson } from '../harness/cluster.ts';

const A = '127.0.0.2';
const B = '127.0.0.3';

if (clusterSkip !== undefined) {
  test('shared groups\' messages whose keeper died', { skip: clusterSkip, timeout: 1_000 }, () => {});
} else {
  describe('shared groups\' messages whose keeper died (issue 16 item 5)', { timeout: 300_000 }, () => {
    const cluster = new TestCluster();
    let nodeA: GatehouseProcess;
    let nodeB: TestGatehouse;
    let gateway: GatewayJson;

    before(async () => {
      ({ nodeA, nodeB, gateway } = await cluster.startProcessAndNode('keeper', A, B));
    }, { timeout: 120_000 });

    after(() => cluster.dispose(), { timeout: 60_000 });

    const client = async (host: string, options: mqtt.IClientOptions = {}): Promise<mqtt.MqttClient> =>
      cluster.connect(host, gateway, await cluster.addDevice(nodeB, gateway), options);
    const countersOnB = () => nodeB.gatehouse.cluster!.links.counters().get(gateway.id)!;

    /** A member whose PUBACKs and PUBRECs are withheld: what it is sent stays in flight. */
    const silentMember = async (host: string, into: string[]): Promise<mqtt.MqttClient> => {
      const member = await client(host, { clean: true, customHandleAcks: (_topic, payload) => { into.push(payload.toString()); } });
      member.on('error', () => undefined); // its node may be killed under it
      return member;
    };

    test('kill -9 of A holding its own pick\'s QoS 1 messages unacknowledged: B picks them again once A\'s lease lapsed; a QoS 2 one in flight stays its member\'s', { timeout: 180_000 }, async () => {
      const onA: string[] = [];
      const onB: string[] = [];
      const memberA = await silentMember(A, onA);
      const memberB = await client(B);
      memberB.on('message', (_topic, payload) => onB.push(payload.toString()));
      await memberA.subscribeAsync('$share/k1/own/#', { qos: 2 });
      await memberB.subscribeAsync('$share/k1/own/#', { qos: 2 });
      // Published on A: A picks, among its member and B, and keeps nothing of its own member's picks.
      const publisher = await client(A);
      publisher.on('error', () => undefined);
      const sent1: string[] = [];
      for (let i = 0; i < 20; i++) {
        sent1.push(`q1-${i}`);
        await publisher.publishAsync('own/x', `q1-${i}`, { qos: 1 });
      }
      for (let i = 0; i < 10; i++) await publisher.publishAsync('own/x', `q2-${i}`, { qos: 2 });
      // The member on A reads its first message and then nothing (MQTT.js waits for the withheld acknowledgement): what
      // A picked for it stays in flight there. Everything else reaches B's member.
      await waitFor('a message in flight to the member on A', () => (onA.length > 0 ? true : undefined));
      await waitFor('the member on B\'s share', () => (onB.length >= 12 ? true : undefined));
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      const qos2OnB = onB.filter((p) => p.startsWith('q2-'));
      const heldOnA = sent1.filter((p) => !onB.includes(p));
      assert.ok(heldOnA.length >= 5 && qos2OnB.length < 10, `A's member holds some of each (QoS 1: ${heldOnA.length}, QoS 2: ${10 - qos2OnB.length})`);
      const repickedBefore = countersOnB().sharedRepicked;

      await nodeA.kill9();
      // A's lease lapses (10 s); B reaps it and picks again what A's member never acknowledged.
      await waitFor('every QoS 1 message at the member on B', () => (sent1.every((p) => onB.includes(p)) ? true : undefined), 60_000);
      assert.ok(countersOnB().sharedRepicked - repickedBefore >= heldOnA.length,
        `B picked again the ${heldOnA.length} messages A's member held (repicked ${countersOnB().sharedRepicked - repickedBefore})`);
      // A marker through B after the re-picks: a QoS 2 message given to B's member too would have arrived by now.
      await memberB.publishAsync('own/marker', 'marker', { qos: 1 });
      await waitFor('the marker', () => (onB.includes('marker') ? true : undefined));
      assert.deepEqual(onB.filter((p) => p.startsWith('q2-') && !qos2OnB.includes(p)), [],
        'a QoS 2 message its member on A was completing goes to no other member [MQTT-4.8.2-5]');
      assert.deepEqual([...tally(onB.filter((p) => p.startsWith('q2-')))].filter(([, n]) => n !== 1), [], 'QoS 2 once');
      await memberB.endAsync();
    });

    test('A published and picked B\'s members, then died: B\'s members that go away unacknowledged, before and after A\'s death is known, leave their messages to the member left', { timeout: 180_000 }, async () => {
      nodeA = await cluster.startProcess('keeper-a2', A);
      await cluster.listening(A, gateway);
      const early: string[] = [];
      const late: string[] = [];
      const kept: string[] = [];
      const memberEarly = await silentMember(B, early);
      const memberLate = await silentMember(B, late);
      const memberKept = await client(B);
      memberKept.on('message', (_topic, payload) => kept.push(payload.toString()));
      for (const m of [memberEarly, memberLate, memberKept]) await m.subscribeAsync('$share/k2/far/#', { qos: 1 });
      // No member on A: A picks B for each message and keeps it until B's member completes it.
      const publisher = await client(A);
      publisher.on('error', () => undefined);
      const sent: string[] = [];
      for (let i = 0; i < 30; i++) {
        sent.push(`f-${i}`);
        await publisher.publishAsync('far/x', `f-${i}`, { qos: 1 });
      }
      // Each silent member reads its first message and then nothing (MQTT.js waits for the withheld acknowledgement).
      await waitFor('messages in flight to both silent members', () => (early.length > 0 && late.length > 0 ? true : undefined));
      await waitFor('the kept member\'s share', () => (kept.length >= 8 ? true : undefined));
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      const keptBefore = kept.length;
      assert.ok(keptBefore < sent.length, `the silent members hold some (the member left got ${keptBefore} of ${sent.length})`);

      const repickedBefore = countersOnB().sharedRepicked;
      await nodeA.kill9();
      // Gone before B knows A is dead: B answers A, which is dead already, and remembers it; once A's lease lapsed B
      // picks them again (some may fall on the late member, which holds them too).
      memberEarly.end(true);
      await waitFor('B picking the early member\'s messages again once A is known dead',
        () => (countersOnB().sharedRepicked > repickedBefore ? true : undefined), 60_000);
      // Gone once A is known dead: B picks again at once.
      memberLate.end(true);
      await waitFor('every message at the member left', () => (sent.every((p) => kept.includes(p)) ? true : undefined), 30_000);
      assert.deepEqual([...tally(kept)].filter(([, n]) => n !== 1), [], 'each once at the member left');
      await memberKept.endAsync();
    });
  });
}
