import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { MovedSession, StoredSubscription } from '../broker/index.ts';
import { silentLogger } from '../core/logger.ts';
import type { SessionState } from './session-records.ts';
import type { SessionOwnership } from './session-ownership.ts';
import { SessionStates } from './session-states.ts';

/** The writes a session's record gets (the ownership's compare-and-swap always succeeds here). */
function recorder(): { ownership: SessionOwnership; written: SessionState[] } {
  const written: SessionState[] = [];
  const ownership = {
    saveState: (_clientId: string, make: () => SessionState | undefined) => {
      const state = make();
      if (state !== undefined) written.push(state);
      return Promise.resolve(true);
    },
  } as unknown as SessionOwnership;
  return { ownership, written };
}

const sub = (raw: string): StoredSubscription => ({ raw, qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0, subscriptionId: undefined });

test('a session resumed from a record writes the record\'s floor and queue, never the feed\'s position, even for the write its subscriptions asked for first', { timeout: 5_000 }, async () => {
  const { ownership, written } = recorder();
  // The feed stands at 900: what the stream holds up to there was handed to the node's other sessions.
  const states = new SessionStates(ownership, () => 900, () => undefined, silentLogger, () => 'epoch');
  try {
    const moved: MovedSession = {
      subscriptions: [sub('devices/d/#')], floor: 100, inflight: [], queued: [{ seq: 150, qos: 1 }],
      received: [], receiving: [], qos2Epoch: undefined, qos2Uses: [],
    };
    // What the engine does as it resumes the session (broker.ts #resumeMoved): its subscriptions are attached (each
    // tells the states), then its replay from the record's floor begins, in the same turn.
    states.changed('moved-client', moved.subscriptions);
    states.replaying('moved-client', moved);
    await states.saveAll();
    assert.ok(written.length > 0);
    for (const state of written) {
      // A write with the feed's 900 would tell a node resuming it after this one's death that 101..900 were done.
      assert.equal(state.floor, 100, JSON.stringify(state));
      assert.deepEqual(state.queued, [[150, 1]], JSON.stringify(state));
    }
  } finally {
    states.close();
  }
});

test('a store the claimed session\'s holder made is named received only where the session still determines that id: same epoch and uses, neither held nor released since [MQTT-4.3.3-10]', { timeout: 5_000 }, async () => {
  const { ownership, written } = recorder();
  const states = new SessionStates(ownership, () => 900, () => undefined, silentLogger, () => 'fresh');
  try {
    const moved: MovedSession = {
      subscriptions: [sub('devices/d/#')], floor: 100, inflight: [], queued: [],
      received: [3], receiving: [], qos2Epoch: 'e1', qos2Uses: [[5, 2]],
    };
    states.changed('c', moved.subscriptions);
    states.replaying('c', moved);
    assert.equal(states.landed('c', 'e0', 7, 0), false, 'another epoch');
    assert.equal(states.landed('c', 'e1', 5, 1), false, 'an earlier use of 5, released since');
    assert.equal(states.landed('c', 'e1', 3, 0), false, 'held already');
    assert.equal(states.landed('other', 'e1', 7, 0), false, 'not tracked here');
    // 8: resent and being stored here already (its store id taken), then landed: left to that store.
    assert.equal(states.receiving('c', 8)?.storeId, 'e1.8.0');
    assert.equal(states.landed('c', 'e1', 8, 0), false, 'being stored here');
    assert.equal(states.landed('c', 'e1', 7, 0), true);
    assert.equal(states.landed('c', 'e1', 5, 2), true, 'the current use of 5');
    // Released here after the check: its next use is another id (the record learns both).
    assert.equal(await states.released('c', 7), true);
    assert.equal(states.landed('c', 'e1', 7, 0), false, 'released since');
    await states.saveAll();
    const last = written.at(-1)!;
    assert.deepEqual([...(last.received ?? [])].sort((x, y) => x - y), [3, 5]);
    assert.deepEqual(last.qos2Uses, [[5, 2], [7, 1]]);
  } finally {
    states.close();
  }
});
