import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { QoS } from '../mqtt/codec.ts';
import { createMessage, type Message } from './message.ts';
import { DROPPED, Session, type DeliveryEnd, type SessionLink } from './session.ts';
import { createStats } from './stats.ts';
import { Journal } from './journal.ts';
import { CommitGate } from './commit-gate.ts';
import type { BrokerPersistence } from './persistence.ts';
import { silentLogger } from '../core/logger.ts';

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

/** Owes `messages` to `session` for a SUBSCRIBE of `raw`, from a retained store holding them. */
const owe = (session: Session, raw: string, messages: Message[], qos: QoS): void => {
  const owed = retainedSource(...messages);
  session.sendRetained(raw, owed.refs, qos, undefined, owed.source);
};

/** A link whose window, congestion and size refusals the test sets, recording qos, retain and ids too. */
function flowLink(quota: number): SessionLink & { sent: { topic: string; qos: QoS; retain: boolean; packetId: number; dup: boolean }[]; pubrels: number[]; congested: boolean; refuse: Set<string> } {
  const link = {
    sent: [] as { topic: string; qos: QoS; retain: boolean; packetId: number; dup: boolean }[],
    pubrels: [] as number[],
    sendQuota: quota,
    congested: false,
    refuse: new Set<string>(),
    sendPublish(m: Message, qos: QoS, retain: boolean, packetId: number, dup: boolean): boolean {
      if (link.refuse.has(m.topic)) return false;
      link.sent.push({ topic: m.topic, qos, retain, packetId, dup });
      return true;
    },
    sendPubrel(id: number): void {
      link.pubrels.push(id);
    },
  };
  return link;
}

test('QoS 0 goes now or never: sent with no packet id, dropped offline or to a congested socket, each counted', { timeout: 5_000 }, () => {
  const stats = createStats();
  const session = new Session('c', LIMITS, stats);
  session.deliver(message('q0/offline', 0), 0, false, undefined);
  const link = flowLink(10);
  session.link = link;
  session.deliver(message('q0/sent', 0), 0, true, undefined);
  link.congested = true;
  session.deliver(message('q0/slow', 0), 0, false, undefined);
  assert.deepEqual(link.sent, [{ topic: 'q0/sent', qos: 0, retain: true, packetId: 0, dup: false }]);
  assert.deepEqual([stats.droppedOffline, stats.droppedSlowConsumer, session.queuedCount, session.inflightCount], [1, 1, 0, 0]);
});

test('[MQTT-4.9.0-2] the inflight window holds sendQuota messages; the rest queue in order and go as acknowledgements make room', { timeout: 5_000 }, () => {
  const session = new Session('c', LIMITS, createStats());
  const link = flowLink(2);
  session.link = link;
  const completed: string[] = [];
  for (const t of ['m/1', 'm/2', 'm/3', 'm/4']) session.deliver(message(t), 1, false, undefined, () => completed.push(t));
  assert.deepEqual(link.sent.map((s) => [s.topic, s.packetId]), [['m/1', 1], ['m/2', 2]]);
  assert.deepEqual([session.inflightCount, session.queuedCount, session.queuedBytes], [2, 2, 'm/3'.length * 2 + 'm/4'.length * 2]);
  assert.equal(session.complete(2, 'pubcomp'), false, 'a QoS 1 flow is not ended by PUBCOMP');
  assert.equal(session.complete(9, 'puback'), false, 'an unknown id');
  assert.equal(session.complete(2, 'puback'), true);
  assert.deepEqual(completed, ['m/2']);
  assert.deepEqual(link.sent.map((s) => [s.topic, s.packetId]), [['m/1', 1], ['m/2', 2], ['m/3', 3]]);
  assert.equal(session.complete(2, 'puback'), false, 'already ended');
  // A congested socket holds QoS 1 back, even with room in the window.
  link.congested = true;
  assert.equal(session.complete(1, 'puback'), true);
  assert.equal(link.sent.length, 3);
  assert.deepEqual([session.inflightCount, session.queuedCount, session.queuedBytes], [1, 1, 'm/4'.length * 2]);
  link.congested = false;
  session.drain();
  assert.deepEqual(link.sent.map((s) => s.topic), ['m/1', 'm/2', 'm/3', 'm/4']);
  assert.deepEqual([session.inflightCount, session.queuedCount, session.queuedBytes], [2, 0, 0]);
  // While something is queued, a new message queues behind it rather than overtaking, even with room.
  link.congested = true;
  assert.equal(session.complete(3, 'puback'), true);
  session.deliver(message('m/5'), 1, false, undefined);
  link.congested = false;
  session.deliver(message('m/6'), 1, false, undefined);
  assert.deepEqual(link.sent.map((s) => s.topic).slice(4), []);
  session.drain();
  assert.deepEqual(link.sent.map((s) => s.topic).slice(4), ['m/5']);
  assert.equal(session.queuedCount, 1);
});

