/**
 * Ids for messages and stream events that sort by arrival: a millisecond timestamp, then a process
 * counter, then randomness (so two nodes never collide). Lexical order = time order, which lets the
 * store page and prune on the primary key and the stream resume "after id X".
 */
import { randomBytes } from 'node:crypto';

let counter = 0;

export function newEventId(now = Date.now()): string {
  counter = (counter + 1) % 0x1000000;
  return `${now.toString(36).padStart(9, '0')}${counter.toString(36).padStart(5, '0')}${randomBytes(3).toString('hex')}`;
}
