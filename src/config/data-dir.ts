/**
 * First start: create the data directory and, for the secrets the operator did not configure,
 * generate them into it (mode 0600) so the next start finds the same ones. The caller learns what was
 * generated, so `main` can print a new admin token exactly once.
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { GatehouseError } from '../core/errors.ts';
import { MIN_ADMIN_TOKEN_LENGTH, NODE_ID, parseMasterKey, type ProcessConfig } from './read-config.ts';
import { tightenDataDir } from './permissions.ts';

export const ADMIN_TOKEN_FILE = 'admin-token';
export const MASTER_KEY_FILE = 'master.key';
/** This node's cluster name when GATEHOUSE_NODE_ID is not set: generated once, kept with the directory. */
export const NODE_ID_FILE = 'node-id';

/** Configuration with every secret present. */
export interface ResolvedConfig extends ProcessConfig {
  adminToken: string;
  masterKey: Buffer;
  nodeId: string;
}

export interface PreparedConfig {
  config: ResolvedConfig;
  /** What this start wrote into the data directory (true only on the start that created it). */
  generated: { adminToken: boolean; masterKey: boolean };
  /** Where the secrets came from: the environment or a file in the data directory. */
  files: { adminToken: string | null; masterKey: string | null };
  /** Problems worth a log line, e.g. a secret file that others can read. */
  warnings: string[];
}

export async function prepareDataDir(config: ProcessConfig): Promise<PreparedConfig> {
  try {
    await mkdir(config.dataDir, { recursive: true, mode: 0o700 });
  } catch (error) {
    throw new GatehouseError('GW_ERR_CONFIG_INVALID',
      `GATEHOUSE_DATA_DIR ${config.dataDir} cannot be created: ${(error as Error).message}`, 'GATEHOUSE_DATA_DIR');
  }
  const warnings: string[] = [];
  // An existing directory (or files in it) open to other users is tightened, and said so.
  for (const loose of await tightenDataDir(config.dataDir)) warnings.push(`${loose}: was open to other users, now owner-only`);

  const token = config.adminToken !== undefined
    ? { value: config.adminToken, generated: false, file: null }
    : await readOrCreateSecret(config.dataDir, ADMIN_TOKEN_FILE, () => randomBytes(32).toString('base64url'), warnings);
  if (token.value.length < MIN_ADMIN_TOKEN_LENGTH) {
    throw new GatehouseError('GW_ERR_CONFIG_INVALID',
      `GATEHOUSE_ADMIN_TOKEN is not set and ${token.file ?? ADMIN_TOKEN_FILE} holds a token shorter than ${MIN_ADMIN_TOKEN_LENGTH} characters`, 'GATEHOUSE_ADMIN_TOKEN');
  }

  let masterKey = config.masterKey;
  let masterKeyFile: string | null = null;
  let masterKeyGenerated = false;
  if (masterKey === undefined) {
    const secret = await readOrCreateSecret(config.dataDir, MASTER_KEY_FILE, () => randomBytes(32).toString('base64'), warnings);
    try {
      masterKey = parseMasterKey(secret.file, secret.value);
    } catch {
      masterKey = undefined;
    }
    if (masterKey === undefined) {
      throw new GatehouseError('GW_ERR_CONFIG_INVALID',
        `GATEHOUSE_MASTER_KEY is not set and ${secret.file} does not hold 32 bytes as 64 hex digits or base64`, 'GATEHOUSE_MASTER_KEY');
    }
    masterKeyFile = secret.file;
    masterKeyGenerated = secret.generated;
  }

  // Every process has a node id, cluster or not: device presence records which node holds a device.
  const nodeId = config.nodeId
    ?? (await readOrCreateSecret(config.dataDir, NODE_ID_FILE, () => `node-${randomBytes(6).toString('hex')}`, warnings)).value;
  if (!NODE_ID.test(nodeId)) {
    throw new GatehouseError('GW_ERR_CONFIG_INVALID',
      `GATEHOUSE_NODE_ID is not set and ${path.join(config.dataDir, NODE_ID_FILE)} does not hold 1-64 letters, digits, _ or -`, 'GATEHOUSE_NODE_ID');
  }

  return {
    config: { ...config, adminToken: token.value, masterKey, nodeId },
    generated: { adminToken: token.generated, masterKey: masterKeyGenerated },
    files: { adminToken: token.file, masterKey: masterKeyFile },
    warnings,
  };
}

async function readOrCreateSecret(
  dataDir: string,
  name: string,
  generate: () => string,
  warnings: string[],
): Promise<{ value: string; generated: boolean; file: string }> {
  const file = path.join(dataDir, name);
  try {
    // 'wx' fails if the file exists: two processes starting at once never overwrite each other's secret.
    await writeFile(file, `${generate()}\n`, { mode: 0o600, flag: 'wx' });
    await chmod(file, 0o600); // the umask may have narrowed the mode further, never widened it; be exact
    return { value: (await readFile(file, 'utf8')).trim(), generated: true, file };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') {
      throw new GatehouseError('GW_ERR_CONFIG_INVALID', `cannot write ${file}: ${(error as Error).message}`, 'GATEHOUSE_DATA_DIR');
    }
  }
  const mode = (await stat(file)).mode & 0o777;
  if ((mode & 0o077) !== 0) warnings.push(`${file} is readable by others (mode ${mode.toString(8)}); chmod 600 it`);
  return { value: (await readFile(file, 'utf8')).trim(), generated: false, file };
}
