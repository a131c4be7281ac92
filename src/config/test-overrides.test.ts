import assert from 'node:assert/strict';
import { test } from 'node:test';
import { readTestOverrides } from '../app.ts';
import { GatehouseError } from '../core/errors.ts';
import { DEFAULT_LEASE_TIMINGS } from '../cluster/index.ts';
import { TEST_OVERRIDES_ENV } from './test-overrides.ts';

const read = (json: string | undefined) => readTestOverrides(json === undefined ? {} : { [TEST_OVERRIDES_ENV]: json });

function refused(json: string, message: RegExp): void {
  assert.throws(() => read(json), (e: unknown) => {
    assert.ok(e instanceof GatehouseError);
    assert.equal(e.code, 'GW_ERR_CONFIG_INVALID');
    assert.equal(e.field, TEST_OVERRIDES_ENV);
    assert.match(e.message, message);
    return true;
  });
}

test('unset or empty: no overrides', { timeout: 5_000 }, () => {
  assert.equal(read(undefined), undefined);
  assert.equal(read('  '), undefined);
});

test('the in-process overrides, as JSON: nested fields kept as given, lease timings completed with their defaults', { timeout: 5_000 }, () => {
  const given = {
    ocspTimings: { minCacheMs: 500, retryMs: 200 },
    platform: { parsing: { timeoutMs: 50 }, webhooks: { maxAttempts: 4 }, deviceProperties: { maxCount: 50 }, downlinkAckTimeoutMs: 0 },
    connectionEvents: { foldWindowMs: 100 },
  };
  assert.deepEqual(read(JSON.stringify(given)), given);
  assert.deepEqual(read('{"clusterLeaseTimings":{"leaseMs":3000}}'), { clusterLeaseTimings: { ...DEFAULT_LEASE_TIMINGS, leaseMs: 3000 } });
});

test('a field that is not an override, or not a number >= 0, refuses the start naming its path', { timeout: 5_000 }, () => {
  refused('{oops', /^GATEHOUSE_TEST_OVERRIDES is not JSON/);
  refused('[1]', /must be a JSON object/);
  refused('{"ocspTiming":{}}', /ocspTiming is not an override \(known here: ocspTimings, platform, connectionEvents, clusterLeaseTimings\)/);
  refused('{"platform":{"webhooks":{"maxAttemps":4}}}', /platform\.webhooks\.maxAttemps is not an override \(known here: maxAttempts,/);
  refused('{"platform":{"webhooks":{"maxAttempts":"4"}}}', /platform\.webhooks\.maxAttempts must be a number >= 0, got "4"/);
  refused('{"ocspTimings":{"retryMs":-1}}', /ocspTimings\.retryMs must be a number >= 0, got -1/);
  refused('{"platform":{"parsing":5}}', /platform\.parsing must be an object, got 5/);
  refused('{"platform":{"streamReplay":{"x":1}}}', /platform\.streamReplay must be a number >= 0/);
  refused('{"__proto__":{"x":1}}', /__proto__ is not an override/);
});