test('QoS 2: PUBREC moves a flow to PUBREL; PUBREC ≥ 0x80 ends it, frees the slot, and sends what waited (issue 18)', { timeout: 5_000 }, () => {
  const session = new Session('c', LIMITS, createStats());
  const link = flowLink(1);
  session.link = link;
  session.deliver(message('q2/a', 2), 2, false, undefined);
  session.deliver(message('q2/b', 2), 2, false, undefined);
  session.deliver(message('q2/c', 2), 2, false, undefined);
  assert.equal(session.complete(1, 'pubcomp'), false, 'no PUBCOMP before PUBREC');
  assert.equal(session.received(1, 0x7f), 'pubrel', '0x7f is not a failure');
  assert.equal(session.complete(1, 'puback'), false, 'a QoS 2 flow is not ended by PUBACK');
  assert.equal(session.complete(1, 'pubcomp'), true);
  assert.deepEqual(link.sent.map((s) => [s.topic, s.packetId]), [['q2/a', 1], ['q2/b', 2]]);
  assert.equal(session.received(2, 0x80), 'ended');
  assert.equal(session.complete(2, 'pubcomp'), false, 'ended: no PUBREL, no PUBCOMP');
  assert.deepEqual(link.sent.map((s) => [s.topic, s.packetId]), [['q2/a', 1], ['q2/b', 2], ['q2/c', 3]], 'the slot went to the next');
  assert.equal(session.received(3, 0x87), 'ended');
  assert.equal(session.inflightCount, 0);
  assert.equal(session.received(3, 0), 'unknown');
  session.deliver(message('q1/d'), 1, false, undefined);
  assert.equal(session.received(4, 0), 'unknown', 'PUBREC for a QoS 1 flow');
  assert.equal(session.inflightCount, 1);
});

test('whoever waits on a QoS 1/2 delivery hears how it ended: the client\'s reason code, or DROPPED', { timeout: 5_000 }, () => {
  const session = new Session('c', { ...LIMITS, maxQueued: 2 }, createStats());
  const link = flowLink(1);
  session.link = link;
  const ends = new Map<string, DeliveryEnd[]>();
  const tell = (topic: string) => (end: DeliveryEnd) => ends.set(topic, [...(ends.get(topic) ?? []), end]);
  const send = (topic: string, qos: QoS = 1, expiresAt = 0) =>
    session.deliver(createMessage({ topic, payload: Buffer.from(topic), qos, retain: false, properties: undefined, expiresAt, senderId: '' }), qos, false, undefined, tell(topic));

  assert.ok(send('a'));                               // in flight, packet id 1
  assert.ok(send('b'));                               // queued
  assert.ok(send('c', 1, Date.now() - 1));            // queued, already expired when its turn comes
  assert.ok(send('d'));                               // drop-oldest: 'b' leaves the full queue
  assert.deepEqual(ends.get('b'), [DROPPED]);
  // A v5 PUBACK carrying a failure ends the flow and is told as such (MQTT 5 §3.4.2.1), not as a success.
  assert.ok(session.complete(1, 'puback', 0x87));
  assert.deepEqual(ends.get('a'), [0x87]);
  assert.deepEqual(ends.get('c'), [DROPPED], 'expired while queued: dropped at its turn');
  assert.deepEqual(link.sent.map((s) => s.topic), ['a', 'd']);
  assert.ok(session.complete(link.sent[1]!.packetId, 'puback'));
  assert.deepEqual(ends.get('d'), [0], 'a plain PUBACK (or 3.1.1) is 0');

  // QoS 2: a PUBREC refusal ends the flow there [MQTT-4.3.3-4]; a PUBCOMP tells its own code (0x92 included).
  assert.ok(send('e', 2));
  assert.equal(session.received(link.sent[2]!.packetId, 0x97), 'ended');
  assert.deepEqual(ends.get('e'), [0x97]);
  assert.ok(send('f', 2));
  assert.equal(session.received(link.sent[3]!.packetId, 0), 'pubrel');
  assert.equal(ends.get('f'), undefined, 'not ended at PUBREC');
  assert.ok(session.complete(link.sent[3]!.packetId, 'pubcomp', 0x92));
  assert.deepEqual(ends.get('f'), [0x92]);

  // Too large for the client when it is sent: dropped at once, told once.
  link.refuse.add('g');
  assert.equal(send('g'), false);
  assert.deepEqual(ends.get('g'), [DROPPED]);
  assert.deepEqual([...ends.values()].map((e) => e.length), [1, 1, 1, 1, 1, 1, 1], 'each told exactly once');
});

