/** A device page's query: defaults, bounds and the cursor's round trip. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GatehouseError } from '../core/errors.ts';
import { checkDeviceListInput, encodeCursor, MAX_PAGE_SIZE } from './device-list-query.ts';

function refusal(run: () => unknown): [string, string | undefined] {
  try {
    run();
  } catch (error) {
    if (error instanceof GatehouseError) return [error.code, error.field];
    throw error;
  }
  throw new Error('not refused');
}

test('defaults; the cursor gives back the name it was made from; status in either case', { timeout: 5_000 }, () => {
  assert.deepEqual(checkDeviceListInput({}), { limit: 50 });
  assert.deepEqual(checkDeviceListInput({ limit: MAX_PAGE_SIZE, cursor: encodeCursor('meter_02@site.a'), search: 'SN-1', status: 'Online' }),
    { limit: MAX_PAGE_SIZE, after: 'meter_02@site.a', search: 'SN-1', status: 'ONLINE' });
  assert.deepEqual(checkDeviceListInput({ cursor: '', search: '', status: '' }), { limit: 50 });
});

test('refusals name their field', { timeout: 5_000 }, () => {
  assert.deepEqual(refusal(() => checkDeviceListInput({ limit: 0 })), ['GW_ERR_PAGE_LIMIT_INVALID', 'limit']);
  assert.deepEqual(refusal(() => checkDeviceListInput({ limit: MAX_PAGE_SIZE + 1 })), ['GW_ERR_PAGE_LIMIT_INVALID', 'limit']);
  assert.deepEqual(refusal(() => checkDeviceListInput({ limit: 1.5 })), ['GW_ERR_PAGE_LIMIT_INVALID', 'limit']);
  assert.deepEqual(refusal(() => checkDeviceListInput({ offset: '10' })), ['GW_ERR_PAGE_OFFSET_UNSUPPORTED', 'offset']);
  assert.deepEqual(refusal(() => checkDeviceListInput({ status: 'asleep' })), ['GW_ERR_DEVICE_STATUS_INVALID', 'status']);
  assert.deepEqual(refusal(() => checkDeviceListInput({ search: 'x'.repeat(65) })), ['GW_ERR_DEVICE_SEARCH_INVALID', 'search']);
  assert.deepEqual(refusal(() => checkDeviceListInput({ search: 'a\tb' })), ['GW_ERR_DEVICE_SEARCH_INVALID', 'search']);
  // Not base64url, not ours, or a name no device can have.
  for (const cursor of ['%%%', Buffer.from('x:dev-0001').toString('base64url'), encodeCursor('ab'), encodeCursor('dev 0001'), 'A'.repeat(101)]) {
    assert.deepEqual(refusal(() => checkDeviceListInput({ cursor })), ['GW_ERR_CURSOR_INVALID', 'cursor'], cursor);
  }
});
