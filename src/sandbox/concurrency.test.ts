import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { QuickJsRunner } from './index.ts';

// Many connections call the same compiled script at once.

const runner = new QuickJsRunner();
after(() => runner.dispose(), { timeout: 30_000 });

const HANDLER = { kind: 'module-function', entry: 'handler' } as const;

test('concurrent calls each get their own result and their own console lines', { timeout: 30_000 }, async () => {
  const script = await runner.compile(`
    async function handler(event) {
      console.log('checking ' + event.userName);
      await null;
      console.log('done ' + event.userName);
      return { result: 'true', deviceName: event.userName };
    }`, { ...HANDLER, maxConcurrent: 8, maxQueued: 500 });
  const names = Array.from({ length: 300 }, (_, i) => `device-${i}`);
  const results = await Promise.all(names.map((userName) => script.invoke([{ userName }])));
  results.forEach((result, i) => {
    assert.ok(result.ok);
    assert.deepEqual(result.value, { result: 'true', deviceName: names[i] });
    assert.deepEqual(result.logs.map((line) => line.message), [`checking ${names[i]}`, `done ${names[i]}`]);
  });
  const stats = script.stats();
  assert.equal(stats.calls, 300);
  assert.equal(stats.succeeded, 300);
  assert.equal(stats.inFlight, 0);
  assert.equal(stats.queued, 0);
});

test('calls beyond the queue bound are answered busy at once', { timeout: 15_000 }, async () => {
  const script = await runner.compile(
    'function handler() { const end = Date.now() + 100; while (Date.now() < end); return {}; }',
    { ...HANDLER, maxConcurrent: 1, maxQueued: 2 });
  const results = await Promise.all(Array.from({ length: 6 }, () => script.invoke([])));
  assert.deepEqual(results.map((r) => r.ok ? 'ok' : r.error.kind), ['ok', 'ok', 'ok', 'busy', 'busy', 'busy']);
  assert.equal(script.stats().failures.busy, 3);
});

test('a running script does not hold the event loop', { timeout: 20_000 }, async () => {
  // The script spins until its 1 s limit; a 1 ms timer set after the call started fires first
  // only if the script runs off the event loop.
  const script = await runner.compile('function handler() { for (;;) {} }', { ...HANDLER, timeoutMs: 1000 });
  const order: string[] = [];
  const call = script.invoke([]).then((result) => order.push(`answer:${result.ok ? 'ok' : result.error.kind}`));
  await new Promise((resolve) => setTimeout(resolve, 1));
  order.push('timer');
  await call;
  assert.deepEqual(order, ['timer', 'answer:timeout']);
});

test('20,000 transformPayload calls from 1 and from 8 callers each get their own answer', { timeout: 300_000 }, async () => {
  // Calls/s and CPU per call are measured by `npm run bench:sandbox`, not asserted here.
  const script = await runner.compile(
    'function transformPayload(topic, b) { return { type: b[0], temperature: ((b[1] << 8) | b[2]) / 10, seq: b[3] + 256 * b[4] }; }',
    { kind: 'module-function', entry: 'transformPayload' });
  for (const callers of [1, 8]) {
    const total = 20_000;
    let next = 0;
    let wrong = 0;
    await Promise.all(Array.from({ length: callers }, async () => {
      while (next < total) {
        const seq = next++;
        const result = await script.invoke(['dev/1/up', Buffer.from([0x01, 0x00, 0xd7, seq & 0xff, seq >> 8])]);
        if (!result.ok || JSON.stringify(result.value) !== JSON.stringify({ type: 1, temperature: 21.5, seq })) wrong++;
      }
    }));
    assert.equal(wrong, 0, `${callers} caller(s)`);
  }
  assert.equal(script.stats().succeeded, 40_000);
});

test('a batch window gathers calls made in separate turns into one hand-over; without one each goes alone; a full batch does not wait', { timeout: 30_000 }, async () => {
  const source = 'function transformPayload(topic, bytes) { return { topic, n: bytes.length }; }';
  const options = { kind: 'module-function', entry: 'transformPayload', maxConcurrent: 64 } as const;
  const spaced = async (script: Awaited<ReturnType<typeof runner.compile>>, n: number) => {
    const answers = [];
    for (let i = 0; i < n; i++) {
      answers.push(script.invoke([`t/${i}`, new Uint8Array(i)]));
      await new Promise((resolve) => setImmediate(resolve)); // the next call comes in another turn
    }
    return Promise.all(answers);
  };
  const windowed = await runner.compile(source, { ...options, batchWindowMs: 100 });
  const results = await spaced(windowed, 10);
  assert.deepEqual(results.map((r) => r.ok && r.value), Array.from({ length: 10 }, (_, i) => ({ topic: `t/${i}`, n: i })));
  assert.equal(windowed.stats().batches, 1);
  const eager = await runner.compile(source, options);
  await spaced(eager, 10);
  assert.equal(eager.stats().batches, 10);
  // Four calls fill a batch of four: it goes without waiting for the window, the fifth waits for its own.
  const small = await runner.compile(source, { ...options, maxConcurrent: 4, batchWindowMs: 100 });
  const five = await Promise.all(Array.from({ length: 5 }, (_, i) => small.invoke([`s/${i}`, new Uint8Array(0)])));
  assert.ok(five.every((r) => r.ok));
  assert.equal(small.stats().batches, 2);
  for (const s of [windowed, eager, small]) s.dispose();
});
