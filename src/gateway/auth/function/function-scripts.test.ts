import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { silentLogger } from '../../../core/logger.ts';
import { RegistryEvents } from '../../../registry/events.ts';
import type { VerificationFunction } from '../../../registry/index.ts';
import { FunctionScripts } from './function-scripts.ts';
import { QuickJsRunner } from '../../../sandbox/index.ts';

const events = new RegistryEvents(silentLogger);
const stored = new Map<string, VerificationFunction>();
let lookups = 0;
const runner = new QuickJsRunner();
const scripts = new FunctionScripts({
  events,
  getFunction: (name) => {
    lookups++;
    return Promise.resolve(stored.get(name));
  },
}, silentLogger, runner);
after(() => {
  scripts.close();
  runner.dispose();
}, { timeout: 30_000 });

function store(name: string, source: string): void {
  stored.set(name, { name, source, timeoutMs: 1000, memoryMb: 16, createdAt: '', updatedAt: '' });
}

test('a function is compiled once and reused; an update makes the next call compile the new source', { timeout: 30_000 }, async () => {
  store('fn', 'function handler() { return { result: "true", deviceName: "v1" }; }');
  const first = await scripts.get('fn');
  assert.equal(await scripts.get('fn'), first);
  assert.equal(lookups, 1);
  const r1 = await first.invoke([{}]);
  assert.ok(r1.ok && (r1.value as { deviceName: string }).deviceName === 'v1');

  store('fn', 'function handler() { return { result: "true", deviceName: "v2" }; }');
  events.emit('function.updated', { name: 'fn' });
  // A call made into the replaced script as the update lands is given its time before disposal.
  const inFlight = first.invoke([{}]);
  const second = await scripts.get('fn');
  assert.notEqual(second, first);
  const r2 = await second.invoke([{}]);
  assert.ok(r2.ok && (r2.value as { deviceName: string }).deviceName === 'v2');
  assert.equal((await inFlight).ok, true);
});

test('a missing function rejects (the provider answers "server unavailable")', { timeout: 5_000 }, async () => {
  await assert.rejects(scripts.get('nope'), /no verification function named "nope"/);
});
