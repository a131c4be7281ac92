/**
 * Process configuration from the environment (and optionally an env-format file with the same keys),
 * validated in one pass. Every problem is a `GW_ERR_CONFIG_INVALID` naming the key, so a typo in a
 * deployment fails at start with a message that says which variable to fix.
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import { GatehouseError } from '../core/errors.ts';
import { DEFAULT_SCRYPT_COST, MAX_SCRYPT_N, MIN_SCRYPT_N } from '../registry/passwords.ts';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** The keys this module reads. `GATEHOUSE_CONFIG_FILE` names a file of `KEY=value` lines with the same keys. */
export const CONFIG_KEYS = [
  'GATEHOUSE_DATA_DIR', 'GATEHOUSE_HTTP_PORT', 'GATEHOUSE_HTTP_HOST', 'GATEHOUSE_MQTT_HOST',
  'GATEHOUSE_PUBLIC_HOST', 'GATEHOUSE_ADMIN_TOKEN', 'GATEHOUSE_MASTER_KEY', 'GATEHOUSE_DATABASE_URL',
  'GATEHOUSE_NATS_URL', 'GATEHOUSE_NODE_ID', 'GATEHOUSE_LOG_LEVEL', 'GATEHOUSE_MESSAGES_PER_DEVICE', 'GATEHOUSE_MESSAGES_MAX_AGE_HOURS',
  'GATEHOUSE_DEVICE_MAX_PROPERTIES', 'GATEHOUSE_DEVICE_MAX_PROPERTIES_BYTES', 'GATEHOUSE_DEMO', 'GATEHOUSE_DEMO_PORT',
  'GATEHOUSE_PASSWORD_SCRYPT_N',
  'GATEHOUSE_EVENTS_PER_GATEWAY', 'GATEHOUSE_EVENTS_MAX_AGE_HOURS', 'GATEHOUSE_WORKERS', 'GATEHOUSE_CLUSTER_STREAM_MAX_MB',
] as const;
export type ConfigKey = (typeof CONFIG_KEYS)[number];

/** Configuration as given; secrets may still be missing (see `prepareDataDir`). */
export interface ProcessConfig {
  /** Absolute path of the data directory (SQLite file, generated secrets). */
  dataDir: string;
  http: { host: string; port: number };
  /** Address the gateway listeners bind. */
  mqttHost: string;
  /** Host name put into gateway URLs (`mqtts://<publicHost>:<port>`). */
  publicHost: string;
  adminToken: string | undefined;
  /** 32 bytes for AES-256-GCM. */
  masterKey: Buffer | undefined;
  /** PostgreSQL connection string; SQLite under `dataDir` when absent. */
  databaseUrl: string | undefined;
  /** NATS servers (comma-separated): this process is a cluster node (it then needs `databaseUrl`). */
  natsUrl: string | undefined;
  /** This node's name in the cluster; generated once into the data directory when absent (`prepareDataDir`). */
  nodeId: string | undefined;
  /**
   * `GATEHOUSE_CLUSTER_STREAM_MAX_MB`: the size of the cluster's JetStream stream of QoS 1/2 messages (the oldest
   * go first past it). JetStream reserves it in full on the NATS server's storage when the stream is created.
   */
  clusterStreamMaxBytes: number;
  /**
   * `GATEHOUSE_WORKERS`: this many worker processes (node:cluster), each a cluster node of its own, share the
   * ports; undefined runs one process as before.
   */
  workers: number | undefined;
  logLevel: LogLevel;
  /** The message store keeps the newest `perDevice` messages of each device, none older than `maxAgeHours`. */
  messages: { perDevice: number; maxAgeHours: number };
  /** A device's stored properties: at most `maxCount` names and `maxBytes` of JSON; a post beyond either is refused. */
  deviceProperties: { maxCount: number; maxBytes: number };
  /** The demo gateway created on a fresh install (`GATEHOUSE_DEMO=off` skips it) and its port. */
  demo: { enabled: boolean; port: number };
  /** scrypt N (a power of two) for device password hashes written from now on; older ones move to it at their next login. */
  passwordScryptN: number;
  /** Connection events kept: the newest `perGateway` of each gateway, none older than `maxAgeHours`. */
  connectionEvents: { perGateway: number; maxAgeHours: number };
}

export const MIN_ADMIN_TOKEN_LENGTH = 16;