test('deliver says false for a message it drops at once: QoS 0 offline or congested, QoS 1 refused by a full drop-new queue or larger than the queue', { timeout: 5_000 }, () => {
  const session = new Session('c', { ...LIMITS, maxQueued: 1, maxQueuedBytes: 64, queueOverflow: 'drop-new' }, createStats());
  assert.equal(session.deliver(message('q0/offline', 0), 0, false, undefined), false, 'QoS 0 is not queued for an absent client');
  const link = flowLink(1);
  session.link = link;
  link.congested = true;
  assert.equal(session.deliver(message('q0/congested', 0), 0, false, undefined), false, 'QoS 0 to a slow consumer');
  assert.equal(session.deliver(message('q1/queued'), 1, false, undefined), true, 'queued behind the congestion');
  assert.equal(session.deliver(message('q1/full'), 1, false, undefined), false, 'drop-new: the queue is full');
  const big = createMessage({ topic: 'q1/big', payload: Buffer.alloc(100), qos: 1, retain: false, properties: undefined, expiresAt: 0, senderId: '' });
  assert.equal(session.deliver(big, 1, false, undefined), false, 'larger than the whole queue');
  link.congested = false;
  assert.equal(session.deliver(message('q0/sent', 0), 0, false, undefined), true);
});

test('every other way a waiting message ends tells its waiter: dropped by access control, too large on resume, the session ending', { timeout: 5_000 }, () => {
  const ends = new Map<string, DeliveryEnd[]>();
  const tell = (topic: string) => (end: DeliveryEnd) => ends.set(topic, [...(ends.get(topic) ?? []), end]);
  const send = (session: Session, topic: string, qos: QoS = 1) => session.deliver(message(topic, qos), qos, false, undefined, tell(topic));

  // dropMessages (an access rule removed): queued, and offline in flight.
  const denied = new Session('c', LIMITS, createStats());
  const first = flowLink(1);
  denied.link = first;
  send(denied, 'secret/inflight');
  send(denied, 'secret/queued');
  denied.link = null;
  assert.equal(denied.dropMessages(secret), 2);
  assert.deepEqual([ends.get('secret/inflight'), ends.get('secret/queued')], [[DROPPED], [DROPPED]]);

  // Resumed by a connection that accepts smaller packets: the message in flight cannot be sent again.
  const shrunk = new Session('c', LIMITS, createStats());
  shrunk.link = flowLink(1);
  send(shrunk, 'big/one');
  shrunk.link = null;
  const small = flowLink(1);
  small.refuse.add('big/one');
  shrunk.resume(small);
  assert.deepEqual(ends.get('big/one'), [DROPPED]);

  // The session ends (a clean-start client gone) with messages in flight and queued: each told once; a QoS 2
  // flow past its PUBREC reached the client (0), the others did not.
  const ending = new Session('c', LIMITS, createStats());
  const last = flowLink(2);
  ending.link = last;
  send(ending, 'end/received', 2);
  send(ending, 'end/inflight', 1);
  send(ending, 'end/queued', 1);
  assert.equal(ending.received(last.sent[0]!.packetId, 0), 'pubrel');
  ending.clearMessages();
  assert.deepEqual([ends.get('end/received'), ends.get('end/inflight'), ends.get('end/queued')], [[0], [DROPPED], [DROPPED]]);
  assert.deepEqual([ending.inflightCount, ending.queuedCount, ending.queuedBytes], [0, 0, 0]);
});

/** A stored outbound QoS 1 message as a restart loads it (packet id 0: it was queued). */
const stored = (seq: number, packetId: number, topic: string) => ({
  clientId: 'c', seq, qos: 1 as const, retain: false, subIds: undefined, packetId, state: 'publish' as const,
  message: { topic, payload: Buffer.from(topic), qos: 1 as const, retain: false, properties: undefined, expiresAt: 0, senderId: '' },
});
const toMessage = (r: { message: { topic: string } }) => message(r.message.topic);

test('[MQTT-2.2.1-3] packet ids continue after restored ones, wrap from 65535 to 1 and skip ids in use', { timeout: 5_000 }, () => {
  const session = new Session('c', LIMITS, createStats());
  session.restoreOutbound([stored(1, 1, 'r/one'), stored(2, 65535, 'r/last'), stored(3, 0, 'r/queued')], toMessage);
  assert.deepEqual([session.inflightCount, session.queuedCount, session.queuedBytes], [2, 1, 'r/queued'.length * 2]);
  const link = flowLink(3);
  session.resume(link);
  // Resent in their original order with DUP; then the queued one gets the next free id: 1 is taken, so 2.
  assert.deepEqual(link.sent.map((s) => [s.topic, s.packetId, s.dup]), [['r/one', 1, true], ['r/last', 65535, true], ['r/queued', 2, false]]);
  session.deliver(message('new'), 1, false, undefined);
  assert.deepEqual(link.sent.map((s) => [s.topic, s.packetId]).slice(3), [], 'the window is full');
  assert.equal(session.complete(65535, 'puback'), true);
  assert.deepEqual(link.sent.map((s) => [s.topic, s.packetId]).slice(3), [['new', 3]]);
});

