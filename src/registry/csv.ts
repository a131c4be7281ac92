/**
 * A small RFC 4180 reader: quoted fields (with "" escapes, commas and line breaks inside), CRLF or LF,
 * a leading byte-order mark. Blank lines are skipped; unquoted fields are trimmed (spreadsheets add
 * spaces after commas, and no row field may contain leading or trailing spaces).
 */

export class CsvSyntaxError extends Error {
  readonly line: number;
  constructor(message: string, line: number) {
    super(`${message} (line ${line})`);
    this.name = 'CsvSyntaxError';
    this.line = line;
  }
}

/** Records in order; `line` is where each one starts in the text (1-based). */
export function parseCsv(text: string): { fields: string[]; line: number }[] {
  const records: { fields: string[]; line: number }[] = [];
  const input = text.startsWith('\uFEFF') ? text.slice(1) : text;
  let fields: string[] = [];
  let field = '';
  let quoted = false;
  let wasQuoted = false;
  let line = 1;
  let recordLine = 1;
  let i = 0;

  const endField = (): void => {
    fields.push(wasQuoted ? field : field.trim());
    field = '';
    wasQuoted = false;
  };
  const endRecord = (): void => {
    endField();
    if (!(fields.length === 1 && fields[0] === '')) records.push({ fields, line: recordLine });
    fields = [];
  };

  while (i < input.length) {
    const c = input[i] as string;
    if (quoted) {
      if (c === '"') {
        if (input[i + 1] === '"') {
          field += '"';
          i += 2;
          continue;
        }
        quoted = false;
        i++;
        continue;
      }
      if (c === '\n') line++;
      field += c;
      i++;
      continue;
    }
    if (c === '"') {
      if (field.trim() !== '') throw new CsvSyntaxError('a quote in the middle of an unquoted field', line);
      field = '';
      quoted = true;
      wasQuoted = true;
      i++;
      continue;
    }
    if (c === ',') {
      endField();
      i++;
      continue;
    }
    if (c === '\r' || c === '\n') {
      endRecord();
      i += c === '\r' && input[i + 1] === '\n' ? 2 : 1;
      line++;
      recordLine = line;
      continue;
    }
    if (wasQuoted) {
      if (c.trim() !== '') throw new CsvSyntaxError('text after a closing quote', line);
      i++; // spaces between a closing quote and the comma are not part of the field
      continue;
    }
    field += c;
    i++;
  }
  if (quoted) throw new CsvSyntaxError('a quoted field is not closed', recordLine);
  if (field !== '' || fields.length > 0 || wasQuoted) endRecord();
  return records;
}
