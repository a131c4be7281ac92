import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Router, type Delivery, type RemotePick } from './router.ts';
import { Session, type SessionLink, type Subscription } from './session.ts';
import { createStats } from './stats.ts';
import type { QoS } from '../mqtt/codec.ts';

const online: SessionLink = { sendQuota: 10, congested: false, sendPublish: () => true, sendPubrel: () => undefined };

// A context made after the flag has V8's `gc`: a test can then see an object collected (WeakRef).
setFlagsFromString('--expose-gc');
const collectGarbage = runInNewContext('gc') as () => void;

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

test('subscriptions added or removed after a match are seen by the next match, shared and plain', { timeout: 5_000 }, () => {
  const r = new Router();
  const a = session('a');
  const b = session('b');
  assert.equal(r.match('t', 'p').length, 0);
  const plain = sub(a, 't', 0);
  r.add(plain);
  assert.deepEqual(r.match('t', 'p').map((d) => d.session.clientId), ['a']);
  r.remove(plain);
  assert.equal(r.match('t', 'p').length, 0);
  // A group of two: removing one member leaves the other receiving everything; removing it twice changes nothing.
  const first = sub(a, '$share/g/t', 1);
  const second = sub(b, '$share/g/t', 1);
  r.add(first);
  assert.deepEqual(r.match('t', 'p').map((d) => d.session.clientId), ['a'], 'a group of one receives');
  r.add(second);
  r.remove(first);
  r.remove(first);
  assert.deepEqual([1, 2, 3].map(() => r.match('t', 'p').map((d) => d.session.clientId).join()), ['b', 'b', 'b']);
  r.remove(second);
  assert.equal(r.match('t', 'p').length, 0);
});

test('overlaps merge whatever the order: highest QoS, Retain As Published if any asked, only the identifiers given', { timeout: 5_000 }, () => {
  for (const [hash, plus, exact] of [[2, 0, 1], [0, 2, 1], [1, 0, 2]] as const) {
    const r = new Router();
    const a = session('a');
    r.add(sub(a, 'x/#', hash));
    r.add(sub(a, 'x/+', plus, { subscriptionId: 7, retainAsPublished: true }));
    r.add(sub(a, 'x/y', exact, { subscriptionId: 9 }));
    const d = r.match('x/y', 'p');
    assert.equal(d.length, 1);
    assert.equal(d[0]!.qos, 2, `QoS ${hash}/${plus}/${exact}`);
    assert.equal(d[0]!.retainAsPublished, true);
    assert.deepEqual(d[0]!.subIds?.sort(), [7, 9]);
  }
  const r = new Router();
  r.add(sub(session('a'), 'x/y', 1));
  assert.deepEqual(r.match('x/y', 'p').map((d) => [d.qos, d.retainAsPublished, d.subIds]), [[1, false, undefined]]);
});

test('without No Local a client receives its own messages; + matches an empty level', { timeout: 5_000 }, () => {
  const r = new Router();
  const a = session('a');
  r.add(sub(a, 't', 0));
  r.add(sub(a, 'u/+/v', 0));
  assert.equal(r.match('t', 'a').length, 1);
  assert.equal(r.match('u//v', 'a').length, 1);
});

test('a shared group with nobody connected still takes turns among its members', { timeout: 5_000 }, () => {
  const r = new Router();
  for (const id of ['a', 'b']) r.add(sub(session(id, null), '$share/g/t', 1));
  assert.deepEqual([1, 2, 3, 4].map(() => r.match('t', 'p')[0]!.session.clientId), ['a', 'b', 'a', 'b']);
});

test('the trie takes topics as deep as the engine allows', { timeout: 5_000 }, () => {
  const r = new Router(5);
  r.add(sub(session('a'), 'a/b/c/d/e', 0));
  r.add(sub(session('b'), 'a/#', 0));
  assert.equal(r.match('a/b/c/d/e', 'p').length, 2);
});

