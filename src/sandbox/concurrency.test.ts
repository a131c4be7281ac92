import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { IsolatedVmRunner } from './index.ts';

// Many connections call the same compiled script at once.

const runner = new IsolatedVmRunner();
after(() => runner.dispose());

const HANDLER = { kind: 'module-function', entry: 'handler' } as const;

test('concurrent calls each get their own result and their own console lines', async () => {
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

test('calls beyond the queue bound are answered busy at once', async () => {
  const script = await runner.compile(
    'function handler() { const end = Date.now() + 100; while (Date.now() < end); return {}; }',
    { ...HANDLER, maxConcurrent: 1, maxQueued: 2 });
  const results = await Promise.all(Array.from({ length: 6 }, () => script.invoke([])));
  assert.deepEqual(results.map((r) => r.ok ? 'ok' : r.error.kind), ['ok', 'ok', 'ok', 'busy', 'busy', 'busy']);
  assert.equal(script.stats().failures.busy, 3);
});

test('a slow script does not block the event loop', async () => {
  const script = await runner.compile(
    'function handler() { const end = Date.now() + 300; while (Date.now() < end); return { done: true }; }', HANDLER);
  let ticks = 0;
  const timer = setInterval(() => { ticks++; }, 10);
  const result = await script.invoke([]);
  clearInterval(timer);
  assert.ok(result.ok);
  assert.ok(ticks >= 10, `only ${ticks} timer ticks during a 300 ms script`);
});

test('throughput of a trivial transformPayload, 20,000 calls', async (t) => {
  const script = await runner.compile(
    'function transformPayload(topic, b) { return { type: b[0], temperature: ((b[1] << 8) | b[2]) / 10, humidity: b[3] }; }',
    { kind: 'module-function', entry: 'transformPayload' });
  const payload = Buffer.from([0x01, 0x00, 0xd7, 0x37]);
  for (const callers of [1, 8]) {
    const total = 20_000;
    let next = 0;
    let failed = 0;
    const started = performance.now();
    await Promise.all(Array.from({ length: callers }, async () => {
      while (next < total) {
        next++;
        if (!(await script.invoke(['dev/1/up', payload])).ok) failed++;
      }
    }));
    const perSecond = Math.round(total / ((performance.now() - started) / 1000));
    t.diagnostic(`${callers} concurrent caller(s): ${perSecond} calls/s`);
    assert.equal(failed, 0);
    assert.ok(perSecond > 2000, `${perSecond} calls/s`);
  }
});
