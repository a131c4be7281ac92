import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { PlatformEvent } from './events.ts';
import { boundedReplay } from './platform.ts';

test('a replay answer to another node is bounded in bytes, not characters: text payloads of 3-byte characters stay under 512 KiB', { timeout: 5_000 }, () => {
  const text = '数'.repeat(2_000); // 6,000 bytes in UTF-8, 2,000 UTF-16 units
  const events = Array.from({ length: 300 }, (_, i) => ({ id: `e${String(i).padStart(4, '0')}`, type: 'message', payloadText: text }) as unknown as PlatformEvent);
  const kept = boundedReplay(events);
  assert.ok(kept.length > 0);
  const bytes = kept.reduce((sum, e) => sum + Buffer.byteLength(JSON.stringify(e)), 0);
  assert.ok(bytes <= 512 * 1024, `${bytes} bytes in ${kept.length} events`);
  assert.deepEqual(kept, events.slice(0, kept.length), 'the oldest that fit, in order');
});
