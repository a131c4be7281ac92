import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GatehouseError } from './errors.ts';
import { StartSteps } from './start-steps.ts';
import { capturedLog } from '../../test/harness/gatehouse.ts';

test('a start step past its deadline fails the start naming the step, and says so while it waits', { timeout: 5_000 }, async () => {
  const { logger, records } = capturedLog('debug');
  const steps = new StartSteps(logger, { slowEveryMs: 20 });
  // A deadline fifty intervals long: said at least once while waiting even on a machine whose timers run late.
  const error = await steps.run('gateways', 'every enabled gateway started', 1_000, () => new Promise<never>(() => undefined)).then(
    () => assert.fail('resolved'), (e: unknown) => e);
  assert.ok(error instanceof GatehouseError);
  assert.equal(error.code, 'GW_ERR_START_STEP_TIMED_OUT');
  assert.match(error.message, /the start step "gateways" \(every enabled gateway started\) did not finish within 1 s/);
  const slow = records.filter((r) => r.msg === 'start_step_slow');
  assert.ok(slow.length >= 1, 'said while still waiting');
  assert.ok(slow.every((r) => r.step === 'gateways' && r.level === 40));
  assert.deepEqual(records.filter((r) => r.msg === 'start_step_timed_out').map((r) => r.step), ['gateways']);
  assert.deepEqual(records.filter((r) => r.msg === 'start_step').map((r) => r.step), ['gateways']);
  assert.equal(records.some((r) => r.msg === 'start_step_done'), false);
});

test('a start step that finishes in time returns its value, is logged at debug and leaves no timer behind', { timeout: 5_000 }, async () => {
  const { logger, records } = capturedLog('debug');
  const steps = new StartSteps(logger);
  const timers = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
  assert.equal(await steps.run('storage', 'the database', 60_000, () => Promise.resolve(42)), 42);
  assert.equal(process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length, timers);
  assert.deepEqual(records.map((r) => [r.msg, r.step, r.level]), [['start_step', 'storage', 20], ['start_step_done', 'storage', 20]]);
  // A step's own failure is the start's, as it was.
  await assert.rejects(steps.run('api', 'the API', 60_000, () => Promise.reject(new Error('EADDRINUSE'))), /EADDRINUSE/);
  assert.equal(process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length, timers);
});