test('a shared group emptied and joined again delivers again; removing a subscription twice is harmless', { timeout: 5_000 }, () => {
  const r = new Router();
  const a = session('a');
  const first = sub(a, '$share/g/t', 1);
  r.add(first);
  r.remove(first);
  r.remove(first);
  assert.equal(r.match('t', 'p').length, 0);
  r.add(sub(session('b'), '$share/g/t', 1));
  assert.deepEqual(r.match('t', 'p').map((d) => d.session.clientId), ['b']);
});

test('identifiers merged from overlapping subscriptions are only the ones given, in any order of matching', { timeout: 5_000 }, () => {
  const r = new Router();
  const a = session('a');
  r.add(sub(a, 'x/#', 0, { subscriptionId: 1 }));
  r.add(sub(a, 'x/+', 0));
  r.add(sub(a, 'x/y', 0));
  assert.deepEqual(r.match('x/y', 'p').map((d) => d.subIds), [[1]]);
});

test('retire: an ended session\'s subscriptions stop matching at once and leave the trie a slice per turn, never blocking one turn for all', { timeout: 30_000 }, async () => {
  const r = new Router();
  const gone = session('gone');
  const stays = session('stays');
  const many = Array.from({ length: 20_000 }, (_, i) => sub(gone, `f/${i}`, 1));
  for (const s of many) r.add(s);
  const shared = sub(gone, '$share/g/f/1', 1);
  const peer = sub(stays, '$share/g/f/1', 0);
  r.add(shared);
  r.add(peer);
  const wide = sub(stays, 'f/#', 0);
  r.add(wide);
  assert.equal(r.subscriptionCount, 20_003);
  assert.equal(r.match('f/7', 'p').length, 2);

  r.retire([...many, shared]);
  assert.equal(r.subscriptionCount, 2, 'counted out at once');
  assert.ok(r.retiring > 0);
  // Matched no more, though still in the trie: the plain filter, and the shared member (its peer takes every message).
  for (let i = 0; i < 6; i++) {
    const d = r.match('f/1', 'p');
    assert.deepEqual(d.map((x) => x.session.clientId).sort(), ['stays', 'stays']);
  }
  // A new session subscribing to the same filter meanwhile is matched; the retired entry is not.
  const next = session('gone');
  r.add(sub(next, 'f/7', 2));
  assert.deepEqual(r.match('f/7', 'p').map((d) => [d.session === next, d.qos]).sort(), [[false, 0], [true, 2]]);

  let turns = 0;
  while (r.retiring > 0 && turns < 10_000) {
    await new Promise((resolve) => setImmediate(resolve));
    turns++;
  }
  assert.equal(r.retiring, 0, 'all taken out of the trie in the end');
  assert.ok(turns > 1, `spread over ${turns} turns, not one`);
  assert.equal(r.subscriptionCount, 3);
  assert.deepEqual(r.match('f/7', 'p').map((d) => d.session === next).sort(), [false, true]);
  assert.equal(r.match('f/19999', 'p').length, 1, 'only the stays session\'s f/#');

  // drainRetired takes every one out now, and leaves no sweep behind (one would empty the cache again).
  r.retire([wide]);
  r.drainRetired();
  assert.equal(r.retiring, 0);
  assert.deepEqual(r.match('f/19999', 'p'), []);
  assert.equal(r.cachedTopics, 1);
  await new Promise((resolve) => setImmediate(resolve));
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(r.cachedTopics, 1, 'the answer cached after the drain is still cached a turn later');
});

/** Which client each of `n` messages on `topic` goes to (one delivery each). */
function turns(r: Router, topic: string, n: number): string[] {
  return Array.from({ length: n }, () => r.match(topic, 'p').map((d) => d.session.clientId).join('+'));
}

