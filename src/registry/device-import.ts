/**
 * Turns an import request (a JSON array of rows, or CSV `sn,username,password` with an optional header)
 * into numbered rows for the device service to check one by one.
 */
import { GatehouseError } from '../core/errors.ts';
import { CsvSyntaxError, parseCsv } from './csv.ts';
import type { ImportRowError } from './types.ts';

/** Rows of one import request, answered when done, row by row. */
export const MAX_IMPORT_ROWS = 10_000;
/** Rows of one import operation (the console's path: it runs in the background and reports progress). */
export const MAX_IMPORT_OPERATION_ROWS = 100_000;
/** Without a header the columns are these, in this order (DESIGN.md). */
const DEFAULT_COLUMNS = ['sn', 'username', 'password'];
const HEADER_NAMES: Record<string, string> = { sn: 'sn', username: 'username', password: 'password', devicename: 'deviceName' };

export interface RawImportRow {
  /** 1-based among the rows; a CSV header is not a row. */
  row: number;
  value?: unknown;
  /** A problem found before the row's fields could be read (wrong column count). */
  error?: ImportRowError;
}

function tooLarge(count: number, max: number): GatehouseError {
  const what = max === MAX_IMPORT_ROWS ? 'per request (an import operation takes up to 100,000)' : 'per import operation';
  return new GatehouseError('GW_ERR_IMPORT_TOO_LARGE', `${count} rows; at most ${max} ${what}`, 'rows');
}

function invalid(message: string, field = 'body'): GatehouseError {
  return new GatehouseError('GW_ERR_IMPORT_INVALID', message, field);
}

export function rowsFromJson(body: unknown, max = MAX_IMPORT_ROWS): RawImportRow[] {
  if (!Array.isArray(body)) throw invalid('a JSON import is an array of {sn, username, password, deviceName?} objects');
  if (body.length > max) throw tooLarge(body.length, max);
  if (body.length === 0) throw invalid('the import has no rows');
  return (body as unknown[]).map((value, index) => ({ row: index + 1, value }));
}

export function rowsFromCsv(text: string, max = MAX_IMPORT_ROWS): RawImportRow[] {
  let records: { fields: string[]; line: number }[];
  try {
    records = parseCsv(text);
  } catch (error) {
    if (error instanceof CsvSyntaxError) throw invalid(`not valid CSV: ${error.message}`);
    throw error;
  }
  const first = records[0];
  const header = first !== undefined && isHeader(first.fields) ? first.fields : undefined;
  const columns = header === undefined ? DEFAULT_COLUMNS : header.map((name) => HEADER_NAMES[name.toLowerCase()] as string);
  if (header !== undefined && new Set(columns).size !== columns.length) throw invalid('a CSV column is named twice', 'header');
  const dataRecords = header === undefined ? records : records.slice(1);
  if (dataRecords.length > max) throw tooLarge(dataRecords.length, max);
  if (dataRecords.length === 0) throw invalid('the import has no rows');

  return dataRecords.map(({ fields, line }, index) => {
    const row = index + 1;
    if (fields.length !== columns.length) {
      return {
        row,
        error: {
          code: 'GW_ERR_IMPORT_INVALID',
          message: `line ${line} has ${fields.length} column(s); expected ${columns.length} (${columns.join(',')})`,
          field: null,
        },
      };
    }
    const value: Record<string, string> = {};
    columns.forEach((column, i) => {
      const field = fields[i] ?? '';
      // An empty optional cell means "not given", as if the column were absent.
      if (field !== '' || column === 'username' || column === 'password') value[column] = field;
    });
    return { row, value };
  });
}

/**
 * A first record made only of column names, username among them, is a header. Words that are not
 * column names mean data (a header with a typo then fails as a row, which names the line).
 */
function isHeader(fields: string[]): boolean {
  return fields.some((f) => f.toLowerCase() === 'username') && fields.every((f) => HEADER_NAMES[f.toLowerCase()] !== undefined);
}
