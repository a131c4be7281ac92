import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EventHub } from './event-hub.ts';
import type { PlatformEvent } from './events.ts';

function presence(id: string, deviceName: string, type: 'online' | 'offline' = 'online'): PlatformEvent {
  return { id, type, gatewayId: 'gw', deviceName, data: { gatewayId: 'gw', productKey: 'pk', deviceName, at: 'now' } };
}

test('listeners hear each event; the replay ring keeps the newest and resumes after an id, filtered', { timeout: 5_000 }, () => {
  const hub = new EventHub(3);
  const heard: string[] = [];
  const off = hub.subscribe((e) => heard.push(e.id));
  for (const [id, dn] of [['01', 'a'], ['02', 'b'], ['03', 'a'], ['04', 'a']] as const) hub.publish(presence(id, dn));
  off();
  hub.publish(presence('05', 'b', 'offline'));
  assert.deepEqual(heard, ['01', '02', '03', '04']);
  assert.deepEqual(hub.replayAfter('03', {}).map((e) => e.id), ['04', '05']);
  assert.deepEqual(hub.replayAfter('00', { deviceName: 'a' }).map((e) => e.id), ['03', '04'], '01 fell out of the ring');
  assert.deepEqual(hub.replayAfter('00', { types: ['offline'] }).map((e) => e.id), ['05']);
  assert.deepEqual(hub.replayAfter('05', {}), []);
});

function message(id: string, payloadBytes: number): PlatformEvent {
  return {
    id, type: 'message', gatewayId: 'gw', deviceName: 'd',
    data: { id, gatewayId: 'gw', productKey: 'pk', deviceName: 'd', topic: 't', qos: 1, payload: 'x'.repeat(payloadBytes), parsed: null, parseError: null, receivedAt: 'now' },
  };
}

test('the replay ring is bounded in bytes as well as events: large messages push the oldest out, the newest always stays', { timeout: 5_000 }, () => {
  const hub = new EventHub(1000, 10_000);
  for (let i = 0; i < 20; i++) hub.publish(message(String(i).padStart(2, '0'), 1_900)); // 2,413 bytes each as counted
  const kept = hub.replayAfter('', {}).map((e) => e.id);
  assert.ok(hub.replayBytes <= 10_000, `${hub.replayBytes} bytes kept`);
  assert.equal(kept.at(-1), '19', 'the newest is kept');
  assert.equal(kept.length, 4, 'four events of 2,413 bytes fit in 10,000, five do not');
  assert.deepEqual(kept, ['16', '17', '18', '19']);
  hub.publish(message('20', 50_000));
  assert.deepEqual(hub.replayAfter('', {}).map((e) => e.id), ['20'], 'one event over the bound alone is still kept');
  for (let i = 21; i < 1100; i++) hub.publish(presence(String(i), 'd'));
  assert.equal(hub.replayAfter('', {}).length, 19, 'small events: the count bound and the byte bound (19 × 512 bytes) hold together');
});

test('a large parsed result counts toward the byte bound, not a fixed allowance', { timeout: 5_000 }, () => {
  const hub = new EventHub(1000, 100_000);
  for (let i = 0; i < 10; i++) {
    const event = message(`p${i}`, 10);
    if (event.type === 'message') event.data.parsed = { blob: 'y'.repeat(40_000) };
    hub.publish(event);
  }
  assert.ok(hub.replayBytes <= 100_000, `${hub.replayBytes} bytes kept`);
  assert.deepEqual(hub.replayAfter('', {}).map((e) => e.id), ['p8', 'p9'], 'two results of ~40 KB fit in 100 KB');
});

test('a resume continues after the event it names by place in the ring: a message published after a later-id event is not skipped', { timeout: 5_000 }, () => {
  const hub = new EventHub(10);
  // A parsed message's id is of when it arrived ('10'); it is published after another device's presence ('20').
  hub.publish(presence('20', 'b'));
  hub.publish(message('10', 1));
  hub.publish(presence('30', 'b', 'offline'));
  assert.deepEqual(hub.replayAfter('20', {}).map((e) => e.id), ['10', '30'], 'the id order alone would skip 10');
  assert.deepEqual(hub.replayAfter('10', {}).map((e) => e.id), ['30']);
  // An id no longer in the ring: by time, as before.
  assert.deepEqual(hub.replayAfter('15', {}).map((e) => e.id), ['20', '30']);
});
