import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import pino from 'pino';
import { silentLogger } from '../core/logger.ts';
import { QuickJsRunner, type CompiledScript, type ScriptRunner } from '../sandbox/index.ts';
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
    assert.deepEqual(parser.counters, { parsed: 6, failed: 0, dropped: 3, shed: 0 });
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
    assert.deepEqual(parser.counters, { parsed: 2, failed: 0, dropped: 2, shed: 0 });
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

/** The runner, with a count of the calls handed to each script it compiles and not yet answered. */
function countingRunner(inner: ScriptRunner): ScriptRunner & { handedNow: number; handedMost: number } {
  const counting = {
    handedNow: 0,
    handedMost: 0,
    async compile(source: string, options: Parameters<ScriptRunner['compile']>[1]): Promise<CompiledScript> {
      const script = await inner.compile(source, options);
      return {
        invoke: (args, invokeOptions) => {
          counting.handedNow++;
          counting.handedMost = Math.max(counting.handedMost, counting.handedNow);
          return script.invoke(args, invokeOptions).finally(() => counting.handedNow--);
        },
        stats: () => script.stats(),
        dispose: () => script.dispose(),
      };
    },
    dispose: () => undefined,
  };
  return counting;
}

const ECHO = 'function transformPayload(topic, bytes) { return { n: bytes[0] * 256 + bytes[1] }; }';

