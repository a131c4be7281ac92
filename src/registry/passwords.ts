/**
 * Device passwords: salted scrypt hashes, verified in constant time.
 *
 * Default cost N=2^12 (r=8, p=1, 4 MiB), chosen against a fleet reconnecting after a restart (every
 * device then costs one hash): docs/benchmarks.md has the figures. GATEHOUSE_PASSWORD_SCRYPT_N changes
 * it; the parameters are stored in each hash, so old hashes keep verifying and are rewritten at the
 * current cost at the next successful login (needsRehash).
 */
import { randomBytes, scrypt as scryptCallback, timingSafeEqual, type ScryptOptions } from 'node:crypto';

const PREFIX = 'scrypt';
const KEY_BYTES = 32;
const SALT_BYTES = 16;
/**
 * Shorter parts than these are a damaged or forged row, never a hash we wrote. The key's floor matters
 * most: scrypt asked for 0 bytes derives nothing, and nothing compares equal to an empty stored key, so
 * a hash with an empty key part would accept any password.
 */
const MIN_KEY_BYTES = 16;
const MIN_SALT_BYTES = 8;

export interface ScryptCost {
  N: number;
  r: number;
  p: number;
}
export const DEFAULT_SCRYPT_COST: ScryptCost = { N: 4096, r: 8, p: 1 };
/** The N an operator may choose (GATEHOUSE_PASSWORD_SCRYPT_N); parseHash accepts the same range. */
export const MIN_SCRYPT_N = 2 ** 10;
export const MAX_SCRYPT_N = 2 ** 20;

function scrypt(password: string | Buffer, salt: Buffer, keyLength: number, options: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scryptCallback(password, salt, keyLength, options, (error, key) => (error ? reject(error) : resolve(key)));
  });
}

/** `scrypt$N$r$p$<salt base64>$<hash base64>`. */
export async function hashPassword(password: string | Buffer, cost: ScryptCost = DEFAULT_SCRYPT_COST): Promise<string> {
  const salt = randomBytes(SALT_BYTES);
  const key = await scrypt(password, salt, KEY_BYTES, { ...cost, maxmem: 256 * cost.N * cost.r });
  return [PREFIX, cost.N, cost.r, cost.p, salt.toString('base64'), key.toString('base64')].join('$');
}

interface ParsedHash {
  N: number;
  r: number;
  p: number;
  salt: Buffer;
  key: Buffer;
}

function parseHash(hash: string): ParsedHash | undefined {
  const parts = hash.split('$');
  if (parts.length !== 6 || parts[0] !== PREFIX) return undefined;
  const [N, r, p] = parts.slice(1, 4).map(Number) as [number, number, number];
  // Bounds keep a corrupted or hostile row from asking scrypt for gigabytes.
  if (![N, r, p].every(Number.isSafeInteger) || N < 2 || N > MAX_SCRYPT_N || (N & (N - 1)) !== 0 || r < 1 || r > 32 || p < 1 || p > 16) {
    return undefined;
  }
  const salt = Buffer.from(parts[4] ?? '', 'base64');
  const key = Buffer.from(parts[5] ?? '', 'base64');
  if (salt.length < MIN_SALT_BYTES || key.length < MIN_KEY_BYTES) return undefined;
  return { N, r, p, salt, key };
}

/**
 * True when `hash` is a well-formed hash made at another cost than `cost`: after a login proved the
 * password, it is worth hashing again at the current cost (stored hashes keep the cost they were made at).
 */
export function needsRehash(hash: string, cost: ScryptCost): boolean {
  const parsed = parseHash(hash);
  return parsed !== undefined && (parsed.N !== cost.N || parsed.r !== cost.r || parsed.p !== cost.p);
}

const dummyHashes = new Map<string, Promise<string>>();

/**
 * The hash an unknown username is checked against: one per cost, made once per process from a random
 * password, so it costs the time a wrong password costs and matches nothing a device can send.
 */
export function dummyHash(cost: ScryptCost): Promise<string> {
  const key = `${cost.N}$${cost.r}$${cost.p}`;
  let dummy = dummyHashes.get(key);
  if (dummy === undefined) dummyHashes.set(key, dummy = hashPassword(randomBytes(16).toString('hex'), cost));
  return dummy;
}

/**
 * True when `password` matches `hash`. With no hash (unknown username) a dummy made at `cost` (the
 * current one) is checked, so the answer takes as long as for a wrong password and does not reveal which
 * usernames exist.
 */
export async function verifyPassword(hash: string | undefined, password: string | Buffer, cost: ScryptCost = DEFAULT_SCRYPT_COST): Promise<boolean> {
  const parsed = parseHash(hash ?? await dummyHash(cost));
  if (!parsed) return false;
  const derived = await scrypt(password, parsed.salt, parsed.key.length, {
    N: parsed.N, r: parsed.r, p: parsed.p, maxmem: 256 * parsed.N * parsed.r,
  });
  return derived.length >= MIN_KEY_BYTES && timingSafeEqual(derived, parsed.key) && hash !== undefined;
}
