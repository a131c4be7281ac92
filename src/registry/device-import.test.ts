import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GatehouseError } from '../core/errors.ts';
import { MAX_IMPORT_ROWS, rowsFromCsv, rowsFromJson } from './device-import.ts';

const code = (fn: () => unknown) => {
  try {
    fn();
  } catch (error) {
    return error instanceof GatehouseError ? [error.code, error.field] : ['other', String(error)];
  }
  return ['none'];
};

test('CSV without header maps sn,username,password; empty SN means none', { timeout: 5_000 }, () => {
  assert.deepEqual(rowsFromCsv('S1,user-1,pw\n,user-2,pw'), [
    { row: 1, value: { sn: 'S1', username: 'user-1', password: 'pw' } },
    { row: 2, value: { username: 'user-2', password: 'pw' } },
  ]);
});

test('a header is recognised by its names, in any order and case, with deviceName', { timeout: 5_000 }, () => {
  assert.deepEqual(rowsFromCsv('Password,USERNAME,deviceName\npw,user-1,dev-1'), [
    { row: 1, value: { password: 'pw', username: 'user-1', deviceName: 'dev-1' } },
  ]);
  // A first line that is not all column names is data.
  assert.equal(rowsFromCsv('SN1,username,password').length, 1);
});

test('a row with the wrong number of columns fails alone', { timeout: 5_000 }, () => {
  const rows = rowsFromCsv('S1,user-1\nS2,user-2,pw');
  assert.equal(rows[0]?.error?.code, 'GW_ERR_IMPORT_INVALID');
  assert.match(rows[0]?.error?.message ?? '', /line 1 has 2 column\(s\); expected 3/);
  assert.ok(rows[1]?.value);
});

test('limits and shape', { timeout: 5_000 }, () => {
  assert.deepEqual(code(() => rowsFromJson({})), ['GW_ERR_IMPORT_INVALID', 'body']);
  assert.deepEqual(code(() => rowsFromJson([])), ['GW_ERR_IMPORT_INVALID', 'body']);
  assert.deepEqual(code(() => rowsFromJson(new Array(MAX_IMPORT_ROWS + 1).fill({}))), ['GW_ERR_IMPORT_TOO_LARGE', 'rows']);
  assert.equal(rowsFromJson(new Array(MAX_IMPORT_ROWS).fill({})).length, MAX_IMPORT_ROWS);
  assert.deepEqual(code(() => rowsFromCsv('username,password,username\na,b,c')), ['GW_ERR_IMPORT_INVALID', 'header']);
  assert.deepEqual(code(() => rowsFromCsv('"unclosed')), ['GW_ERR_IMPORT_INVALID', 'body']);
  const header = 'sn,username,password\n';
  assert.deepEqual(code(() => rowsFromCsv(header + 'a,b,c\n'.repeat(MAX_IMPORT_ROWS + 1))), ['GW_ERR_IMPORT_TOO_LARGE', 'rows']);
  assert.equal(rowsFromCsv(header + 'a,b,c\n'.repeat(MAX_IMPORT_ROWS)).length, MAX_IMPORT_ROWS, 'the header does not count');
});
