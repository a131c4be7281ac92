import { createHash, createHmac, timingSafeEqual as nodeTimingSafeEqual } from 'node:crypto';

/*
 * The host side of `gatehouse.crypto`, run on the sandbox worker. Arguments arrive as copies read
 * out of the script's QuickJS memory, so nothing here can touch the script's heap, and results go
 * back as copies. Errors thrown here surface in
 * the script as the same TypeError, which it may catch.
 */

const ALGORITHMS = new Set(['md5', 'sha1', 'sha256', 'sha384', 'sha512']);
const ENCODINGS = new Set(['hex', 'base64', 'base64url', 'bytes']);

type Digest = string | Uint8Array;

function algorithm(value: unknown): string {
  // Accept the spellings operators paste from other platforms: "SHA-256", "HmacSHA256".
  const name = typeof value === 'string' ? value.toLowerCase().replace(/^hmac/, '').replace('-', '') : '';
  if (!ALGORITHMS.has(name)) {
    throw new TypeError(`unsupported algorithm ${JSON.stringify(value)}; use one of ${[...ALGORITHMS].join(', ')}`);
  }
  return name;
}

function bytes(value: unknown, what: string): Uint8Array {
  if (typeof value === 'string') return Buffer.from(value, 'utf8');
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  throw new TypeError(`${what} must be a string (UTF-8) or bytes (Uint8Array / ArrayBuffer)`);
}

function encode(digest: Buffer, encoding: unknown): Digest {
  const name = encoding ?? 'hex';
  if (typeof name !== 'string' || !ENCODINGS.has(name)) {
    throw new TypeError(`unsupported encoding ${JSON.stringify(encoding)}; use one of ${[...ENCODINGS].join(', ')}`);
  }
  // A fresh Uint8Array, never a view into a shared Buffer pool.
  return name === 'bytes' ? new Uint8Array(digest) : digest.toString(name as BufferEncoding);
}

export function hostHmac(alg: unknown, key: unknown, data: unknown, encoding?: unknown): Digest {
  return encode(createHmac(algorithm(alg), bytes(key, 'key')).update(bytes(data, 'data')).digest(), encoding);
}

export function hostHash(alg: unknown, data: unknown, encoding?: unknown): Digest {
  return encode(createHash(algorithm(alg)).update(bytes(data, 'data')).digest(), encoding);
}

/** Constant-time comparison for signatures; different lengths are simply unequal. */
export function hostTimingSafeEqual(a: unknown, b: unknown): boolean {
  const left = bytes(a, 'a');
  const right = bytes(b, 'b');
  return left.byteLength === right.byteLength && nodeTimingSafeEqual(left, right);
}
