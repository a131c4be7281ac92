import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DeviceChanges } from './device-changes.ts';

test('a change is seen by moments taken before it, for that device only', { timeout: 5_000 }, () => {
  const changes = new DeviceChanges();
  const before = changes.now;
  changes.record('d1');
  assert.equal(changes.changedSince('d1', before), true);
  assert.equal(changes.changedSince('d2', before), false);
  assert.equal(changes.changedSince('d1', changes.now), false);
});

test('past its bound the record starts again; a moment from before counts as changed, later ones are exact', { timeout: 5_000 }, () => {
  const changes = new DeviceChanges(2);
  const early = changes.now;
  changes.record('a');
  const mid = changes.now;
  changes.record('b');
  changes.record('c'); // forgets a and b
  assert.equal(changes.changedSince('a', early), true);
  assert.equal(changes.changedSince('b', mid), true); // b's change was forgotten: assumed
  const late = changes.now;
  assert.equal(changes.changedSince('a', late), false);
  changes.record('a');
  assert.equal(changes.changedSince('a', late), true);
  assert.equal(changes.changedSince('c', late), false);
});
