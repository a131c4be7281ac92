import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EventHub } from './event-hub.ts';
import type { PlatformEvent } from './events.ts';

function presence(id: string, deviceName: string, type: 'online' | 'offline' = 'online'): PlatformEvent {
  return { id, type, gatewayId: 'gw', deviceName, data: { gatewayId: 'gw', productKey: 'pk', deviceName, at: 'now' } };
}

test('listeners hear each event; the replay ring keeps the newest and resumes after an id, filtered', () => {
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