export function readConfig(env: NodeJS.ProcessEnv = process.env, cwd: string = process.cwd()): ProcessConfig {
  const source = withConfigFile(env, cwd);
  const value = (key: ConfigKey): string | undefined => {
    const raw = source[key]?.trim();
    return raw === undefined || raw === '' ? undefined : raw;
  };
  const databaseUrl = parseUrl('GATEHOUSE_DATABASE_URL', value('GATEHOUSE_DATABASE_URL'), ['postgres:', 'postgresql:']);
  const natsUrl = parseNatsUrls(value('GATEHOUSE_NATS_URL'));
  // Nodes share the registry, devices and messages through PostgreSQL: a node with a SQLite file of its
  // own would run a cluster whose members disagree on every gateway.
  const workers = parseWorkers(value('GATEHOUSE_WORKERS'));
  // Every worker is a full cluster node (a device's reconnect may land on any of them): without NATS and
  // PostgreSQL the workers could share neither sessions nor the registry.
  if (workers !== undefined && (natsUrl === undefined || databaseUrl === undefined)) {
    const missing = [natsUrl === undefined ? 'GATEHOUSE_NATS_URL' : null, databaseUrl === undefined ? 'GATEHOUSE_DATABASE_URL' : null]
      .filter((key) => key !== null);
    throw new GatehouseError('GW_ERR_WORKERS_NEED_CLUSTER',
      `GATEHOUSE_WORKERS runs each worker process as a cluster node, which shares its state through NATS and PostgreSQL: set ${missing.join(' and ')}, `
      + 'or unset GATEHOUSE_WORKERS to run one process', missing[0]);
  }
  if (natsUrl !== undefined && databaseUrl === undefined) {
    throw new GatehouseError('GW_ERR_CLUSTER_NEEDS_DATABASE',
      'GATEHOUSE_NATS_URL makes this process a cluster node, and every node shares its state through PostgreSQL: set GATEHOUSE_DATABASE_URL '
      + '(postgres://…) as well, or unset GATEHOUSE_NATS_URL to run one process on SQLite', 'GATEHOUSE_DATABASE_URL');
  }
  return {
    dataDir: path.resolve(cwd, value('GATEHOUSE_DATA_DIR') ?? './data'),
    http: {
      host: parseHost('GATEHOUSE_HTTP_HOST', value('GATEHOUSE_HTTP_HOST') ?? '127.0.0.1'),
      port: parsePort('GATEHOUSE_HTTP_PORT', value('GATEHOUSE_HTTP_PORT') ?? '8080'),
    },
    mqttHost: parseHost('GATEHOUSE_MQTT_HOST', value('GATEHOUSE_MQTT_HOST') ?? '0.0.0.0'),
    publicHost: parseHost('GATEHOUSE_PUBLIC_HOST', value('GATEHOUSE_PUBLIC_HOST') ?? 'localhost'),
    adminToken: parseAdminToken(value('GATEHOUSE_ADMIN_TOKEN')),
    masterKey: parseMasterKey('GATEHOUSE_MASTER_KEY', value('GATEHOUSE_MASTER_KEY')),
    databaseUrl,
    natsUrl,
    nodeId: parseNodeId(value('GATEHOUSE_NODE_ID'), workers),
    // 1 MiB to 1 TiB; every node of a cluster should say the same (the last node to start sets the stream's size).
    clusterStreamMaxBytes: parseCount('GATEHOUSE_CLUSTER_STREAM_MAX_MB', value('GATEHOUSE_CLUSTER_STREAM_MAX_MB') ?? '1024', 1, 1_048_576) * 1024 * 1024,
    workers,
    logLevel: parseLogLevel(value('GATEHOUSE_LOG_LEVEL') ?? 'info'),
    messages: {
      perDevice: parseCount('GATEHOUSE_MESSAGES_PER_DEVICE', value('GATEHOUSE_MESSAGES_PER_DEVICE') ?? '100', 1, 100_000),
      maxAgeHours: parseCount('GATEHOUSE_MESSAGES_MAX_AGE_HOURS', value('GATEHOUSE_MESSAGES_MAX_AGE_HOURS') ?? '168', 1, 87_600),
    },
    deviceProperties: {
      maxCount: parseCount('GATEHOUSE_DEVICE_MAX_PROPERTIES', value('GATEHOUSE_DEVICE_MAX_PROPERTIES') ?? '500', 1, 100_000),
      maxBytes: parseCount('GATEHOUSE_DEVICE_MAX_PROPERTIES_BYTES', value('GATEHOUSE_DEVICE_MAX_PROPERTIES_BYTES') ?? '65536', 256, 16 * 1024 * 1024),
    },
    demo: {
      enabled: parseOnOff('GATEHOUSE_DEMO', value('GATEHOUSE_DEMO') ?? 'on'),
      // A gateway's port rule (1024-65535): checked here so a bad value is a config error, not a crash after start.
      port: parseCount('GATEHOUSE_DEMO_PORT', value('GATEHOUSE_DEMO_PORT') ?? '8883', 1024, 65535),
    },
    passwordScryptN: parseScryptN('GATEHOUSE_PASSWORD_SCRYPT_N', value('GATEHOUSE_PASSWORD_SCRYPT_N') ?? String(DEFAULT_SCRYPT_COST.N)),
    connectionEvents: {
      perGateway: parseCount('GATEHOUSE_EVENTS_PER_GATEWAY', value('GATEHOUSE_EVENTS_PER_GATEWAY') ?? '10000', 10, 10_000_000),
      maxAgeHours: parseCount('GATEHOUSE_EVENTS_MAX_AGE_HOURS', value('GATEHOUSE_EVENTS_MAX_AGE_HOURS') ?? '168', 1, 87_600),
    },
  };
}

