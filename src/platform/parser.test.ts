import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { silentLogger } from '../core/logger.ts';
import { QuickJsRunner } from '../sandbox/index.ts';
import { GatewayParser, type ParseOutcome } from './parser.ts';

// What waits for a gateway's parsing script is bounded in messages and in bytes; beyond either bound a
// message is not parsed, and that is counted, never silent.

const runner = new QuickJsRunner({ workers: 1, niceness: 10 });
after(() => runner.dispose(), { timeout: 30_000 });
const logger = silentLogger;

/** Each call holds the worker for 30 ms, so the messages sent in one turn wait behind each other. */
const SLOW = `function transformPayload(topic, bytes) {
  const end = Date.now() + 30; while (Date.now() < end);
  return { topic, length: bytes.length };
}`;

/** parse() for a gateway whose parsing is on: never null. */
function parseOn(parser: GatewayParser, topic: string, payload: Buffer): Promise<ParseOutcome> {
  const outcome = parser.parse(topic, payload);
  assert.ok(outcome !== null, 'parsing is on');
  return Promise.resolve(outcome);
}

function kinds(outcomes: (ParseOutcome | null)[]): string[] {
  return outcomes.map((o) => o === null ? 'off' : o.ok ? 'parsed' : o.kind);
}

test('beyond maxPendingBytes a message is not parsed but dropped and counted; the bytes come back as calls end', { timeout: 30_000 }, async () => {
  const parser = new GatewayParser(runner, { timeoutMs: 1000, memoryMb: 8, maxPending: 1000, maxPendingBytes: 1000 }, logger);
  try {
    parser.configure({ enabled: true, script: SLOW });
    // 'topic' (5) + 300 bytes = 305 each: three fit in 1,000, the fourth and fifth do not.
    const first = await Promise.all(Array.from({ length: 5 }, () => parseOn(parser, 'topic', Buffer.alloc(300))));
    assert.deepEqual(kinds(first), ['parsed', 'parsed', 'parsed', 'dropped', 'dropped']);
    assert.deepEqual(first[0], { ok: true, value: { topic: 'topic', length: 300 } });
    assert.deepEqual(first[3], { ok: false, kind: 'dropped', error: 'not parsed: the parsing queue of this gateway is full' });
    // Everything has ended: the whole bound is free again.
    const second = await Promise.all(Array.from({ length: 3 }, () => parseOn(parser, 'topic', Buffer.alloc(300))));
    assert.deepEqual(kinds(second), ['parsed', 'parsed', 'parsed']);
    // A message larger than the bound alone is never parsed.
    assert.deepEqual(kinds([await parseOn(parser, 'topic', Buffer.alloc(1000))]), ['dropped']);
    assert.deepEqual(parser.counters, { parsed: 6, failed: 0, dropped: 3 });
  } finally {
    parser.dispose();
  }
});

test('beyond maxPending messages a message is dropped and counted, whatever its size', { timeout: 30_000 }, async () => {
  const parser = new GatewayParser(runner, { timeoutMs: 1000, memoryMb: 8, maxPending: 2 }, logger);
  try {
    parser.configure({ enabled: true, script: SLOW });
    const outcomes = await Promise.all(Array.from({ length: 4 }, () => parseOn(parser, 't', Buffer.alloc(1))));
    assert.deepEqual(kinds(outcomes), ['parsed', 'parsed', 'dropped', 'dropped']);
    assert.deepEqual(parser.counters, { parsed: 2, failed: 0, dropped: 2 });
  } finally {
    parser.dispose();
  }
});

test('parsing off: nothing is queued, parse answers null', { timeout: 5_000 }, () => {
  const parser = new GatewayParser(runner, { timeoutMs: 1000, memoryMb: 8, maxPending: 2 }, logger);
  parser.configure({ enabled: false, script: SLOW });
  assert.equal(parser.parse('t', Buffer.alloc(1)), null);
  assert.equal(parser.enabled, false);
});
