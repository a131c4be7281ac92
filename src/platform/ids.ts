/**
 * Ids for messages and stream events that sort by arrival: a millisecond timestamp, then a process
 * counter, then randomness (so two nodes never collide). Lexical order = time order, which lets the
 * store page and prune on the primary key and the stream resume "after id X".
 */
import { randomFillSync } from 'node:crypto';

let counter = 0;

/**
 * The random suffixes are drawn from a pool filled 1,024 at a time: one `randomBytes(3)` per id was a
 * call into OpenSSL per message, 12 % of the process's CPU under a fast publisher (`npm run bench:abuse`).
 */
export const RANDOM_POOL_SIZE = 1024;
const pool = new Uint32Array(RANDOM_POOL_SIZE);
let next = RANDOM_POOL_SIZE;

function randomSuffix(): string {
  if (next === RANDOM_POOL_SIZE) {
    randomFillSync(pool);
    next = 0;
  }
  return (pool[next++]! & 0xffffff).toString(16).padStart(6, '0');
}

export function newEventId(now = Date.now()): string {
  counter = (counter + 1) % 0x1000000;
  return `${now.toString(36).padStart(9, '0')}${counter.toString(36).padStart(5, '0')}${randomSuffix()}`;
}