test('a message larger than the client accepts is not kept in flight [MQTT-3.1.2-25], on first send and on resume', { timeout: 5_000 }, () => {
  const session = new Session('c', LIMITS, createStats());
  const link = flowLink(5);
  link.refuse.add('big/1');
  session.link = link;
  session.deliver(message('big/1'), 1, false, undefined);
  session.deliver(message('ok/1'), 1, false, undefined);
  assert.equal(session.inflightCount, 1);
  session.link = null;
  const smaller = flowLink(5);
  smaller.refuse.add('ok/1');
  session.resume(smaller);
  assert.equal(session.inflightCount, 0, 'refused on resume: dropped, not resent forever');
  assert.deepEqual(smaller.sent, []);
});

test('queue limits: drop-oldest makes room by count and by bytes, drop-new refuses; a message above the byte limit never queues; drops for bytes counted apart', { timeout: 5_000 }, () => {
  const fill = (overflow: 'drop-oldest' | 'drop-new', maxQueued: number, maxQueuedBytes: number, topics: string[]) => {
    const stats = createStats();
    const session = new Session('c', { ...LIMITS, maxQueued, maxQueuedBytes, queueOverflow: overflow }, stats);
    for (const t of topics) session.deliver(message(t), 1, false, undefined); // offline: every one queues
    const link = flowLink(100);
    const state = { queued: session.queuedCount, bytes: session.queuedBytes, dropped: stats.droppedQueueFull, overBytes: stats.queueDropsOverBytes };
    session.resume(link);
    return { ...state, sent: link.sent.map((s) => s.topic) };
  };
  // Each message counts its topic and payload: 'a1' is 4 bytes.
  assert.deepEqual(fill('drop-oldest', 2, 100, ['a1', 'a2', 'a3']), { queued: 2, bytes: 8, dropped: 1, overBytes: 0, sent: ['a2', 'a3'] });
  assert.deepEqual(fill('drop-new', 2, 100, ['a1', 'a2', 'a3']), { queued: 2, bytes: 8, dropped: 1, overBytes: 0, sent: ['a1', 'a2'] });
  assert.deepEqual(fill('drop-oldest', 10, 8, ['a1', 'a2', 'a3']), { queued: 2, bytes: 8, dropped: 1, overBytes: 1, sent: ['a2', 'a3'] });
  assert.deepEqual(fill('drop-new', 10, 8, ['a1', 'a2', 'a3']), { queued: 2, bytes: 8, dropped: 1, overBytes: 1, sent: ['a1', 'a2'] });
  assert.deepEqual(fill('drop-oldest', 10, 12, ['a1', 'a2', 'a3']), { queued: 3, bytes: 12, dropped: 0, overBytes: 0, sent: ['a1', 'a2', 'a3'] }, 'exactly at the byte limit');
  assert.deepEqual(fill('drop-oldest', 10, 7, ['a1', 'long', 'a3']), { queued: 1, bytes: 4, dropped: 2, overBytes: 2, sent: ['a3'] });
  assert.deepEqual(fill('drop-oldest', 10, 3, ['a1']), { queued: 0, bytes: 0, dropped: 1, overBytes: 1, sent: [] }, 'too big for an empty queue');
  assert.deepEqual(fill('drop-oldest', 10, 4, ['a1']), { queued: 1, bytes: 4, dropped: 0, overBytes: 0, sent: ['a1'] }, 'exactly the byte limit fits');
  assert.deepEqual(fill('drop-new', 10, 3, ['a1']), { queued: 0, bytes: 0, dropped: 1, overBytes: 1, sent: [] });
});

test('an expired queued message is dropped when its turn comes, not sent [MQTT-3.3.2-5]', { timeout: 5_000 }, () => {
  const stats = createStats();
  const session = new Session('c', LIMITS, stats);
  const expired = createMessage({ topic: 'old', payload: Buffer.from('x'), qos: 1, retain: false, properties: undefined, expiresAt: Date.now() - 1, senderId: '' });
  const fresh = createMessage({ topic: 'fresh', payload: Buffer.from('x'), qos: 1, retain: false, properties: undefined, expiresAt: Date.now() + 60_000, senderId: '' });
  session.deliver(expired, 1, false, undefined);
  session.deliver(fresh, 1, false, undefined);
  const link = flowLink(5);
  session.resume(link);
  assert.deepEqual(link.sent.map((s) => s.topic), ['fresh']);
  assert.deepEqual([stats.droppedExpired, session.queuedCount, session.queuedBytes], [1, 0, 0]);
});