function invalid(key: string, why: string): GatehouseError {
  return new GatehouseError('GW_ERR_CONFIG_INVALID', `${key} ${why}`, key);
}

/** The environment wins over the file, so one variable can override a shared file. */
function withConfigFile(env: NodeJS.ProcessEnv, cwd: string): NodeJS.ProcessEnv {
  const file = env.GATEHOUSE_CONFIG_FILE?.trim();
  if (!file) return env;
  let text: string;
  try {
    text = readFileSync(path.resolve(cwd, file), 'utf8');
  } catch (error) {
    throw invalid('GATEHOUSE_CONFIG_FILE', `cannot be read: ${(error as Error).message}`);
  }
  const fromFile: Record<string, string> = {};
  for (const [index, rawLine] of text.split(/\r?\n/).entries()) {
    const line = rawLine.trim();
    if (line === '' || line.startsWith('#')) continue;
    const match = /^(?:export\s+)?([A-Z0-9_]+)\s*=\s*(.*)$/.exec(line);
    if (!match) throw invalid('GATEHOUSE_CONFIG_FILE', `line ${index + 1} is not KEY=value`);
    const [, key = '', rawValue = ''] = match;
    if (!(CONFIG_KEYS as readonly string[]).includes(key)) {
      throw invalid('GATEHOUSE_CONFIG_FILE', `line ${index + 1}: unknown key ${key}`);
    }
    fromFile[key] = rawValue.replace(/^(['"])(.*)\1$/, '$2');
  }
  const merged: NodeJS.ProcessEnv = { ...fromFile };
  for (const [key, val] of Object.entries(env)) if (val !== undefined && val !== '') merged[key] = val;
  return merged;
}

function parseCount(key: string, raw: string, min: number, max: number): number {
  if (!/^\d{1,9}$/.test(raw) || Number(raw) < min || Number(raw) > max) throw invalid(key, `must be an integer ${min}-${max}, got "${raw}"`);
  return Number(raw);
}

function parseOnOff(key: string, raw: string): boolean {
  if (raw !== 'on' && raw !== 'off') throw invalid(key, `must be on or off, got "${raw}"`);
  return raw === 'on';
}

function parseScryptN(key: string, raw: string): number {
  const n = parseCount(key, raw, MIN_SCRYPT_N, MAX_SCRYPT_N);
  if ((n & (n - 1)) !== 0) throw invalid(key, `must be a power of two (${MIN_SCRYPT_N}, ${MIN_SCRYPT_N * 2}, … ${MAX_SCRYPT_N}), got "${raw}"`);
  return n;
}

function parsePort(key: string, raw: string): number {
  // 0 asks the OS for a free port: tests and side-by-side runs use it.
  if (!/^\d{1,5}$/.test(raw) || Number(raw) > 65535) throw invalid(key, `must be a port number 0-65535, got "${raw}"`);
  return Number(raw);
}

const HOST_NAME = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/;

function parseHost(key: string, raw: string): string {
  const unbracketed = raw.startsWith('[') && raw.endsWith(']') ? raw.slice(1, -1) : raw;
  if (isIP(unbracketed) !== 0 || HOST_NAME.test(raw)) return unbracketed;
  throw invalid(key, `must be a host name or an IP address (no scheme, no port), got "${raw}"`);
}

function parseAdminToken(raw: string | undefined): string | undefined {
  if (raw === undefined) return undefined;
  if (raw.length < MIN_ADMIN_TOKEN_LENGTH || !/^[\x21-\x7e]+$/.test(raw)) {
    throw invalid('GATEHOUSE_ADMIN_TOKEN', `must be at least ${MIN_ADMIN_TOKEN_LENGTH} printable characters without spaces`);
  }
  return raw;
}

/** 32 bytes, written as 64 hex digits or as base64 (with or without padding, standard or URL alphabet). */
export function parseMasterKey(key: string, raw: string | undefined): Buffer | undefined {
  if (raw === undefined) return undefined;
  let bytes: Buffer | undefined;
  if (/^[0-9a-fA-F]{64}$/.test(raw)) bytes = Buffer.from(raw, 'hex');
  else if (/^[A-Za-z0-9+/_-]{43}=?$/.test(raw)) bytes = Buffer.from(raw.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
  if (bytes?.length !== 32) throw invalid(key, 'must be 32 bytes written as 64 hex digits or base64');
  return bytes;
}

function parseUrl(key: string, raw: string | undefined, protocols: readonly string[]): string | undefined {
  if (raw === undefined) return undefined;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw invalid(key, 'is not a valid URL');
  }
  if (!protocols.includes(url.protocol)) throw invalid(key, `must start with ${protocols.map((p) => `${p}//`).join(' or ')}`);
  return raw;
}

/** NATS takes a comma-separated list of servers. */
function parseNatsUrls(raw: string | undefined): string | undefined {
  if (raw === undefined) return undefined;
  for (const server of raw.split(',')) parseUrl('GATEHOUSE_NATS_URL', server.trim(), ['nats:', 'tls:']);
  return raw;
}

/** A node id is a NATS subject token and a key of the nodes bucket: letters, digits, `_` and `-`. */
export const NODE_ID = /^[A-Za-z0-9_-]{1,64}$/;

/** A worker's node id is the node's with `-w<index>` after it (workerNodeId), within the 64 characters of any node id. */
export const MAX_WORKERS = 64;
export const WORKER_NODE_ID_SUFFIX_LENGTH = `-w${MAX_WORKERS}`.length;

export function workerNodeId(nodeId: string, index: number): string {
  return `${nodeId}-w${index}`;
}

function parseNodeId(raw: string | undefined, workers: number | undefined): string | undefined {
  if (raw === undefined) return undefined;
  if (!NODE_ID.test(raw)) throw invalid('GATEHOUSE_NODE_ID', `must be 1-64 letters, digits, _ or -, got "${raw}"`);
  if (workers !== undefined && raw.length > 64 - WORKER_NODE_ID_SUFFIX_LENGTH) {
    throw invalid('GATEHOUSE_NODE_ID', `must be at most ${64 - WORKER_NODE_ID_SUFFIX_LENGTH} characters with GATEHOUSE_WORKERS `
      + `(each worker's node id adds -w<index>), got ${raw.length}`);
  }
  return raw;
}

/**
 * A positive integer or `auto` (one per core the process may use). Capped at MAX_WORKERS: each worker is a whole
 * node (its own NATS connection, lease, PostgreSQL pool and engines), and more processes than cores only share them.
 */
function parseWorkers(raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  if (raw.toLowerCase() === 'auto') return Math.min(availableParallelism(), MAX_WORKERS);
  if (!/^\d{1,9}$/.test(raw) || Number(raw) < 1 || Number(raw) > MAX_WORKERS) {
    throw invalid('GATEHOUSE_WORKERS', `must be auto or an integer 1-${MAX_WORKERS}, got "${raw}"`);
  }
  return Number(raw);
}

function parseLogLevel(raw: string): LogLevel {
  const level = raw.toLowerCase();
  if (!(LOG_LEVELS as readonly string[]).includes(level)) {
    throw invalid('GATEHOUSE_LOG_LEVEL', `must be one of ${LOG_LEVELS.join(', ')}, got "${raw}"`);
  }
  return level as LogLevel;
}
