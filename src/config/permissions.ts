/**
 * Nothing at rest is exposed: the data directory holds password hashes, message payloads, encrypted
 * private keys, the master key and the admin token. It is kept owner-only — the directory 0700, every
 * file in it 0600 — whatever the umask and whatever mode an existing directory had: a looser one is
 * tightened at start and reported, and one that cannot be tightened (not ours) refuses the start.
 */
import { chmod, readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { GatehouseError } from '../core/errors.ts';

export const DIR_MODE = 0o700;
export const FILE_MODE = 0o600;

/** What was looser than owner-only, as `path (mode 755 → 700)`. */
export async function tightenDataDir(dataDir: string): Promise<string[]> {
  const tightened: string[] = [];
  await tighten(dataDir, DIR_MODE, tightened);
  for (const entry of await readdir(dataDir, { withFileTypes: true })) {
    if (entry.isFile()) await tighten(path.join(dataDir, entry.name), FILE_MODE, tightened);
    else if (entry.isDirectory()) await tighten(path.join(dataDir, entry.name), DIR_MODE, tightened);
  }
  return tightened;
}

async function tighten(file: string, wanted: number, tightened: string[]): Promise<void> {
  let mode: number;
  try {
    mode = (await stat(file)).mode & 0o777;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return; // gone meanwhile (a -shm file)
    throw error;
  }
  if ((mode & 0o077) === 0) return;
  try {
    await chmod(file, wanted);
  } catch (error) {
    throw new GatehouseError('GW_ERR_DATA_DIR_PERMISSIONS',
      `${file} is open to other users (mode ${mode.toString(8)}) and cannot be set to ${wanted.toString(8)}: ${(error as Error).message}. ` +
      `Run Gatehouse as the owner of ${file}, or chmod ${wanted.toString(8)} it`, 'GATEHOUSE_DATA_DIR');
  }
  tightened.push(`${file} (mode ${mode.toString(8)} → ${wanted.toString(8)})`);
}
