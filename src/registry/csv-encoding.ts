/**
 * CSV imports arrive as bytes. Legacy fleets export from spreadsheets in UTF-8 (with or without a
 * byte order mark), UTF-16 or a Western single-byte code page; decoding a Latin-1 "é" as UTF-8 used
 * to turn it silently into U+FFFD inside an SN. So: a BOM decides; otherwise the bytes must be valid
 * UTF-8, and the first invalid byte is refused by line and byte, unless the sender names the charset.
 */
import { GatehouseError } from '../core/errors.ts';

/** Charset names accepted from `Content-Type: text/csv; charset=…` or `?charset=` (lower case). */
const CHARSETS: Record<string, 'utf-8' | 'latin1' | 'windows-1252' | 'utf-16le' | 'utf-16be'> = {
  'utf-8': 'utf-8', utf8: 'utf-8',
  'iso-8859-1': 'latin1', latin1: 'latin1', 'iso8859-1': 'latin1', 'l1': 'latin1',
  'windows-1252': 'windows-1252', cp1252: 'windows-1252',
  'utf-16le': 'utf-16le', 'utf-16be': 'utf-16be',
};
export const SUPPORTED_CHARSETS = Object.keys(CHARSETS);

/**
 * Windows-1252 at 0x80–0x9F (the rest is Latin-1). Written out because Node 20's TextDecoder decodes
 * "windows-1252" as Latin-1 (0x80 → U+0080 instead of €). -1: unassigned, refused.
 */
const CP1252_HIGH = [0x20ac, -1, 0x201a, 0x0192, 0x201e, 0x2026, 0x2020, 0x2021, 0x02c6, 0x2030, 0x0160, 0x2039, 0x0152, -1, 0x017d, -1, -1, 0x2018, 0x2019, 0x201c, 0x201d, 0x2022, 0x2013, 0x2014, 0x02dc, 0x2122, 0x0161, 0x203a, 0x0153, -1, 0x017e, 0x0178];

function decodeWindows1252(bytes: Uint8Array): string {
  let out = '';
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!;
    if (b < 0x80 || b > 0x9f) {
      out += String.fromCharCode(b);
      continue;
    }
    const cp = CP1252_HIGH[b - 0x80]!;
    if (cp < 0) throw new GatehouseError('GW_ERR_IMPORT_ENCODING', `the CSV is not valid windows-1252: byte 0x${b.toString(16)} at offset ${i} is unassigned`, 'body');
    out += String.fromCharCode(cp);
  }
  return out;
}

/** Where the first byte that cannot be UTF-8 is; -1 when all of it is valid. */
export function firstInvalidUtf8(bytes: Uint8Array): number {
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i]!;
    if (b < 0x80) { i++; continue; }
    let need: number;
    let min: number;
    if (b >= 0xc2 && b <= 0xdf) { need = 1; min = 0x80; } else if (b >= 0xe0 && b <= 0xef) { need = 2; min = 0x800; } else if (b >= 0xf0 && b <= 0xf4) { need = 3; min = 0x10000; } else return i;
    let cp = b & (0x3f >> need);
    for (let k = 1; k <= need; k++) {
      const c = bytes[i + k];
      if (c === undefined || (c & 0xc0) !== 0x80) return i;
      cp = (cp << 6) | (c & 0x3f);
    }
    // Overlong forms, UTF-16 surrogates and values past U+10FFFF are not UTF-8 either.
    if (cp < min || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff) return i;
    i += need + 1;
  }
  return -1;
}

function encodingError(bytes: Uint8Array, offset: number): GatehouseError {
  let line = 1;
  let lineStart = 0;
  for (let i = 0; i < offset; i++) {
    if (bytes[i] === 0x0a) {
      line++;
      lineStart = i + 1;
    }
  }
  const hex = Array.from(bytes.subarray(offset, Math.min(offset + 4, bytes.length)), (b) => `0x${b.toString(16).padStart(2, '0')}`).join(' ');
  return new GatehouseError('GW_ERR_IMPORT_ENCODING',
    `the CSV is not UTF-8: line ${line}, byte ${offset - lineStart + 1} of the line (offset ${offset} in the file) is ${hex}. ` +
    'Save the file as UTF-8, or name its encoding: Content-Type text/csv; charset=iso-8859-1 (or windows-1252, utf-16le), ' +
    'or `gatehouse devices import --charset …`', 'body');
}

/** The CSV as text: decoded by its BOM, by the named charset, or as strict UTF-8. */
export function decodeCsv(bytes: Uint8Array, charset?: string): string {
  const named = charset === undefined || charset.trim() === '' ? undefined : CHARSETS[charset.trim().toLowerCase()];
  if (charset !== undefined && charset.trim() !== '' && named === undefined) {
    throw new GatehouseError('GW_ERR_IMPORT_CHARSET_UNSUPPORTED',
      `charset "${charset}" is not one of ${SUPPORTED_CHARSETS.join(', ')}`, 'charset');
  }
  const utf8Bom = bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf;
  const utf16le = bytes[0] === 0xff && bytes[1] === 0xfe;
  const utf16be = bytes[0] === 0xfe && bytes[1] === 0xff;
  const encoding = named ?? (utf16le ? 'utf-16le' : utf16be ? 'utf-16be' : 'utf-8');
  if (encoding === 'utf-8') {
    const body = utf8Bom ? bytes.subarray(3) : bytes;
    const bad = firstInvalidUtf8(body);
    if (bad >= 0) throw encodingError(bytes, bad + (utf8Bom ? 3 : 0));
    return Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8');
  }
  if (encoding === 'latin1') return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
  if (encoding === 'windows-1252') return decodeWindows1252(bytes);
  // TextDecoder strips a matching BOM itself; fatal: a broken UTF-16 file is refused, not patched.
  try {
    return new TextDecoder(encoding, { fatal: true }).decode(bytes);
  } catch {
    throw new GatehouseError('GW_ERR_IMPORT_ENCODING', `the CSV is not valid ${encoding}`, 'body');
  }
}
