import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { MsgHdrs } from '@nats-io/transport-node';
import type { Message } from '../broker/index.ts';
import { silentLogger } from '../core/logger.ts';
import { heldOf, MAX_HELD_REPORTED, pickAgain, repickDeadShares, type DeadSharesDeps, type StoredPick } from './dead-node-shares.ts';
import type { DeadLease } from './node-leases.ts';

const HEARTBEAT = 2_000;
const dead = { writtenAt: 100_000 };

test('what a dead node\'s member was handed is picked again only when no member can be completing it [MQTT-4.8.2-4, MQTT-4.8.2-5]', { timeout: 5_000 }, () => {
  const share = { from: 50, held: new Set([10, 20]) };
  assert.equal(pickAgain(10, 1, 0, share, dead, HEARTBEAT), true, 'a QoS 1 delivery not acknowledged');
  assert.equal(pickAgain(11, 1, 0, share, dead, HEARTBEAT), false, 'handed and acknowledged');
  assert.equal(pickAgain(11, 2, 200_000, share, dead, HEARTBEAT), false, 'a QoS 2 one handed before the last renewal');
  assert.equal(pickAgain(50, 1, 0, share, dead, HEARTBEAT), true, 'a QoS 1 one not handed at the last renewal (at worst a duplicate)');
  assert.equal(pickAgain(60, 2, 101_000, share, dead, HEARTBEAT), false, 'a QoS 2 one that may have been handed after the last renewal');
  assert.equal(pickAgain(60, 2, 102_001, share, dead, HEARTBEAT), true, 'a QoS 2 one stored a heartbeat after the last renewal: never handed');
  const noFeed = { from: 0, held: new Set([10]) };
  assert.equal(pickAgain(10, 1, 0, noFeed, dead, HEARTBEAT), true);
  assert.equal(pickAgain(70, 1, 0, noFeed, dead, HEARTBEAT), false, 'no feed ran: only what was held');
});

test('a lease lists at most MAX_HELD_REPORTED open deliveries a gateway; beyond, the lowest becomes the floor', { timeout: 5_000 }, () => {
  assert.deepEqual(heldOf(40, [3, 7]), { from: 40, held: [3, 7] });
  assert.deepEqual(heldOf(Infinity, [3]), { from: 0, held: [3] }, 'no feed: only the held ones');
  const many = Array.from({ length: MAX_HELD_REPORTED + 1 }, (_, i) => 1_000 + i);
  assert.deepEqual(heldOf(5_000, many), { from: 1_000, held: [] });
  assert.deepEqual(heldOf(Infinity, many), { from: 1_000, held: [] });
  assert.deepEqual(heldOf(40, [3, 7], 1), { from: 3, held: [] }, 'no room left in the lease: a floor');
});

/** A stored message as the reap reads it: its sequence, picks, QoS and the NATS time it was stored at. */
interface Stored { seq: number; picks: StoredPick[] | 'unreadable'; qos: 1 | 2; at: number }

function depsOver(stored: Stored[], live: string[], placed: [string, string, number, string][]): DeadSharesDeps & { reads: number[]; from: number[] } {
  const reads: number[] = [];
  const from: number[] = [];
  const bySeq = new Map(stored.map((s) => [s.seq, s]));
  return {
    reads,
    from,
    headersFrom: (_gatewayId, fromSeq, each) => {
      from.push(fromSeq);
      const these = stored.filter((s) => s.seq >= fromSeq);
      for (const s of these) each(s.seq, { get: () => JSON.stringify(s.picks) } as unknown as MsgHdrs, s.at);
      return Promise.resolve(these.length);
    },
    read: (seq) => {
      reads.push(seq);
      const s = bySeq.get(seq);
      return Promise.resolve(s === undefined || seq === 99 ? null : { topic: 't', payload: Buffer.from(String(seq)), qos: s.qos, retain: false } as unknown as Message);
    },
    picksOf: (headers) => {
      const picks = JSON.parse(headers!.get('x')) as StoredPick[] | 'unreadable';
      if (picks === 'unreadable') throw new Error('not ours');
      return picks;
    },
    keeperOf: (reply) => reply.split('.')[2]!,
    alive: (instance) => live.includes(instance),
    reshare: (gatewayId, group, filter, message, avoid) => {
      placed.push([gatewayId, group, Number(message.payload.toString()), avoid]);
      return group !== 'nobody';
    },
    counted: () => undefined,
    logger: silentLogger,
    heartbeatMs: HEARTBEAT,
  };
}

test('the reap picks again the dead node\'s picks nobody keeps: its own publishes and those of a dead keeper, not a live keeper\'s', { timeout: 5_000 }, async () => {
  const D = 'dead-1';
  const stored: Stored[] = [
    { seq: 5, picks: [['g', 'f/#', D]], qos: 1, at: 0 }, // held by D, its own publish
    { seq: 6, picks: [['g', 'f/#', D, 'p.shared-done.alive-1.3']], qos: 1, at: 0 }, // held, but its keeper lives
    { seq: 7, picks: [['g', 'f/#', 'other']], qos: 1, at: 0 }, // picked for another node
    { seq: 8, picks: [['g', 'f/#', D]], qos: 1, at: 0 }, // below `from`, not held: completed
    { seq: 20, picks: [['g', 'f/#', D, 'p.shared-done.dead-2.4'], ['h', 'f/+', D]], qos: 1, at: 0 }, // a dead keeper; two groups
    { seq: 21, picks: 'unreadable', qos: 1, at: 0 },
    { seq: 22, picks: [['g', 'f/#', D]], qos: 2, at: 101_000 }, // QoS 2, maybe handed after the last renewal
    { seq: 23, picks: [['nobody', 'f/#', D]], qos: 2, at: 103_000 }, // QoS 2 never handed; nobody left to take it
    { seq: 99, picks: [['g', 'f/#', D]], qos: 1, at: 0 }, // removed by the stream's limits before its read
  ];
  const placed: [string, string, number, string][] = [];
  const deps = depsOver(stored, ['alive-1'], placed);
  const lease: DeadLease = { nodeId: 'n', instance: D, diedAt: 1, writtenAt: 100_000, shares: { gw: { from: 20, held: [5, 6] } } };
  const outcome = await repickDeadShares(lease, deps);
  assert.deepEqual(deps.from, [5], 'read from the lowest held sequence');
  assert.deepEqual(placed, [['gw', 'g', 5, D], ['gw', 'g', 20, D], ['gw', 'h', 20, D], ['gw', 'nobody', 23, D]]);
  assert.deepEqual(deps.reads, [5, 20, 22, 23, 99], 'only the candidates read whole, once each');
  assert.deepEqual(outcome, { repicked: 3, left: 2 }, 'the one nobody took and the one the stream lost are left');
});

test('a lease without shares, or of another shape, picks nothing again', { timeout: 5_000 }, async () => {
  const placed: [string, string, number, string][] = [];
  const deps = depsOver([{ seq: 1, picks: [['g', 'f', 'd']], qos: 1, at: 0 }], [], placed);
  for (const shares of [undefined, { gw: { from: 'x', held: [] } }, { gw: null }, { gw: { from: 0, held: [] } }, { gw: { from: 1, held: 'x' } }]) {
    const lease = { nodeId: 'n', instance: 'd', diedAt: 1, writtenAt: 1, shares } as unknown as DeadLease;
    assert.deepEqual(await repickDeadShares(lease, deps), { repicked: 0, left: 0 });
  }
  assert.deepEqual(placed, []);
  assert.deepEqual(deps.from, []);
});