test('removing a subscription the router does not hold changes nothing: not the count, not a group (issue 18)', { timeout: 5_000 }, () => {
  // The count went down on every remove, held or not; a stranger removed from a group must not take a member with it.
  const r = new Router();
  const a = session('a');
  const plain = sub(a, 't', 0);
  r.add(plain);
  r.remove(sub(a, 't', 0)); // equal, but never added
  assert.equal(r.subscriptionCount, 1);
  assert.deepEqual(turns(r, 't', 1), ['a']);
  r.remove(plain);
  r.remove(plain);
  assert.equal(r.subscriptionCount, 0);
  const members = ['a', 'b', 'c'].map((id) => sub(session(id), '$share/g/s', 1));
  for (const m of members) r.add(m);
  r.remove(sub(session('d'), '$share/g/s', 1)); // same group and filter, never added
  r.remove(sub(a, '$share/h/s', 1)); // a group that does not exist
  assert.equal(r.subscriptionCount, 3);
  assert.deepEqual(turns(r, 's', 6), ['a', 'b', 'c', 'a', 'b', 'c']);
  // The member in the middle leaves: the two others take turns.
  r.remove(members[1]!);
  assert.equal(r.subscriptionCount, 2);
  assert.deepEqual(turns(r, 's', 4), ['a', 'c', 'a', 'c']);
});

test('adding a subscription twice holds it once: counted once, one turn in its group, gone with one remove (issue 18)', { timeout: 5_000 }, () => {
  const r = new Router();
  const x = sub(session('a'), '$share/g/t', 1);
  r.add(x);
  r.add(x);
  r.add(sub(session('b'), '$share/g/t', 1));
  assert.equal(r.subscriptionCount, 2);
  assert.deepEqual(turns(r, 't', 4), ['a', 'b', 'a', 'b']);
  r.remove(x);
  assert.deepEqual(turns(r, 't', 2), ['b', 'b']);
  const plain = sub(session('c'), 'u', 0);
  r.add(plain);
  r.add(plain);
  r.remove(plain);
  assert.deepEqual(turns(r, 'u', 1), ['']);
  assert.equal(r.subscriptionCount, 1);
});

test('the match cache keeps at most its size of topics, emptied when full or when a subscription changes', { timeout: 5_000 }, () => {
  // A publisher sending to ever new topics must not grow the router's memory without end.
  const r = new Router(128, 3);
  r.add(sub(session('a'), 't/#', 0));
  const seen = ['t/1', 't/2', 't/3', 't/1'].map((topic) => [turns(r, topic, 1)[0], r.cachedTopics]);
  assert.deepEqual(seen, [['a', 1], ['a', 2], ['a', 3], ['a', 3]], 'each new topic is kept, a known one is not kept twice');
  assert.deepEqual(turns(r, 't/4', 1), ['a']);
  assert.equal(r.cachedTopics, 1, 'full: emptied, then the new topic kept');
  r.add(sub(session('b'), 't/4', 0));
  assert.equal(r.cachedTopics, 0);
  assert.deepEqual(r.match('t/4', 'p').map((d) => d.session.clientId).sort(), ['a', 'b']);
  assert.equal(r.cachedTopics, 1);
});

test('a shared group with nobody connected queues on its members that are not retired, in turn', { timeout: 5_000 }, () => {
  // Retired members stay in the trie until the sweep takes them out; meanwhile they get no turn.
  const r = new Router();
  const members = ['a', 'b', 'c', 'd'].map((id) => sub(session(id, null), '$share/g/t', 1));
  for (const m of members) r.add(m);
  r.retire([members[0]!, members[2]!]);
  assert.deepEqual(turns(r, 't', 4), ['b', 'd', 'b', 'd']);
  r.retire([members[1]!]);
  assert.deepEqual(turns(r, 't', 2), ['d', 'd']);
  r.retire([members[3]!]);
  assert.deepEqual(turns(r, 't', 1), [''], 'every member retired: nobody');
});

test('the retired count goes down turn by turn as the sweep takes them out of the trie', { timeout: 30_000 }, async () => {
  const r = new Router();
  const s = session('gone');
  const many = Array.from({ length: 20_000 }, (_, i) => sub(s, `f/${i}`, 1));
  for (const m of many) r.add(m);
  r.retire(many);
  assert.equal(r.retiring, 20_000);
  let last = r.retiring;
  while (r.retiring > 0) {
    await new Promise((resolve) => setImmediate(resolve));
    assert.ok(r.retiring <= last, `${r.retiring} after ${last}`);
    last = r.retiring;
  }
  assert.equal(r.subscriptionCount, 0);
});

