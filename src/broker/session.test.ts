import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { QoS } from '../mqtt/codec.ts';
import { createMessage, type Message } from './message.ts';
import { Session, type SessionLink } from './session.ts';
import { createStats } from './stats.ts';

const LIMITS = { maxQueued: 100, maxQueuedBytes: 1 << 20, queueOverflow: 'drop-oldest' as const, maxRetained: 100 };

const message = (topic: string, qos: QoS = 1) => createMessage({ topic, payload: Buffer.from(topic), qos, retain: false, properties: undefined, expiresAt: 0, senderId: '' });

/** A client that accepts `quota` unacknowledged messages and records what it was sent. */
function clientLink(quota: number): SessionLink & { sent: { topic: string; dup: boolean; packetId: number }[]; pubrels: number[] } {
  const sent: { topic: string; dup: boolean; packetId: number }[] = [];
  const pubrels: number[] = [];
  return {
    sent, pubrels, sendQuota: quota, congested: false,
    sendPublish: (m: Message, _qos: QoS, _retain: boolean, packetId: number, dup: boolean) => {
      sent.push({ topic: m.topic, dup, packetId });
      return true;
    },
    sendPubrel: (id: number) => pubrels.push(id),
  };
}

const secret = (m: { topic: string }) => m.topic.startsWith('secret/');

/** The retained store as a session sees it: each message fetched whole when its turn comes. */
const retainedSource = (...messages: Message[]) => {
  const byTopic = new Map(messages.map((m) => [m.topic, m]));
  return { refs: messages, source: { get: (topic: string) => byTopic.get(topic) } };
};

test('dropMessages, live connection: queued and owed retained messages are dropped, what is in flight stays, the window refills', { timeout: 5_000 }, () => {
  const session = new Session('c', LIMITS, createStats());
  const link = clientLink(1);
  session.link = link;
  session.deliver(message('secret/1'), 1, false, undefined); // in flight: the client has it
  session.deliver(message('secret/2'), 1, false, undefined);
  session.deliver(message('ok/1'), 1, false, undefined);
  const owed = retainedSource(message('secret/r1'), message('secret/r2'));
  session.sendRetained('secret/#', owed.refs, 1, undefined, owed.source);
  assert.equal(session.queuedCount, 2);
  assert.equal(session.retainedOwed, 2);

  assert.equal(session.dropMessages(secret), 3);
  assert.equal(session.inflightCount, 1);
  assert.equal(session.queuedCount, 1);
  assert.equal(session.retainedOwed, 0);
  assert.equal(session.queuedBytes, 'ok/1'.length * 2);
  assert.ok(session.complete(link.sent[0]!.packetId, 'puback'));
  assert.deepEqual(link.sent.map((s) => s.topic), ['secret/1', 'ok/1']);
});

test('dropMessages, offline: messages in flight that resuming would send again are dropped; a QoS 2 flow past PUBREC completes', { timeout: 5_000 }, () => {
  const session = new Session('c', LIMITS, createStats());
  const first = clientLink(10);
  session.link = first;
  session.deliver(message('secret/a', 2), 2, false, undefined);
  session.deliver(message('secret/b', 2), 2, false, undefined);
  session.deliver(message('ok/c'), 1, false, undefined);
  assert.equal(session.received(first.sent[0]!.packetId, 0), 'pubrel'); // secret/a reached the client
  session.link = null; // the connection went away
  session.deliver(message('secret/d'), 1, false, undefined);

  assert.equal(session.dropMessages(secret), 2); // secret/b in flight, secret/d queued
  const again = clientLink(10);
  session.resume(again);
  assert.deepEqual(again.pubrels, [first.sent[0]!.packetId]);
  assert.deepEqual(again.sent.map((s) => [s.topic, s.dup]), [['ok/c', true]]);
});
