import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CsvSyntaxError, parseCsv } from './csv.ts';

const fields = (text: string) => parseCsv(text).map((r) => r.fields);

test('plain records, LF and CRLF, with or without a final newline', { timeout: 5_000 }, () => {
  assert.deepEqual(fields('a,b,c\n1,2,3'), [['a', 'b', 'c'], ['1', '2', '3']]);
  assert.deepEqual(fields('a,b\r\n1,2\r\n'), [['a', 'b'], ['1', '2']]);
  assert.deepEqual(fields(''), []);
});

test('quoted fields keep commas, quotes and line breaks; unquoted ones are trimmed', { timeout: 5_000 }, () => {
  assert.deepEqual(fields('"a,b","say ""hi""","line\nbreak"'), [['a,b', 'say "hi"', 'line\nbreak']]);
  assert.deepEqual(fields('  x , "  kept  " ,y  '), [['x', '  kept  ', 'y']]);
  assert.deepEqual(fields('a,,c\n,,'), [['a', '', 'c'], ['', '', '']]);
});

test('blank lines are skipped; line numbers point at where records start', { timeout: 5_000 }, () => {
  const records = parseCsv('\uFEFFh1,h2\n\n"multi\nline",x\nlast,y\n');
  assert.deepEqual(records.map((r) => [r.line, r.fields[0]]), [[1, 'h1'], [3, 'multi\nline'], [5, 'last']]);
});

test('malformed quoting is a syntax error with the line', { timeout: 5_000 }, () => {
  assert.throws(() => parseCsv('a,"open\nb,c'), (e: unknown) => e instanceof CsvSyntaxError && e.line === 1);
  assert.throws(() => parseCsv('ok\na"b,c'), (e: unknown) => e instanceof CsvSyntaxError && e.line === 2);
  assert.throws(() => parseCsv('"a"b,c'), CsvSyntaxError);
});
