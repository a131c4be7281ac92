/** Identifiers the registry hands out. Random, so they reveal neither count nor order. */
import { randomInt } from 'node:crypto';

const LOWER_ALNUM = 'abcdefghijklmnopqrstuvwxyz0123456789';
const BASE62 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

function randomString(alphabet: string, length: number): string {
  let out = '';
  for (let i = 0; i < length; i++) out += alphabet[randomInt(alphabet.length)];
  return out;
}

/** 16 lowercase letters and digits (about 82 bits); the product is named `Gateway<id>`. */
export function newGatewayId(): string {
  return randomString(LOWER_ALNUM, 16);
}

/** 12 base62 characters, like the product keys of the platforms devices come from. */
export function newProductKey(): string {
  return randomString(BASE62, 12);
}
