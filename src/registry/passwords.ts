/**
 * Device passwords: salted scrypt hashes, verified in constant time.
 *
 * Cost N=2^12 (r=8, p=1, 4 MiB): measured here at about 5.7 ms per hash on one core, so a 10,000-row
 * import hashes in about 30 s on 2 cores, and an uncached CONNECT costs a few ms. N=2^14 made the same
 * import take almost 3 minutes. The parameters are stored in each hash, so a later cost increase applies
 * to new passwords without breaking old ones.
 */
import { randomBytes, scrypt as scryptCallback, timingSafeEqual, type ScryptOptions } from 'node:crypto';

const PREFIX = 'scrypt';
const KEY_BYTES = 32;
const SALT_BYTES = 16;
export const DEFAULT_SCRYPT_COST = { N: 4096, r: 8, p: 1 } as const;

function scrypt(password: string | Buffer, salt: Buffer, keyLength: number, options: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scryptCallback(password, salt, keyLength, options, (error, key) => (error ? reject(error) : resolve(key)));
  });
}

/** `scrypt$N$r$p$<salt base64>$<hash base64>`. */
export async function hashPassword(password: string, cost: { N: number; r: number; p: number } = DEFAULT_SCRYPT_COST): Promise<string> {
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
  if (![N, r, p].every(Number.isSafeInteger) || N < 2 || N > 2 ** 20 || (N & (N - 1)) !== 0 || r < 1 || r > 32 || p < 1 || p > 16) {
    return undefined;
  }
  const salt = Buffer.from(parts[4] ?? '', 'base64');
  const key = Buffer.from(parts[5] ?? '', 'base64');
  if (salt.length === 0 || key.length === 0) return undefined;
  return { N, r, p, salt, key };
}

let dummyHash: Promise<string> | undefined;

/**
 * True when `password` matches `hash`. With no hash (unknown username) a dummy is checked, so the answer
 * takes as long as for a wrong password and does not reveal which usernames exist.
 */
export async function verifyPassword(hash: string | undefined, password: string | Buffer): Promise<boolean> {
  const parsed = parseHash(hash ?? await (dummyHash ??= hashPassword(randomBytes(16).toString('hex'))));
  if (!parsed) return false;
  const derived = await scrypt(password, parsed.salt, parsed.key.length, {
    N: parsed.N, r: parsed.r, p: parsed.p, maxmem: 256 * parsed.N * parsed.r,
  });
  return timingSafeEqual(derived, parsed.key) && hash !== undefined;
}
