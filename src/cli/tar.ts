/**
 * The few lines of POSIX ustar a backup needs: regular files only, names under 100 bytes, written and
 * read whole. An operator can inspect a backup with `tar tvf` and unpack it with `tar xf` too.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { finished } from 'node:stream/promises';

const BLOCK = 512;

function header(name: string, size: number, mode: number, mtime: number): Buffer {
  const h = Buffer.alloc(BLOCK, 0);
  const put = (value: string, offset: number, length: number): void => void h.write(value, offset, length, 'ascii');
  const octal = (value: number, length: number): string => `${value.toString(8).padStart(length - 1, '0')}\0`;
  if (Buffer.byteLength(name) >= 100) throw new Error(`tar: name too long: ${name}`);
  put(name, 0, 100);
  put(octal(mode, 8), 100, 8);
  put(octal(0, 8), 108, 8);
  put(octal(0, 8), 116, 8);
  put(octal(size, 12), 124, 12);
  put(octal(Math.floor(mtime / 1000), 12), 136, 12);
  put('        ', 148, 8); // checksum counted as spaces
  put('0', 156, 1);
  put('ustar\0', 257, 6);
  put('00', 263, 2);
  let sum = 0;
  for (const b of h) sum += b;
  put(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8);
  return h;
}

/** Writes `files` (archive name → path on disk) into `target`. */
export async function writeTar(target: string, files: { name: string; path: string }[]): Promise<void> {
  const out = createWriteStream(target, { mode: 0o600, flags: 'wx' });
  const write = (b: Buffer): Promise<void> => new Promise((resolve, reject) => {
    if (out.write(b)) resolve();
    else out.once('drain', resolve).once('error', reject);
  });
  for (const f of files) {
    const s = await stat(f.path);
    await write(header(f.name, s.size, 0o600, s.mtimeMs));
    for await (const chunk of createReadStream(f.path)) await write(chunk as Buffer);
    const pad = (BLOCK - (s.size % BLOCK)) % BLOCK;
    if (pad > 0) await write(Buffer.alloc(pad, 0));
  }
  await write(Buffer.alloc(BLOCK * 2, 0));
  out.end();
  await finished(out);
}

/** Every regular file of the archive: its name and where its bytes are. */
export async function listTar(file: string): Promise<{ name: string; offset: number; size: number }[]> {
  const fh = await open(file, 'r');
  try {
    const entries: { name: string; offset: number; size: number }[] = [];
    const size = (await fh.stat()).size;
    let offset = 0;
    const h = Buffer.alloc(BLOCK);
    while (offset + BLOCK <= size) {
      await fh.read(h, 0, BLOCK, offset);
      if (h.every((b) => b === 0)) break;
      let sum = 0;
      for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 32 : h[i]!;
      const stored = parseInt(h.toString('ascii', 148, 156).replace(/\0.*$/s, '').trim(), 8);
      if (stored !== sum || h.toString('ascii', 257, 262) !== 'ustar') throw new Error(`not a tar archive made by gatehouse backup (bad header at byte ${offset})`);
      const name = h.toString('utf8', 0, 100).replace(/\0.*$/s, '');
      const length = parseInt(h.toString('ascii', 124, 136).replace(/\0.*$/s, '').trim(), 8);
      if (!Number.isSafeInteger(length) || offset + BLOCK + length > size) throw new Error(`the archive is truncated (${name})`);
      entries.push({ name, offset: offset + BLOCK, size: length });
      offset += BLOCK + Math.ceil(length / BLOCK) * BLOCK;
    }
    return entries;
  } finally {
    await fh.close();
  }
}

/** Copies one entry's bytes to `target` (created 0600, must not exist). */
export async function extractEntry(archive: string, entry: { offset: number; size: number }, target: string): Promise<void> {
  const out = createWriteStream(target, { mode: 0o600, flags: 'wx' });
  if (entry.size > 0) createReadStream(archive, { start: entry.offset, end: entry.offset + entry.size - 1 }).pipe(out);
  else out.end();
  await finished(out);
}