/** Lets the event loop turn until the sweep has taken every retired subscription out of the trie (at most `max` turns). */
async function swept(r: Router, max = 10_000): Promise<void> {
  let turns = 0;
  while (r.retiring > 0 && turns < max) {
    await new Promise((resolve) => setImmediate(resolve));
    turns++;
  }
  assert.equal(r.retiring, 0, `still ${r.retiring} retiring after ${turns} turns`);
}

test('retiring what the router does not hold changes nothing; a retire after a finished sweep is swept too (issue 18)', { timeout: 10_000 }, async () => {
  const r = new Router();
  const members = ['a', 'b', 'c'].map((id) => sub(session(id), '$share/g/s', 1));
  for (const m of members) r.add(m);
  r.add(sub(session('p'), 't', 0));
  assert.deepEqual(turns(r, 't', 1), ['p']);
  assert.deepEqual(turns(r, 's', 3), ['a', 'b', 'c']);
  assert.equal(r.cachedTopics, 2);
  // Never added: a stranger in the group, one of a group that does not exist, a plain one. Taking a
  // stranger "out" of a group would take out whoever is last in it.
  r.retire([sub(session('d'), '$share/g/s', 1), sub(session('e'), '$share/h/s', 1), sub(session('f'), 't', 0)]);
  assert.equal(r.retiring, 0);
  assert.equal(r.subscriptionCount, 4);
  await new Promise((resolve) => setImmediate(resolve));
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(r.cachedTopics, 2, 'nothing to sweep: the cached answers are kept');
  assert.deepEqual(turns(r, 's', 3), ['a', 'b', 'c']);
  // Retired, swept, then retired again and removed: it leaves its group once, its peers stay.
  r.retire([members[1]!]);
  await swept(r);
  r.retire([members[1]!]);
  r.remove(members[1]!);
  assert.equal(r.retiring, 0);
  assert.equal(r.subscriptionCount, 3);
  assert.deepEqual(turns(r, 's', 4), ['a', 'c', 'a', 'c']);
  // The sweep ended; the next retire starts a new one by itself.
  r.retire([members[0]!]);
  await swept(r, 100);
  assert.deepEqual(turns(r, 's', 2), ['c', 'c']);
  assert.deepEqual(turns(r, 't', 1), ['p']);
});

test('once swept, an ended session is not kept alive by the router: not by the trie, its group or an answer cached meanwhile (issue 18)', { timeout: 10_000 }, async () => {
  const r = new Router();
  const stays = session('stays');
  r.add(sub(stays, 'f/#', 0));
  r.add(sub(stays, '$share/g/f/1', 0));
  const gone = ((): WeakRef<Session> => {
    const s = session('gone');
    const subs = [...Array.from({ length: 100 }, (_, i) => sub(s, `f/${i}`, 1)), sub(s, '$share/g/f/1', 1)];
    for (const x of subs) r.add(x);
    r.retire(subs);
    // Matched before the sweep: the cached answer names its retired subscription and its group.
    assert.deepEqual(r.match('f/1', 'p').map((d) => d.session.clientId), ['stays', 'stays']);
    return new WeakRef(s);
  })();
  await swept(r);
  // A WeakRef holds its target until the job that made it ends: collect a turn later.
  await new Promise((resolve) => setImmediate(resolve));
  collectGarbage();
  assert.equal(gone.deref(), undefined, 'the ended session was collected');
  assert.deepEqual(r.match('f/1', 'p').map((d) => d.session.clientId), ['stays', 'stays']);
});