test('retained messages for a new subscription: RETAIN set, at most the granted QoS, paced by the window, bounded, replaced by a new SUBSCRIBE', { timeout: 5_000 }, () => {
  const stats = createStats();
  const session = new Session('c', { ...LIMITS, maxRetained: 3 }, stats);
  const link = flowLink(1);
  session.link = link;
  const r = (topic: string, qos: QoS) => message(topic, qos);
  owe(session, 'r/#', [r('r/1', 2), r('r/2', 0), r('r/3', 1), r('r/4', 1)], 1);
  assert.equal(stats.droppedRetainedBacklog, 1, 'one over the bound of 3');
  // QoS 2 downgraded to the grant; the rest wait for room in the window (the grant is QoS 1, so even
  // the QoS 0 message: whether it could go is known only once it is fetched).
  assert.deepEqual(link.sent.map((s) => [s.topic, s.qos, s.retain]), [['r/1', 1, true]]);
  assert.equal(session.retainedOwed, 2);
  session.complete(1, 'puback');
  assert.deepEqual(link.sent.map((s) => [s.topic, s.qos, s.retain]), [['r/1', 1, true], ['r/2', 0, true], ['r/3', 1, true]]);
  assert.equal(session.retainedOwed, 0);
  // A new SUBSCRIBE of the same filter replaces what was owed; the bound counts what is still owed.
  link.congested = true;
  owe(session, 's/#', [r('s/1', 0), r('s/2', 0)], 0);
  owe(session, 's/#', [r('s/1', 0), r('s/2', 0), r('s/3', 0)], 0);
  assert.equal(session.retainedOwed, 3);
  owe(session, 't/#', [r('t/1', 0)], 0);
  assert.equal(session.retainedOwed, 3, 'no room: the bound holds across filters');
  assert.equal(stats.droppedRetainedBacklog, 2);
  link.congested = false;
  session.drain();
  assert.deepEqual(link.sent.map((s) => s.topic).slice(3), ['s/1', 's/2', 's/3']);
  assert.equal(session.retainedOwed, 0);
});

test('a durable session journals what it owes as it changes and forgets what is done: a restart would restore the open flows only', { timeout: 5_000 }, async () => {
  // The store keeps the outbound rows the journal commits (once per turn), as a restart would load them.
  const rows = new Map<string, string>();
  const store: BrokerPersistence = {
    load: () => Promise.reject(new Error('not loaded here')),
    write: (batch) => {
      for (const [key, r] of batch.outbound) {
        if (r === null) rows.delete(key);
        else rows.set(key, `${r.message.topic} id=${r.packetId} ${r.state}`);
      }
    },
  };
  const session = new Session('c', { ...LIMITS, maxQueued: 2 }, createStats());
  session.journal = new Journal(store, silentLogger, new CommitGate());
  session.expiryInterval = 60;
  const link = flowLink(1);
  session.link = link;
  const journaled = async (): Promise<string[]> => {
    await new Promise((r) => setImmediate(r));
    return [...rows.values()].sort();
  };
  session.deliver(message('j/1', 2), 2, false, undefined);
  for (const t of ['j/2', 'j/3', 'j/4']) session.deliver(message(t), 1, false, undefined); // j/2 overflows the queue of 2
  assert.deepEqual(await journaled(), ['j/1 id=1 publish', 'j/3 id=0 publish', 'j/4 id=0 publish']);
  assert.equal(session.received(1, 0), 'pubrel');
  assert.deepEqual(await journaled(), ['j/1 id=1 pubrel', 'j/3 id=0 publish', 'j/4 id=0 publish']);
  assert.equal(session.complete(1, 'pubcomp'), true);
  assert.deepEqual(await journaled(), ['j/3 id=2 publish', 'j/4 id=0 publish']);
  assert.equal(session.complete(2, 'puback'), true);
  session.deliver(message('j/5', 2), 2, false, undefined);
  assert.equal(session.complete(3, 'puback'), true);
  assert.deepEqual(await journaled(), ['j/5 id=4 publish']);
  assert.equal(session.received(4, 0x80), 'ended');
  link.refuse.add('j/6');
  session.deliver(message('j/6'), 1, false, undefined);
  assert.deepEqual(await journaled(), [], 'a refused PUBREC and a message too large for the client leave nothing');
  // Offline: queued, then dropped; sent, then refused on resume; expired in the queue.
  session.deliver(message('j/7'), 1, false, undefined);
  session.link = null;
  session.deliver(message('j/8'), 1, false, undefined);
  session.deliver(createMessage({ topic: 'j/9', payload: Buffer.from('x'), qos: 1, retain: false, properties: undefined, expiresAt: Date.now() - 1, senderId: '' }), 1, false, undefined);
  assert.deepEqual(await journaled(), ['j/7 id=6 publish', 'j/8 id=0 publish', 'j/9 id=0 publish']);
  assert.equal(session.dropMessages((m) => m.topic === 'j/8'), 1);
  assert.deepEqual(await journaled(), ['j/7 id=6 publish', 'j/9 id=0 publish']);
  const smaller = flowLink(5);
  smaller.refuse.add('j/7');
  session.resume(smaller);
  assert.deepEqual(await journaled(), []);
  // Queued offline, then too large for the client that comes back: forgotten when its turn comes.
  session.link = null;
  session.deliver(message('j/big'), 1, false, undefined);
  assert.deepEqual(await journaled(), ['j/big id=0 publish']);
  const refusing = flowLink(5);
  refusing.refuse.add('j/big');
  session.resume(refusing);
  assert.deepEqual(await journaled(), []);
  session.link = null;
  session.deliver(message('j/10'), 1, false, undefined);
  session.resume(flowLink(5));
  session.link = null;
  assert.deepEqual(await journaled(), ['j/10 id=8 publish']);
  assert.equal(session.dropMessages((m) => m.topic === 'j/10'), 1, 'in flight while offline: resuming would send it again');
  assert.deepEqual(await journaled(), []);
});

