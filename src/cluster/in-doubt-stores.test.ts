import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InDoubtStores } from './in-doubt-stores.ts';
import type { SessionState } from './session-records.ts';

const state = (extra: Partial<SessionState>): SessionState => ({ subscriptions: [], floor: 0, inflight: [], ...extra });

test('a store under the id the record determines (epoch, packet id, its uses) and not named received has landed; other ids do not count [MQTT-4.3.3-10]', { timeout: 5_000 }, () => {
  const doubts = new InDoubtStores<string>();
  const s1 = state({ qos2Epoch: 'p1.7', qos2Uses: [[12, 1]], received: [20] });
  const s2 = state({ qos2Epoch: 'p1.8' });
  assert.equal(doubts.add('s1', s1), true);
  assert.equal(doubts.add('s2', s2), true);
  assert.equal(doubts.add('none', state({})), false, 'no epoch, nothing receiving: nothing of it can be in doubt');
  for (const id of [
    'p1.41', // a QoS 1 store of the process: `<process>.<n>`
    'p1.7.12.0', // 12 released once since: an earlier message under that id
    'p1.7.20.0', // named received already
    'p1.7.0.0', 'p1.7.65536.0', 'p1.7.x.0', // not a packet id
    'p1.9.13.0', // no session of this epoch
    '.13.0', 'p1.7.13', '13',
  ]) doubts.heard(id);
  assert.equal(doubts.settled('s1', s1), undefined, 'none of those landed');
  doubts.heard('p1.7.13.0');
  doubts.heard('p1.7.12.1'); // 12 reused after its release
  doubts.heard('p1.8.5.0');
  doubts.heard('p1.8.5.0'); // the same store read twice
  const settled1 = doubts.settled('s1', s1);
  assert.deepEqual(settled1?.landed, 2);
  assert.deepEqual(settled1?.state.received?.sort((x, y) => x - y), [12, 13, 20]);
  assert.deepEqual(settled1?.state.qos2Uses, [[12, 1]], 'the rest of the state as it was');
  assert.deepEqual(doubts.settled('s2', s2)?.state.received, [5]);
});

test('ids the record lists as receiving (written before their store) land by that id, whatever its epoch, and leave `receiving`', { timeout: 5_000 }, () => {
  const doubts = new InDoubtStores<string>();
  const s = state({ qos2Epoch: 'p2.3', receiving: [[7, 'p2.1.7.4'], [8, 'p2.3.8.0']] });
  doubts.add('s', s);
  doubts.heard('p2.1.7.4'); // an older epoch's id, named in the record
  const settled = doubts.settled('s', s);
  assert.equal(settled?.landed, 1);
  assert.deepEqual(settled?.state.received, [7]);
  assert.deepEqual(settled?.state.receiving, [[8, 'p2.3.8.0']], 'the one not heard stays in doubt');
});

test('a record of another shape (another version wrote it) is read as data: odd entries are left out, nothing throws', { timeout: 5_000 }, () => {
  const doubts = new InDoubtStores<string>();
  const odd = { subscriptions: [], floor: 0, inflight: [], receiving: 'x', received: [3, 'y', 70_000], qos2Epoch: 'p3.1', qos2Uses: [[5, 'z'], 7, [6, 2]] } as unknown as SessionState;
  assert.equal(doubts.add('odd', odd), true);
  assert.equal(doubts.add('odder', { receiving: [[1], [0, 'a'], [2, 3], null], qos2Epoch: 42 } as unknown as SessionState), false);
  doubts.heard('p3.1.3.0'); // received already
  doubts.heard('p3.1.6.2');
  doubts.heard('p3.1.5.0'); // its uses entry was unreadable: counted as 0
  assert.deepEqual(doubts.settled('odd', odd)?.state.received?.sort((x, y) => x - y), [3, 5, 6]);
  assert.deepEqual(doubts.settled('odd', odd)?.state.receiving, []);
});