test('a shared group left by its last member leaves no trace: 100,000 groups joined and left keep no memory (issue 18)', { timeout: 30_000 }, () => {
  // A device may subscribe and unsubscribe under ever new group names: a group kept once empty (in the
  // router's table of groups or in its trie, where it matches and yields nobody) would grow the heap
  // without end, seen by nothing but memory.
  const r = new Router();
  const s = session('a');
  const joinAndLeave = (from: number): void => {
    for (let i = from; i < from + 100_000; i++) {
      const x = sub(s, `$share/g${i}/t`, 0);
      r.add(x);
      r.remove(x);
    }
  };
  joinAndLeave(0); // the trie's node for t and the code's own first allocations
  collectGarbage();
  const before = process.memoryUsage().heapUsed;
  joinAndLeave(100_000);
  collectGarbage();
  const kept = process.memoryUsage().heapUsed - before;
  // 100,000 groups kept would be ten megabytes or more; none kept is noise.
  assert.ok(kept < 4 * 1024 * 1024, `${(kept / 1024 / 1024).toFixed(1)} MB kept`);
  assert.equal(r.subscriptionCount, 0);
  r.add(sub(s, '$share/g7/t', 0));
  assert.deepEqual(turns(r, 't', 1), ['a']);
});

test('[MQTT-4.8.2-2] a cluster node picks each shared group\'s member among its own members and, once each, the other nodes holding members (issue 16 item 5)', { timeout: 5_000 }, () => {
  const r = new Router();
  const a = session('a');
  r.add(sub(a, '$share/g/t/#', 1));
  r.setRemotes('g', 't/#', ['node-b', 'node-c']);
  const order: string[] = [];
  const picks = (topic: string): Delivery[] => r.match(topic, 'p', (node, group, filter) => order.push(`${node} ${group} ${filter}`));
  for (let i = 0; i < 6; i++) {
    const d = picks('t/1');
    for (const x of d) order.push(x.session.clientId);
  }
  // One candidate per message, in turn: the member here and each other node (which picks among its own).
  assert.deepEqual(order, ['a', 'node-b g t/#', 'node-c g t/#', 'a', 'node-b g t/#', 'node-c g t/#']);
  // A message another node published: that node picked the group's member, so the group is left out here.
  r.add(sub(a, 't/#', 0));
  assert.deepEqual(r.match('t/1', 'p', null).map((x) => [x.session.clientId, x.qos]), [['a', 0]]);
  // A single process (no remote pick given) never picks another node.
  r.setRemotes('g', 't/#', []);
  assert.equal(r.match('x', 'p').length, 0);
});

test('a shared group with members on other nodes only is matched here (its pick goes there), and leaves the trie with the last of them (issue 16 item 5)', { timeout: 5_000 }, () => {
  const r = new Router();
  const local: boolean[] = [];
  r.onLocalGroup = (group, filter, present) => local.push(present);
  const sent: string[] = [];
  const remote: RemotePick = (node) => sent.push(node);
  r.setRemotes('g', 't', ['node-b']);
  assert.deepEqual(r.match('t', 'p', remote), []);
  assert.deepEqual(sent, ['node-b']);
  assert.equal(r.subscriptionCount, 0, 'another node\'s members are not subscriptions here');
  // A member here joins and leaves: the node is told at the first and at the last, not in between.
  const a = session('a');
  const s1 = sub(a, '$share/g/t', 1);
  const s2 = sub(session('b'), '$share/g/t', 1);
  r.add(s1);
  assert.deepEqual(local, [true], 'told at the first member');
  r.add(s2);
  r.remove(s1);
  assert.deepEqual(local, [true], 'nothing told in between');
  r.remove(s2);
  assert.deepEqual(local, [true, false]);
  sent.length = 0;
  r.match('t', 'p', remote);
  assert.deepEqual(sent, ['node-b'], 'the group stays while another node holds members');
  r.setRemotes('g', 't', []);
  sent.length = 0;
  assert.deepEqual(r.match('t', 'p', remote), []);
  assert.deepEqual(sent, [], 'gone with the last node');
  // Told of no node for a group never seen: nothing is created.
  r.setRemotes('h', 't', []);
  assert.deepEqual(r.match('t', 'p', remote), []);
});