test('after a restore, new flows come after the restored ones: ids continue past the highest, wrap to 1, and resends keep the order', { timeout: 5_000 }, () => {
  const session = new Session('c', LIMITS, createStats());
  session.restoreOutbound([stored(1, 300, 'r/a'), stored(2, 301, 'r/b'), stored(3, 5, 'r/c')], toMessage);
  const a = flowLink(10);
  session.resume(a);
  assert.deepEqual(a.sent.map((s) => [s.topic, s.packetId, s.dup]), [['r/a', 300, true], ['r/b', 301, true], ['r/c', 5, true]]);
  assert.equal(session.complete(301, 'puback'), true);
  session.deliver(message('n/1'), 1, false, undefined);
  session.deliver(message('n/2'), 1, false, undefined);
  assert.deepEqual(a.sent.slice(3).map((s) => [s.topic, s.packetId]), [['n/1', 302], ['n/2', 303]], 'past the highest id, not after the last one restored');
  session.link = null;
  const b = flowLink(10);
  session.resume(b);
  assert.deepEqual(b.sent.map((s) => s.topic), ['r/a', 'r/c', 'n/1', 'n/2'], 'resent in the order the flows began');

  const single = new Session('s', LIMITS, createStats());
  single.restoreOutbound([stored(1, 300, 's/a')], toMessage);
  const c = flowLink(10);
  single.resume(c);
  single.deliver(message('s/n'), 1, false, undefined);
  assert.deepEqual(c.sent.map((s) => [s.topic, s.packetId]), [['s/a', 300], ['s/n', 301]]);

  // Allocation itself wraps too: after 65535 comes 1.
  const high = new Session('h', LIMITS, createStats());
  high.restoreOutbound([stored(1, 65534, 'h/a')], toMessage);
  const f = flowLink(10);
  high.resume(f);
  high.deliver(message('h/b'), 1, false, undefined);
  high.deliver(message('h/c'), 1, false, undefined);
  assert.deepEqual(f.sent.map((s) => [s.topic, s.packetId]), [['h/a', 65534], ['h/b', 65535], ['h/c', 1]]);

  const wrapped = new Session('w', LIMITS, createStats());
  wrapped.restoreOutbound([stored(1, 65535, 'w/a')], toMessage);
  const d = flowLink(10);
  wrapped.resume(d);
  wrapped.deliver(message('w/n'), 1, false, undefined);
  assert.deepEqual(d.sent.map((s) => [s.topic, s.packetId]), [['w/a', 65535], ['w/n', 1]], 'after 65535 comes 1, never 0');
  wrapped.link = null;
  const e = flowLink(10);
  wrapped.resume(e);
  assert.deepEqual(e.sent.map((s) => s.topic), ['w/a', 'w/n']);
});

