/**
 * `gatehouse backup <file>` and `gatehouse restore <file>`: a consistent copy of a data directory,
 * running or not, in one tar file (0600). Each SQLite database is copied with SQLite's online backup
 * API (better-sqlite3 `backup()`): a snapshot consistent in itself while Gatehouse keeps writing, no
 * WAL to forget. A restore unpacks beside the target, checks every database and the identity, and
 * only then moves it into place; it refuses while a Gatehouse runs on the directory.
 */
import { mkdir, mkdtemp, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { GatehouseError } from '../core/errors.ts';
import { IDENTITY_FILE, PID_FILE, readIdentity } from '../config/identity.ts';
import { ADMIN_TOKEN_FILE, MASTER_KEY_FILE } from '../config/index.ts';
import { INSTALLATION_SETTING } from '../storage/installation.ts';
import { extractEntry, listTar, writeTar } from './tar.ts';

export const DATABASE_FILES = ['gatehouse.db', 'mqtt-state.db', 'uplink-journal.db'] as const;
export const SECRET_FILES = [ADMIN_TOKEN_FILE, MASTER_KEY_FILE] as const;
const ARCHIVE_NAMES = new Set<string>([IDENTITY_FILE, ...DATABASE_FILES, ...SECRET_FILES]);

const exists = (file: string): Promise<boolean> => stat(file).then(() => true, () => false);

export interface BackupResult {
  installationId: string;
  files: string[];
  notes: string[];
}

export async function backupDataDir(dataDir: string, target: string, options: { withSecrets: boolean }): Promise<BackupResult> {
  const identity = await readIdentity(dataDir);
  if (identity === null) {
    throw new GatehouseError('GW_ERR_BACKUP_FAILED', `${dataDir} has no ${IDENTITY_FILE}: it is not a Gatehouse data directory (or has never been started)`, 'dataDir');
  }
  if (await exists(target)) throw new GatehouseError('GW_ERR_BACKUP_FAILED', `${target} exists; a backup never overwrites a file`, 'file');
  const notes: string[] = [];
  const work = await mkdtemp(path.join(path.dirname(path.resolve(target)), '.gatehouse-backup-'));
  try {
    const entries: { name: string; path: string }[] = [{ name: IDENTITY_FILE, path: path.join(dataDir, IDENTITY_FILE) }];
    for (const name of DATABASE_FILES) {
      const source = path.join(dataDir, name);
      if (!(await exists(source))) {
        if (name === 'gatehouse.db' && identity.database === 'sqlite') {
          throw new GatehouseError('GW_ERR_BACKUP_FAILED', `${source} is missing: nothing to back up (\`gatehouse doctor\` says more)`, 'dataDir');
        }
        continue;
      }
      const copy = path.join(work, name);
      const db = new BetterSqlite3(source, { fileMustExist: true });
      try {
        db.pragma('busy_timeout = 5000');
        await db.backup(copy);
      } catch (error) {
        throw new GatehouseError('GW_ERR_BACKUP_FAILED', `${source} could not be copied: ${(error as Error).message}`, 'dataDir');
      } finally {
        db.close();
      }
      entries.push({ name, path: copy });
    }
    if (identity.database === 'postgres') {
      notes.push('the registry database is PostgreSQL: back it up with pg_dump (see README, Backups); this file holds the local state only');
    }
    if (options.withSecrets) {
      for (const name of SECRET_FILES) {
        const file = path.join(dataDir, name);
        if (await exists(file)) entries.push({ name, path: file });
      }
      if (entries.some((e) => e.name === MASTER_KEY_FILE)) notes.push(`the backup holds ${MASTER_KEY_FILE}: keep it as secret as the data directory`);
    } else {
      notes.push(`without ${SECRET_FILES.join(' and ')}: a restore needs GATEHOUSE_MASTER_KEY (and a token) from where you keep them`);
    }
    await writeTar(target, entries);
    return { installationId: identity.installationId, files: entries.map((e) => e.name), notes };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** The pid in the directory's pid file when that process is alive. */
export async function runningPid(dataDir: string): Promise<number | null> {
  const text = await readFile(path.join(dataDir, PID_FILE), 'utf8').catch(() => null);
  const pid = text === null ? NaN : Number(text.trim());
  if (!Number.isSafeInteger(pid) || pid <= 0) return null;
  try {
    process.kill(pid, 0);
    return pid;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM' ? pid : null;
  }
}

export interface RestoreResult {
  installationId: string;
  files: string[];
  /** Where the directory's previous content went (with --replace). */
  previous: string | null;
}

export async function restoreDataDir(archive: string, dataDir: string, options: { replace: boolean }): Promise<RestoreResult> {
  const refuse = (message: string): GatehouseError => new GatehouseError('GW_ERR_RESTORE_REFUSED', message, 'file');
  let entries;
  try {
    entries = await listTar(archive);
  } catch (error) {
    throw refuse(`${archive} is not a Gatehouse backup: ${(error as Error).message}`);
  }
  for (const e of entries) {
    // Only the names a backup writes: no paths, so nothing lands outside the data directory.
    if (!ARCHIVE_NAMES.has(e.name)) throw refuse(`${archive} holds "${e.name}", which no Gatehouse backup contains; nothing was restored`);
  }
  if (!entries.some((e) => e.name === IDENTITY_FILE)) throw refuse(`${archive} has no ${IDENTITY_FILE}; nothing was restored`);

  const pid = await runningPid(dataDir);
  if (pid !== null) throw refuse(`a Gatehouse (pid ${pid}) is running on ${dataDir}: stop it first; nothing was restored`);
  const present = await readdir(dataDir).catch(() => [] as string[]);
  if (present.length > 0 && !options.replace) {
    throw refuse(`${dataDir} is not empty (${present.slice(0, 5).join(', ')}${present.length > 5 ? ', …' : ''}): restore into an empty directory, or pass --replace to move its content aside first`);
  }

  const parent = path.dirname(path.resolve(dataDir));
  await mkdir(parent, { recursive: true });
  const staging = await mkdtemp(path.join(parent, `.${path.basename(dataDir)}.restoring-`));
  try {
    for (const e of entries) await extractEntry(archive, e, path.join(staging, e.name));
    const identity = await readIdentity(staging);
    if (identity === null) throw refuse(`${archive} has no readable ${IDENTITY_FILE}`);
    for (const name of DATABASE_FILES) {
      const file = path.join(staging, name);
      if (!(await exists(file))) {
        if (name === 'gatehouse.db' && identity.database === 'sqlite') throw refuse(`${archive} has no gatehouse.db though the installation uses SQLite`);
        continue;
      }
      const db = new BetterSqlite3(file, { fileMustExist: true });
      try {
        const check = db.pragma('quick_check', { simple: true }) as string;
        if (check !== 'ok') throw refuse(`${name} in ${archive} fails SQLite's check (${check}); nothing was restored`);
        if (name === 'gatehouse.db') {
          const marker = (db.prepare('select value from settings where key = ?').get(INSTALLATION_SETTING) as { value: string } | undefined)?.value;
          if (marker !== identity.installationId) throw refuse(`gatehouse.db in ${archive} belongs to installation ${marker ?? '(none)'}, its ${IDENTITY_FILE} to ${identity.installationId}`);
        }
      } catch (error) {
        if (error instanceof GatehouseError) throw error;
        throw refuse(`${name} in ${archive} is damaged (${(error as Error).message}); nothing was restored`);
      } finally {
        db.close();
      }
    }
    let previous: string | null = null;
    if (present.length > 0) {
      previous = `${path.resolve(dataDir)}.before-restore-${new Date().toISOString().replace(/[:.]/g, '-')}`;
      await rename(dataDir, previous);
    } else {
      await rm(dataDir, { recursive: true, force: true });
    }
    await rename(staging, dataDir);
    return { installationId: identity.installationId, files: entries.map((e) => e.name), previous };
  } catch (error) {
    await rm(staging, { recursive: true, force: true });
    throw error;
  }
}