test('a message picked again avoids the node it went to; pickLocal picks only members here (issue 16 item 5)', { timeout: 5_000 }, () => {
  const r = new Router();
  r.setRemotes('g', 't', ['node-b']);
  assert.equal(r.pick('g', 't', 'node-b'), undefined, 'nobody else to pick');
  assert.equal(r.pickLocal('g', 't'), undefined);
  const a = session('a');
  r.add(sub(a, '$share/g/t', 2));
  for (let i = 0; i < 4; i++) assert.equal((r.pick('g', 't', 'node-b') as Delivery).session.clientId, 'a');
  r.setRemotes('g', 't', ['node-b', 'node-c']);
  const again = new Set<string>();
  for (let i = 0; i < 6; i++) {
    const p = r.pick('g', 't', 'node-b');
    again.add(typeof p === 'string' ? p : p!.session.clientId);
  }
  assert.deepEqual([...again].sort(), ['a', 'node-c']);
  for (let i = 0; i < 4; i++) assert.equal(r.pickLocal('g', 't')?.session.clientId, 'a');
  assert.equal(r.pickLocal('g', 't')?.qos, 2);
  assert.equal(r.pick('nope', 't', 'node-b'), undefined);
});

test('[MQTT-4.8.2-2] sharedPicks: the publishing node picks each matching group\'s member once, here (null) or another node, in turn; plain subscriptions are not picks (issue 16 item 2)', { timeout: 5_000 }, () => {
  const r = new Router();
  const a = session('a');
  r.add(sub(a, 't/#', 1)); // a plain subscription: delivered by every node from the stream, never picked
  r.add(sub(a, '$share/g1/t/#', 1));
  r.setRemotes('g1', 't/#', ['node-b']);
  r.setRemotes('g2', 't/+', ['node-c']); // members on another node only
  const picksOf = (topic: string) => r.sharedPicks(topic).map((p) => `${p.group} ${p.filter} ${p.node ?? 'here'}`).sort();
  assert.deepEqual(picksOf('t/1'), ['g1 t/# here', 'g2 t/+ node-c']);
  assert.deepEqual(picksOf('t/1'), ['g1 t/# node-b', 'g2 t/+ node-c'], 'the group\'s turn moves on: the other node');
  assert.deepEqual(picksOf('t/1'), ['g1 t/# here', 'g2 t/+ node-c']);
  assert.deepEqual(picksOf('t/1/deeper'), ['g1 t/# node-b'], 'only the groups whose filter matches');
  assert.deepEqual(r.sharedPicks('other'), [], 'no group matches: no picks');
  // A pick for a message another node sent here does not take a turn of the cluster-wide rotation.
  assert.equal(r.pickLocal('g1', 't/#')?.session.clientId, 'a');
  assert.deepEqual(picksOf('t/1'), ['g1 t/# here', 'g2 t/+ node-c']);
});

test('[MQTT-4.7.2-1] sharedPicks: a group whose filter starts with a wildcard is not picked for a $ topic; one naming $ is; a retired member is never picked', { timeout: 5_000 }, () => {
  const r = new Router();
  const a = session('a');
  r.add(sub(a, '$share/all/#', 1));
  r.add(sub(a, '$share/plus/+/x', 1));
  r.add(sub(a, '$share/sys/$SYS/#', 1));
  assert.deepEqual(r.sharedPicks('$SYS/x').map((p) => p.group), ['sys']);
  assert.deepEqual(r.sharedPicks('y/x').map((p) => [p.group, p.node]).sort(), [['all', null], ['plus', null]]);
  // Its session ended: the member is retired at once, even before the sweep takes it out of the trie.
  const b = session('b', null);
  const lone = sub(b, '$share/lone/z', 1);
  r.add(lone);
  assert.deepEqual(r.sharedPicks('z').map((p) => p.group).sort(), ['all', 'lone']);
  r.retire([lone]);
  assert.deepEqual(r.sharedPicks('z').map((p) => p.group), ['all']);
});
