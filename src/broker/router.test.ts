import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Router } from './router.ts';
import { Session, type SessionLink, type Subscription } from './session.ts';
import { createStats } from './stats.ts';
import type { QoS } from '../mqtt/codec.ts';

const online: SessionLink = { sendQuota: 10, congested: false, sendPublish: () => true, sendPubrel: () => undefined };

function session(id: string, link: SessionLink | null = online): Session {
  const s = new Session(id, { maxQueued: 10, maxQueuedBytes: 1 << 20, queueOverflow: 'drop-oldest', maxRetained: 10 }, createStats());
  s.link = link;
  return s;
}

function sub(s: Session, raw: string, qos: QoS, extra: Partial<Subscription> = {}): Subscription {
  const shared = raw.startsWith('$share/') ? raw.split('/') : null;
  return {
    session: s, raw, filter: shared ? shared.slice(2).join('/') : raw, group: shared ? shared[1] : undefined,
    qos, noLocal: false, retainAsPublished: false, retainHandling: 0, subscriptionId: undefined, ...extra,
  };
}

test('[MQTT-3.3.4-2] [MQTT-3.3.4-3] overlapping subscriptions give one copy at the highest QoS with every identifier', { timeout: 5_000 }, () => {
  const r = new Router();
  const a = session('a');
  r.add(sub(a, 'x/#', 0, { subscriptionId: 1 }));
  r.add(sub(a, 'x/+', 2, { subscriptionId: 2 }));
  const d = r.match('x/y', 'publisher');
  assert.equal(d.length, 1);
  assert.equal(d[0]!.qos, 2);
  assert.deepEqual(d[0]!.subIds?.sort(), [1, 2]);
});

test('[MQTT-4.7.2-1] a wildcard-first filter does not match $ topics', { timeout: 5_000 }, () => {
  const r = new Router();
  const a = session('a');
  r.add(sub(a, '#', 0));
  r.add(sub(a, '+/info', 0));
  assert.equal(r.match('$SYS/info', 'p').length, 0);
  r.add(sub(a, '$SYS/#', 1));
  assert.equal(r.match('$SYS/info', 'p').length, 1);
});

test('[MQTT-3.8.3-3] No Local skips the publisher own subscription', { timeout: 5_000 }, () => {
  const r = new Router();
  const a = session('a');
  r.add(sub(a, 't', 0, { noLocal: true }));
  assert.equal(r.match('t', 'a').length, 0);
  assert.equal(r.match('t', 'b').length, 1);
});

test('[MQTT-4.8.2] shared groups deliver to one member each, round robin, preferring connected members', { timeout: 5_000 }, () => {
  const r = new Router();
  const a = session('a');
  const b = session('b');
  const offline = session('c', null);
  r.add(sub(a, '$share/g/t/#', 1));
  r.add(sub(b, '$share/g/t/#', 1));
  r.add(sub(offline, '$share/g/t/#', 1));
  r.add(sub(a, '$share/h/t/#', 1));
  const counts = new Map<string, number>();
  for (let i = 0; i < 10; i++) {
    const d = r.match('t/1', 'p');
    assert.equal(d.length, 2); // one member of g and one of h, each its own copy
    for (const x of d) counts.set(x.session.clientId, (counts.get(x.session.clientId) ?? 0) + 1);
  }
  assert.equal(counts.get('c'), undefined);
  assert.equal((counts.get('a') ?? 0) + (counts.get('b') ?? 0), 20);
});

test('removing the last member removes the group', { timeout: 5_000 }, () => {
  const r = new Router();
  const a = session('a');
  const s = sub(a, '$share/g/t', 0);
  r.add(s);
  r.remove(s);
  assert.equal(r.match('t', 'p').length, 0);
  assert.equal(r.subscriptionCount, 0);
});

test('[MQTT-4.8.2] a shared group spreads its messages: connected members take turns, each gets its share', { timeout: 5_000 }, () => {
  // The test above checks each message reaches the group once; this one that the group is a load
  // balancer and not "everything to one member" (issue 18: sending every message to one member passed).
  const r = new Router();
  const members = ['a', 'b', 'c'].map((id) => session(id));
  const offline = session('d', null);
  for (const s of [...members, offline]) r.add(sub(s, '$share/g/t/#', 1));
  const order: string[] = [];
  for (let i = 0; i < 12; i++) {
    const d = r.match('t/1', 'p');
    assert.equal(d.length, 1);
    order.push(d[0]!.session.clientId);
  }
  for (const id of ['a', 'b', 'c']) assert.equal(order.filter((x) => x === id).length, 4, `${id} gets a third of 12: ${order.join('')}`);
  assert.ok(!order.includes('d'), 'an offline member gets nothing while others are connected');
  for (let i = 1; i < order.length; i++) assert.notEqual(order[i], order[i - 1], `no member twice in a row: ${order.join('')}`);
});
