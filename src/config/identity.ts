/**
 * A data directory knows which installation it belongs to: `identity.json`, written (0600) at the
 * first start beside the database, holds the installation id that the database also carries (the
 * `installation_id` setting). At every start the two must agree, so an empty, missing or foreign
 * database beside existing state is refused instead of being taken for a fresh install.
 */
import { randomUUID } from 'node:crypto';
import { readFile, stat, writeFile, chmod } from 'node:fs/promises';
import path from 'node:path';
import { GatehouseError } from '../core/errors.ts';

export const IDENTITY_FILE = 'identity.json';
/** The running process's pid, removed at a clean stop: `gatehouse restore` will not write under it. */
export const PID_FILE = 'gatehouse.pid';

export interface DataDirIdentity {
  installationId: string;
  createdAt: string;
  /** Where the registry's database lives: `gatehouse.db` in the directory or a PostgreSQL server. */
  database: 'sqlite' | 'postgres';
}

export function newInstallationId(): string {
  return randomUUID();
}

/** The identity, or null when the directory has none (a fresh install, or one from before identities). */
export async function readIdentity(dataDir: string): Promise<DataDirIdentity | null> {
  const file = path.join(dataDir, IDENTITY_FILE);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new GatehouseError('GW_ERR_DATA_DIR_IDENTITY_INVALID', `${file} cannot be read: ${(error as Error).message}`, 'GATEHOUSE_DATA_DIR');
  }
  try {
    const value = JSON.parse(text) as Partial<DataDirIdentity>;
    if (typeof value.installationId === 'string' && value.installationId.length > 0 && (value.database === 'sqlite' || value.database === 'postgres')) {
      return { installationId: value.installationId, createdAt: String(value.createdAt ?? ''), database: value.database };
    }
  } catch {
    // reported below
  }
  throw new GatehouseError('GW_ERR_DATA_DIR_IDENTITY_INVALID',
    `${file} is not a Gatehouse identity file (installationId, database); restore it from a backup, or run \`gatehouse doctor\` to see what the directory holds`,
    'GATEHOUSE_DATA_DIR');
}

export async function writeIdentity(dataDir: string, identity: DataDirIdentity): Promise<void> {
  const file = path.join(dataDir, IDENTITY_FILE);
  await writeFile(file, `${JSON.stringify(identity, null, 2)}\n`, { mode: 0o600 });
  await chmod(file, 0o600);
}

/** Files that only an installation that has run leaves behind (besides the registry's database). */
export const STATE_FILES = ['mqtt-state.db', 'uplink-journal.db'] as const;

/**
 * Whether the directory holds state of an installation that has run: an identity, engine or journal
 * state, or secrets this start did not generate.
 */
export async function hasExistingState(dataDir: string, secretsFound: readonly (string | null)[]): Promise<string[]> {
  const found: string[] = [];
  for (const name of [IDENTITY_FILE, ...STATE_FILES]) {
    const size = await stat(path.join(dataDir, name)).then((s) => s.size, () => -1);
    if (size > 0) found.push(name);
  }
  for (const file of secretsFound) if (file !== null) found.push(path.basename(file));
  return found;
}
