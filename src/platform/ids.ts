/**
 * Ids for messages and stream events that sort by arrival: a millisecond timestamp, then a process
 * counter, then randomness (so two nodes never collide). Lexical order = time order, which lets the
 * store page and prune on the primary key and the stream resume "after id X".
 */
import { randomFillSync } from 'node:crypto';

let counter = 0;

/**
 * The random suffixes are drawn from a pool filled for 1,024 ids at a time: one `randomBytes(3)` per id was a
 * call into OpenSSL per message, 12 % of the process's CPU under a fast publisher (`npm run bench:abuse`).
 */
export const RANDOM_POOL_SIZE = 1024;
const pool = new Uint8Array(RANDOM_POOL_SIZE * 3);
let next = pool.length;
const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/** Six hex digits from the pool. */
function randomSuffix(): string {
  if (next === pool.length) {
    randomFillSync(pool);
    next = 0;
  }
  const suffix = HEX[pool[next]!]! + HEX[pool[next + 1]!]! + HEX[pool[next + 2]!]!;
  next += 3;
  return suffix;
}

/**
 * The timestamp's digits, kept for the millisecond they were made for: every uplink gets an id, and
 * formatting the time for each was most of the id's cost (with the suffix, ~12 % of the engine's CPU at
 * saturation with the platform's tap on: a profile of `npm run bench`'s gatehouse-tap, qos0-tls).
 */
let prefixMs = -1;
let prefix = '';

export function newEventId(now = Date.now()): string {
  if (now !== prefixMs) {
    prefixMs = now;
    prefix = now.toString(36).padStart(9, '0');
  }
  counter = (counter + 1) % 0x1000000;
  return prefix + counter.toString(36).padStart(5, '0') + randomSuffix();
}
