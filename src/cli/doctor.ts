/**
 * `gatehouse doctor`: reads a data directory without changing it and says what it found — the
 * identity, each database's integrity and owner, key material, permissions, files nobody uses.
 * Run it with Gatehouse stopped or running (it only reads).
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { IDENTITY_FILE, PID_FILE, readIdentity, type DataDirIdentity } from '../config/identity.ts';
import { ADMIN_TOKEN_FILE, MASTER_KEY_FILE, NODE_ID_FILE } from '../config/index.ts';
import { parseMasterKey, MIN_ADMIN_TOKEN_LENGTH } from '../config/read-config.ts';
import { SecretBox } from '../registry/secrets.ts';
import { MASTER_KEY_CHECK } from '../registry/registry.ts';
import { INSTALLATION_SETTING } from '../storage/installation.ts';
import { DATABASE_FILES, runningPid } from './backup.ts';

export type FindingLevel = 'ok' | 'warn' | 'problem';
export interface Finding { level: FindingLevel; what: string }

const KNOWN = new Set<string>([
  IDENTITY_FILE, ADMIN_TOKEN_FILE, MASTER_KEY_FILE, NODE_ID_FILE, PID_FILE, 'demo-gateway-cert.pem',
  ...DATABASE_FILES.flatMap((f) => [f, `${f}-wal`, `${f}-shm`]),
]);

export async function examineDataDir(dataDir: string, env: { masterKey?: string } = {}): Promise<Finding[]> {
  const out: Finding[] = [];
  const add = (level: FindingLevel, what: string): void => void out.push({ level, what });
  let dirMode: number;
  try {
    dirMode = (await stat(dataDir)).mode & 0o777;
  } catch (error) {
    add('problem', `${dataDir} cannot be read: ${(error as Error).message}`);
    return out;
  }
  if ((dirMode & 0o077) !== 0) add('problem', `${dataDir} is mode ${dirMode.toString(8)}: other users can list it (Gatehouse sets 700 at start; chmod 700 it)`);
  else add('ok', `${dataDir} is owner-only (${dirMode.toString(8)})`);
  const pid = await runningPid(dataDir);
  add('ok', pid === null ? 'no Gatehouse is running on it' : `a Gatehouse (pid ${pid}) is running on it`);

  let identity: DataDirIdentity | null = null;
  try {
    identity = await readIdentity(dataDir);
    if (identity === null) add('warn', `no ${IDENTITY_FILE}: a fresh directory, or one from before identities (the next start writes it)`);
    else add('ok', `${IDENTITY_FILE}: installation ${identity.installationId}, database ${identity.database}`);
  } catch (error) {
    add('problem', (error as Error).message);
  }

  const names = await readdir(dataDir);
  for (const name of names.sort()) {
    const file = path.join(dataDir, name);
    const s = await stat(file);
    const mode = s.mode & 0o777;
    if (s.isFile() && (mode & 0o077) !== 0) add('problem', `${file} is mode ${mode.toString(8)}: readable by other users (chmod 600 it)`);
    if (!KNOWN.has(name)) add('warn', `${file} is not a file Gatehouse uses (left over from a restore, a copy, another program?)`);
  }

  let keyCheck: string | undefined;
  for (const name of DATABASE_FILES) {
    const file = path.join(dataDir, name);
    if (!names.includes(name)) {
      if (name === 'gatehouse.db' && identity?.database !== 'postgres') add('problem', `${file} is missing (\`gatehouse restore <file>\` from a backup)`);
      continue;
    }
    if ((await stat(file)).size === 0) {
      add('problem', `${file} is empty`);
      continue;
    }
    let db: BetterSqlite3.Database | undefined;
    try {
      db = new BetterSqlite3(file, { fileMustExist: true });
      db.pragma('busy_timeout = 5000');
      const result = (db.pragma('integrity_check', { simple: false }) as { integrity_check: string }[]).map((r) => r.integrity_check);
      if (result.length === 1 && result[0] === 'ok') add('ok', `${file}: integrity check passed`);
      else add('problem', `${file} fails the integrity check: ${result.slice(0, 3).join('; ')}`);
      if (name === 'gatehouse.db') {
        const setting = (key: string): string | undefined => (db!.prepare('select value from settings where key = ?').get(key) as { value: string } | undefined)?.value;
        const marker = setting(INSTALLATION_SETTING);
        keyCheck = setting(MASTER_KEY_CHECK);
        if (identity !== null && marker !== identity.installationId) add('problem', `${file} belongs to installation ${marker ?? '(none)'}, the directory to ${identity.installationId}`);
        else if (marker !== undefined) add('ok', `${file} belongs to this installation`);
      }
      if (name === 'uplink-journal.db') {
        const left = (db.prepare('select count(*) as n from uplink_batches').get() as { n: number }).n;
        if (left > 0) add(pid === null ? 'warn' : 'ok', `${file}: ${left} record(s) of acknowledged uplinks not yet settled${pid === null ? ' (replayed at the next start)' : ''}`);
      }
    } catch (error) {
      add('problem', `${file} is damaged or unreadable: ${(error as Error).message}`);
    } finally {
      db?.close();
    }
  }

  const keyText = env.masterKey ?? await readFile(path.join(dataDir, MASTER_KEY_FILE), 'utf8').catch(() => undefined);
  if (keyText === undefined) {
    add(keyCheck === undefined ? 'warn' : 'problem', `no ${MASTER_KEY_FILE} and no GATEHOUSE_MASTER_KEY: stored private keys and secrets cannot be decrypted`);
  } else {
    let key: Buffer | undefined;
    try {
      key = parseMasterKey(env.masterKey === undefined ? MASTER_KEY_FILE : 'GATEHOUSE_MASTER_KEY', keyText.trim());
    } catch {
      key = undefined;
    }
    if (key === undefined) add('problem', `the master key (${env.masterKey === undefined ? MASTER_KEY_FILE : 'GATEHOUSE_MASTER_KEY'}) is not 32 bytes as hex or base64`);
    else if (keyCheck !== undefined && new SecretBox(key).keyCheck() !== keyCheck) add('problem', 'the master key is not the one gatehouse.db was created with: stored private keys will not decrypt');
    else add('ok', `the master key is well-formed${keyCheck === undefined ? '' : ' and matches gatehouse.db'}`);
  }
  const token = await readFile(path.join(dataDir, ADMIN_TOKEN_FILE), 'utf8').catch(() => undefined);
  if (token !== undefined && token.trim().length < MIN_ADMIN_TOKEN_LENGTH) add('problem', `${ADMIN_TOKEN_FILE} holds a token shorter than ${MIN_ADMIN_TOKEN_LENGTH} characters`);
  return out;
}
