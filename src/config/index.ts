/** Process configuration: read and validate (`readConfig`), then secure the data directory (`prepareDataDir`). */
export { readConfig, workerNodeId, MAX_WORKERS, CONFIG_KEYS, LOG_LEVELS, type ConfigKey, type LogLevel, type ProcessConfig } from './read-config.ts';
export { prepareDataDir, ADMIN_TOKEN_FILE, MASTER_KEY_FILE, NODE_ID_FILE, type PreparedConfig, type ResolvedConfig } from './data-dir.ts';

import { readConfig } from './read-config.ts';
import { prepareDataDir, type PreparedConfig } from './data-dir.ts';

/** Both steps, as `main` runs them at start. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, cwd: string = process.cwd()): Promise<PreparedConfig> {
  return prepareDataDir(readConfig(env, cwd));
}
