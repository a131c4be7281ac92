import assert from 'node:assert/strict';
import { test } from 'node:test';
import { silentLogger } from '../core/logger.ts';
import { RegistryEvents } from './events.ts';

test('listeners get their events in order; unsubscribe stops them; a throwing listener is contained', { timeout: 5_000 }, () => {
  const events = new RegistryEvents(silentLogger);
  const seen: string[] = [];
  events.on('gateway.created', () => {
    throw new Error('bug');
  });
  const off = events.on('gateway.created', (e) => seen.push(`created ${e.gatewayId}`));
  events.on('gateway.deleted', (e) => seen.push(`deleted ${e.gatewayId}`));
  events.emit('gateway.created', { gatewayId: 'a', productKey: 'p' });
  events.emit('gateway.deleted', { gatewayId: 'a', productKey: 'p' });
  off();
  events.emit('gateway.created', { gatewayId: 'b', productKey: 'p' });
  events.emit('device.created', { gatewayId: 'a', productKey: 'p', deviceName: 'd', username: null });
  assert.deepEqual(seen, ['created a', 'deleted a']);
});