test('a gateway whose queue overflows while the event loop is saturated sheds what waits and what comes until the loop has time; a quiet gateway and parse() are not shed', { timeout: 30_000 }, async () => {
  const loop = { saturated: false };
  // Two calls handed to the sandbox at once (two batches of one), the third and fourth wait.
  const limits = { timeoutMs: 1000, memoryMb: 8, maxPending: 4, batchSize: 1 };
  const logged: string[] = [];
  const recording = pino({ level: 'info' }, { write: (line: string) => void logged.push((JSON.parse(line) as { msg: string }).msg) });
  const flooded = new GatewayParser(runner, limits, recording, loop);
  const quiet = new GatewayParser(runner, limits, logger, loop);
  try {
    flooded.configure({ enabled: true, script: SLOW });
    quiet.configure({ enabled: true, script: SLOW });
    // Compiled: what is submitted from here is handed to the sandbox at once, as far as its two calls go.
    assert.deepEqual(kinds(await Promise.all([parseOn(flooded, 'z', Buffer.alloc(1)), parseOn(quiet, 'z', Buffer.alloc(1))])), ['parsed', 'parsed']);
    const told: string[] = [];
    const done = (item: { topic: string }, outcome: ParseOutcome): void => void told.push(`${item.topic}:${outcome.ok ? 'parsed' : outcome.kind}`);
    const submit = (parser: GatewayParser, topic: string): string => {
      const r = parser.submit({ topic, payload: Buffer.alloc(1) }, done);
      return r === 'queued' || r === null ? String(r) : r.ok ? 'parsed' : r.kind;
    };
    const until = async (n: number): Promise<void> => {
      const deadline = Date.now() + 20_000;
      while (told.length < n && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
    };
    assert.equal(submit(flooded, 'a'), 'queued');
    loop.saturated = true;
    assert.deepEqual([submit(flooded, 'b'), submit(flooded, 'c')], ['queued', 'queued'], 'saturated alone sheds nothing: its queue has room');
    // The journal's replay parses one at a time what a crash left unfinished: never shed, also when it waits.
    const replayed = parseOn(flooded, 'p', Buffer.alloc(1));
    assert.equal(submit(flooded, 'd'), 'dropped', 'the queue overflows');
    assert.deepEqual(logged, ['parsing_shedding_started'], 'once per episode, said');
    assert.deepEqual(told, ['c:shed'], 'what waited went at once, but parse()\'s; the calls handed to the sandbox finish');
    const shed = flooded.submit({ topic: 'e', payload: Buffer.alloc(1) }, done);
    assert.deepEqual(shed, { ok: false, kind: 'shed', error: 'not parsed: the event loop was saturated, and MQTT traffic goes first' });
    assert.equal(submit(quiet, 'q'), 'queued', 'a gateway whose parsing keeps up goes on parsing on the saturated loop');
    await until(4);
    assert.deepEqual(kinds([await replayed]), ['parsed']);
    assert.equal(submit(flooded, 'f'), 'shed', 'its queue is empty again, the loop still saturated: still shed');
    assert.deepEqual(kinds([await parseOn(flooded, 'g', Buffer.alloc(1))]), ['parsed'], 'nor when it comes while shedding');
    loop.saturated = false;
    assert.equal(submit(flooded, 'h'), 'queued', 'parsed again once the loop has time');
    assert.deepEqual(logged, ['parsing_shedding_started', 'parsing_shedding_ended']);
    await until(5);
    assert.deepEqual(told.sort(), ['a:parsed', 'b:parsed', 'c:shed', 'h:parsed', 'q:parsed'], 'the dropped and shed ones answered at once were never told');
    assert.deepEqual(flooded.counters, { parsed: 6, failed: 0, dropped: 1, shed: 3 });
    assert.deepEqual(quiet.counters, { parsed: 2, failed: 0, dropped: 0, shed: 0 });
  } finally {
    flooded.dispose();
    quiet.dispose();
  }
});

test('what waits for the sandbox waits as data: at most two batches are handed to it at once, the rest in order behind them', { timeout: 30_000 }, async () => {
  const counting = countingRunner(runner);
  const parser = new GatewayParser(counting, { timeoutMs: 1000, memoryMb: 8, maxPending: 1000, batchSize: 64 }, logger);
  try {
    parser.configure({ enabled: true, script: ECHO });
    const seen: number[] = [];
    const done = (item: { topic: string; payload: Buffer }, outcome: ParseOutcome): void => {
      assert.ok(outcome.ok, 'parsed');
      seen.push(outcome.value.n as number);
      assert.equal(outcome.value.n, item.payload.readUInt16BE(0), 'each outcome told with its own message');
    };
    // Sent in one turn, as a burst of uplinks is: 600 wait, 128 at a time go to the sandbox.
    for (let i = 0; i < 600; i++) {
      const payload = Buffer.alloc(2);
      payload.writeUInt16BE(i);
      assert.equal(parser.submit({ topic: 't', payload }, done), 'queued');
    }
    const deadline = Date.now() + 20_000;
    while (seen.length < 600 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
    assert.deepEqual(seen, Array.from({ length: 600 }, (_, i) => i), 'all parsed, in the order sent');
    assert.ok(counting.handedMost > 64 && counting.handedMost <= 128, `handed at once: ${counting.handedMost}`);
    assert.deepEqual(parser.counters, { parsed: 600, failed: 0, dropped: 0, shed: 0 });
  } finally {
    parser.dispose();
  }
});

test('a new script: messages still waiting for the old one fail as disposed, counted; those after it parse with the new one', { timeout: 30_000 }, async () => {
  const parser = new GatewayParser(runner, { timeoutMs: 1000, memoryMb: 8, maxPending: 1000, batchSize: 1 }, logger);
  try {
    parser.configure({ enabled: true, script: SLOW });
    // Two handed to the sandbox at once (batches of 1), three waiting here.
    const first = Array.from({ length: 5 }, () => parseOn(parser, 'old', Buffer.alloc(1)));
    await new Promise((resolve) => setTimeout(resolve, 10));
    parser.configure({ enabled: true, script: ECHO });
    const later = parseOn(parser, 'new', Buffer.from([1, 2]));
    const kindsFirst = kinds(await Promise.all(first));
    assert.deepEqual(kindsFirst.slice(2), ['disposed', 'disposed', 'disposed'], 'the waiting ones');
    assert.deepEqual(await later, { ok: true, value: { n: 258 } });
    assert.equal(parser.counters.parsed + parser.counters.failed, 6);
    assert.equal(parser.counters.dropped, 0);
  } finally {
    parser.dispose();
  }
});

test('a script that does not compile: each message fails at once, counted, and nothing waits', { timeout: 30_000 }, async () => {
  const parser = new GatewayParser(runner, { timeoutMs: 1000, memoryMb: 8, maxPending: 10 }, logger);
  try {
    parser.configure({ enabled: true, script: 'function transformPayload(' });
    const whileCompiling = await parseOn(parser, 't', Buffer.alloc(1));
    assert.equal(whileCompiling.ok, false);
    assert.equal(whileCompiling.ok === false && whileCompiling.kind, 'compile');
    const after = parser.parse('t', Buffer.alloc(1));
    assert.ok(after !== null && !(after instanceof Promise), 'answered at once once the compile failed');
    assert.equal(after.ok === false && after.kind, 'compile');
    assert.deepEqual(parser.counters, { parsed: 0, failed: 2, dropped: 0, shed: 0 });
  } finally {
    parser.dispose();
  }
});