test('a new SUBSCRIBE replaces only what its own filter still owes, counting what was already sent', { timeout: 5_000 }, () => {
  const session = new Session('c', { ...LIMITS, maxRetained: 10 }, createStats());
  const link = flowLink(1);
  session.link = link;
  owe(session, 'p/#', [message('p/1'), message('p/2'), message('p/3')], 1);
  assert.deepEqual([link.sent.length, session.retainedOwed], [1, 2], 'p/1 sent, two owed');
  link.congested = true;
  owe(session, 'q/#', [message('q/1', 0)], 0);
  owe(session, 'p/#', [message('p/1'), message('p/2'), message('p/3')], 1);
  assert.equal(session.retainedOwed, 4, 'the two p/# still owed replaced by three, q/1 kept');
  link.congested = false;
  session.complete(1, 'puback');
  assert.deepEqual(link.sent.map((s) => s.topic), ['p/1', 'q/1', 'p/1']);
  for (let id = 2; id <= 3; id++) session.complete(id, 'puback');
  assert.deepEqual(link.sent.map((s) => s.topic), ['p/1', 'q/1', 'p/1', 'p/2', 'p/3']);
  assert.equal(session.retainedOwed, 0);
});

test('owed retained messages wait in the backlog, not the queue; expired ones are skipped; offline they wait for the client', { timeout: 5_000 }, () => {
  const session = new Session('c', LIMITS, createStats());
  const stale = createMessage({ topic: 'r/stale', payload: Buffer.from('x'), qos: 0, retain: true, properties: undefined, expiresAt: Date.now() - 1, senderId: '' });
  owe(session, 'r/#', [message('r/1', 0), stale, message('r/2'), message('r/3')], 1);
  assert.deepEqual([session.retainedOwed, session.queuedCount], [4, 0], 'offline: all owed, nothing sent');
  const link = flowLink(1);
  session.resume(link);
  assert.deepEqual(link.sent.map((s) => s.topic), ['r/1', 'r/2']);
  assert.deepEqual([session.retainedOwed, session.queuedCount, session.inflightCount], [1, 0, 1], 'r/3 waits owed for the window');
  session.complete(link.sent[1]!.packetId, 'puback');
  assert.deepEqual(link.sent.map((s) => s.topic), ['r/1', 'r/2', 'r/3']);
});

test('when the queue empties with room to spare, owed retained messages follow in the same drain', { timeout: 5_000 }, () => {
  const session = new Session('c', LIMITS, createStats());
  const link = flowLink(3);
  session.link = link;
  session.deliver(message('m/1'), 1, false, undefined);
  link.congested = true;
  session.deliver(message('m/2'), 1, false, undefined);
  owe(session, 'r/#', [message('r/1')], 1);
  assert.deepEqual([session.queuedCount, session.retainedOwed], [1, 1]);
  link.congested = false;
  session.drain();
  assert.deepEqual(link.sent.map((s) => s.topic), ['m/1', 'm/2', 'r/1']);
});

test('a delivery that ends the connection stops the retained messages there; the rest wait for the next one', { timeout: 5_000 }, () => {
  const session = new Session('c', LIMITS, createStats());
  const link = flowLink(10);
  const sendPublish = link.sendPublish.bind(link);
  // A write that fails closes the connection at once: the session is detached inside sendPublish.
  link.sendPublish = (m, ...rest) => {
    const sent = sendPublish(m, ...rest);
    if (m.topic === 'r/1') session.link = null;
    return sent;
  };
  session.link = link;
  owe(session, 'r/#', [message('r/1', 0), message('r/2', 0)], 0);
  assert.deepEqual(link.sent.map((s) => s.topic), ['r/1']);
  assert.equal(session.retainedOwed, 1);
  const next = flowLink(10);
  session.resume(next);
  assert.deepEqual(next.sent.map((s) => s.topic), ['r/2']);
});

test('dropMessages: of retained messages partly sent, only the unsent ones the filter picks go; a session with nothing queued drops from flight', { timeout: 5_000 }, () => {
  const session = new Session('c', LIMITS, createStats());
  const link = flowLink(1);
  session.link = link;
  owe(session, 'r/#', [message('r/1'), message('secret/2'), message('r/3')], 1);
  assert.equal(session.dropMessages(secret), 1);
  assert.equal(session.retainedOwed, 1);
  session.complete(link.sent[0]!.packetId, 'puback');
  assert.deepEqual(link.sent.map((s) => s.topic), ['r/1', 'r/3']);

  const inFlightOnly = new Session('f', LIMITS, createStats());
  inFlightOnly.link = flowLink(5);
  inFlightOnly.deliver(message('secret/x'), 1, false, undefined);
  inFlightOnly.link = null;
  assert.equal(inFlightOnly.dropMessages(secret), 1);
  assert.equal(inFlightOnly.inflightCount, 0);
});

