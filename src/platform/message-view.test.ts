import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { MessageRecord } from '../registry/ports.ts';
import { approximateEventBytes, messageView, type PlatformEvent } from './events.ts';

function record(payload: Buffer): MessageRecord {
  return {
    id: 'm1', gatewayId: 'g1', productKey: 'pk', deviceName: 'dev', topic: 't/1', qos: 1, payload,
    parsed: { t: 21.5 }, parseError: null, receivedAt: '2026-12-05T00:00:00.000Z',
  };
}

test('message view: serialises exactly as the API shape (same keys, same order, base64 payload), encoded once and only when read', { timeout: 10_000 }, () => {
  let encodes = 0;
  const payload = Buffer.from('héllo\u0000\u00ff');
  const counting = Buffer.from(payload);
  const toString = counting.toString.bind(counting);
  counting.toString = (encoding?: BufferEncoding, start?: number, end?: number): string => { encodes++; return toString(encoding, start, end); };
  const view = messageView(record(counting));
  const event: PlatformEvent = { id: 'm1', type: 'message', gatewayId: 'g1', deviceName: 'dev', data: view };
  const size = approximateEventBytes(event);
  assert.equal(encodes, 0, 'sizing an event for the replay ring does not encode its payload');
  assert.equal(JSON.stringify(view), JSON.stringify({
    id: 'm1', gatewayId: 'g1', productKey: 'pk', deviceName: 'dev', topic: 't/1', qos: 1, payload: payload.toString('base64'),
    parsed: { t: 21.5 }, parseError: null, receivedAt: '2026-12-05T00:00:00.000Z',
  }));
  assert.equal(view.payload, payload.toString('base64'));
  assert.equal(encodes, 1, 'encoded once, then kept');
  // The size is what the encoded payload would have counted.
  const eager = JSON.parse(JSON.stringify(view)) as typeof view; // a plain object: its payload already a string
  assert.equal(approximateEventBytes({ ...event, data: eager }), size);
  for (const n of [0, 1, 2, 3, 4, 1_000_000]) {
    const v = messageView(record(Buffer.alloc(n)));
    assert.equal(approximateEventBytes({ ...event, data: v }), approximateEventBytes({ ...event, data: JSON.parse(JSON.stringify(v)) as typeof v }), `${n} bytes`);
  }
});