test('owed retained messages wait behind queued ones, even with room in the window', { timeout: 5_000 }, () => {
  const session = new Session('c', LIMITS, createStats());
  const link = flowLink(5);
  session.link = link;
  link.congested = true;
  session.deliver(message('m/1'), 1, false, undefined);
  link.congested = false;
  owe(session, 'r/#', [message('r/1')], 1);
  assert.equal(link.sent.length, 0, 'r/1 does not overtake the queued m/1');
  assert.deepEqual([session.queuedCount, session.retainedOwed], [1, 1], 'and waits owed, not queued');
  session.drain();
  assert.deepEqual(link.sent.map((s) => s.topic), ['m/1', 'r/1']);
});

test('pendingMessages: in flight first, then queued, oldest first, bounded; nothing is taken', { timeout: 5_000 }, () => {
  const session = new Session('c', LIMITS, createStats());
  const link = clientLink(2);
  session.link = link;
  for (const topic of ['a/1', 'a/2', 'a/3', 'a/4']) session.deliver(message(topic), 1, false, undefined);
  const [first, second] = link.sent;
  assert.deepEqual(session.pendingMessages(10), [
    { topic: 'a/1', qos: 1, bytes: 3, state: 'IN_FLIGHT', packetId: first!.packetId },
    { topic: 'a/2', qos: 1, bytes: 3, state: 'IN_FLIGHT', packetId: second!.packetId },
    { topic: 'a/3', qos: 1, bytes: 3, state: 'QUEUED', packetId: null },
    { topic: 'a/4', qos: 1, bytes: 3, state: 'QUEUED', packetId: null },
  ]);
  assert.deepEqual(session.pendingMessages(3).map((m) => m.topic), ['a/1', 'a/2', 'a/3']);
  assert.deepEqual(session.pendingMessages(1).map((m) => m.topic), ['a/1']);
  assert.deepEqual([session.inflightCount, session.queuedCount], [2, 2]);
  // The queue still drains in order once the client acknowledges.
  assert.ok(session.complete(first!.packetId, 'puback'));
  assert.deepEqual(link.sent.map((s) => s.topic), ['a/1', 'a/2', 'a/3']);
  assert.deepEqual(new Session('idle', LIMITS, createStats()).pendingMessages(10), []);
});

test('an inbound QoS 2 id resumed unconfirmed stays so until a store of it is made or it is released: a resend that never got stored leaves the next one to be [MQTT-4.3.3-10]', { timeout: 5_000 }, async () => {
  const session = new Session('c', LIMITS, createStats());
  session.takeQos2Unconfirmed(5);
  session.takeQos2Unconfirmed(6);
  assert.ok(session.incomingQos2.has(5), 'taken: its PUBREL is known');
  assert.equal(session.qos2Unconfirmed(5), true);
  assert.equal(session.qos2Unconfirmed(5), true, 'asking does not confirm it (the resend may not get as far as its store)');
  const stored = Promise.resolve(true);
  session.takeQos2(5, stored);
  assert.equal(session.qos2Unconfirmed(5), false, 'a store is made: a later resend waits for it');
  assert.equal(session.qos2Storing(5), stored);
  assert.equal(session.releaseQos2(6), true);
  assert.equal(session.qos2Unconfirmed(6), false);
  assert.equal(session.incomingQos2.has(6), false);
  await stored;
});

test('the cluster stream position rides with the next batch that has rows, or is written alone when due; a session\'s floor goes with its row', { timeout: 5_000 }, async () => {
  const written: { position: number | undefined; sessions: string[] }[] = [];
  const store: BrokerPersistence = {
    load: () => Promise.resolve({ retained: [], sessions: [], outbound: [] }),
    write: (batch) => {
      written.push({ position: batch.streamPosition, sessions: [...batch.sessions.values()].map((s) => `${s!.clientId}@${s!.streamFloor ?? '-'}`) });
    },
  };
  const journal = new Journal(store, silentLogger, new CommitGate());
  const turn = (): Promise<void> => new Promise((r) => setImmediate(r));
  // Messages that reached no persistent session: nothing is written for them (no commit held on their account).
  journal.streamPosition(10, false);
  journal.streamPosition(11, false);
  journal.commit();
  await turn();
  assert.deepEqual(written, []);
  // A session's row: the position rides with it.
  const session = new Session('s', LIMITS, createStats());
  session.expiryInterval = 60;
  session.streamFloor = 5;
  journal.session(session);
  await turn();
  assert.deepEqual(written, [{ position: 11, sessions: ['s@5'] }]);
  // Delivered to a persistent session (at QoS 0 it leaves no row): written alone.
  journal.streamPosition(12, true);
  await turn();
  assert.deepEqual(written.at(-1), { position: 12, sessions: [] });
  // Written once: the next batch does not repeat it.
  session.streamFloor = undefined;
  journal.session(session);
  await turn();
  assert.deepEqual(written.at(-1), { position: undefined, sessions: ['s@-'] });
  assert.equal(written.length, 3);
});
