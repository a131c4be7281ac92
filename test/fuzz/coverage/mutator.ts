/**
 * Byte-level mutations in the manner of AFL's havoc stage and libFuzzer's MutationDispatcher: a stack of
 * 1–8 small edits (bits, interesting values, arithmetic on one- and two-byte fields, inserted, deleted
 * and copied ranges), dictionary tokens, and crossover with other corpus inputs. MQTT's shape is served
 * by the two-byte big-endian arithmetic (string lengths, packet ids), the dictionary (packet headers,
 * property ids, protocol names) and splicing whole inputs, which are streams of frames.
 *
 * Every choice comes from a seeded PRNG, so a run is repeatable from its seed.
 */

/** mulberry32: small, fast, and the same sequence everywhere for one seed. */
export class Random {
  #state: number;
  constructor(seed: number) { this.#state = seed >>> 0; }
  next(): number {
    this.#state = (this.#state + 0x6d2b79f5) >>> 0;
    let t = this.#state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  }
  int(maxExclusive: number): number { return Math.floor(this.next() * maxExclusive); }
  chance(p: number): boolean { return this.next() < p; }
  pick<T>(items: readonly T[]): T { return items[this.int(items.length)] as T; }
  bytes(n: number): Buffer {
    const out = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i += 1) out[i] = this.int(256);
    return out;
  }
}

const INTERESTING_8 = [0x00, 0x01, 0x02, 0x7f, 0x80, 0x81, 0xfe, 0xff, 0x10, 0x20, 0x30, 0x3f, 0x40, 0xc0, 0xe0];
const INTERESTING_16 = [0x0000, 0x0001, 0x007f, 0x0080, 0x00ff, 0x0100, 0x7fff, 0x8000, 0xfffe, 0xffff];

export interface MutatorOptions {
  maxLength: number;
  dictionary: readonly Buffer[];
}

export class Mutator {
  readonly #rnd: Random;
  readonly #options: MutatorOptions;

  constructor(rnd: Random, options: MutatorOptions) {
    this.#rnd = rnd;
    this.#options = options;
  }

  /** A mutated copy of `input`; `other` is another corpus input for crossover. */
  mutate(input: Buffer, other: Buffer): Buffer {
    let out: Buffer = Buffer.from(input);
    const edits = 1 << this.#rnd.int(4); // 1, 2, 4 or 8 stacked edits, as havoc does
    for (let i = 0; i < edits; i += 1) out = this.#one(out, other);
    if (out.length === 0) out = this.#rnd.bytes(1 + this.#rnd.int(4));
    return out.length > this.#options.maxLength ? out.subarray(0, this.#options.maxLength) : out;
  }

  #one(b: Buffer, other: Buffer): Buffer {
    const rnd = this.#rnd;
    const at = (extra = 0): number => rnd.int(b.length + extra);
    switch (rnd.int(13)) {
      case 0: { // flip one bit
        if (b.length === 0) return b;
        const i = at();
        b[i] = (b[i] ?? 0) ^ (1 << rnd.int(8));
        return b;
      }
      case 1: { // an interesting byte
        if (b.length === 0) return b;
        b[at()] = rnd.pick(INTERESTING_8);
        return b;
      }
      case 2: { // a random byte
        if (b.length === 0) return b;
        b[at()] = rnd.int(256);
        return b;
      }
      case 3: { // small arithmetic on one byte (a Remaining Length, a flag, a property id)
        if (b.length === 0) return b;
        const i = at();
        b[i] = ((b[i] ?? 0) + rnd.int(35) - 17) & 0xff;
        return b;
      }
      case 4: { // a big-endian two-byte field: string lengths and packet ids
        if (b.length < 2) return b;
        const i = rnd.int(b.length - 1);
        const value = rnd.chance(0.5) ? rnd.pick(INTERESTING_16) : (b.readUInt16BE(i) + rnd.int(35) - 17) & 0xffff;
        b.writeUInt16BE(value, i);
        return b;
      }
      case 5: { // insert random bytes
        const i = at(1);
        return Buffer.concat([b.subarray(0, i), rnd.bytes(1 + rnd.int(8)), b.subarray(i)]);
      }
      case 6: { // delete a range
        if (b.length < 2) return b;
        const i = at();
        return Buffer.concat([b.subarray(0, i), b.subarray(i + 1 + rnd.int(Math.min(16, b.length - i)))]);
      }
      case 7: { // copy a range of itself elsewhere (repeats a field or a whole frame)
        if (b.length < 2) return b;
        const from = at();
        const piece = Buffer.from(b.subarray(from, from + 1 + rnd.int(Math.min(32, b.length - from))));
        const to = at(1);
        return Buffer.concat([b.subarray(0, to), piece, b.subarray(to)]);
      }
      case 8: { // insert a dictionary token
        if (this.#options.dictionary.length === 0) return b;
        const i = at(1);
        return Buffer.concat([b.subarray(0, i), rnd.pick(this.#options.dictionary), b.subarray(i)]);
      }
      case 9: { // overwrite with a dictionary token
        if (this.#options.dictionary.length === 0 || b.length === 0) return b;
        const token = rnd.pick(this.#options.dictionary);
        const i = at();
        token.copy(b, i, 0, Math.min(token.length, b.length - i));
        return b;
      }
      case 10: { // crossover: this input's head, the other's tail
        if (other.length === 0) return b;
        return Buffer.concat([b.subarray(0, at(1)), other.subarray(rnd.int(other.length))]);
      }
      case 11: // append the other input whole: more frames on one connection
        return Buffer.concat([b, other]);
      default: { // truncate: partial frames and early ends
        return b.subarray(0, at(1));
      }
    }
  }
}

/**
 * Reads a dictionary in libFuzzer's format: one `name="value"` (or `"value"`) per line, `\xNN`, `\\` and
 * `\"` escapes, `#` comments.
 */
export function parseDictionary(text: string): Buffer[] {
  const tokens: Buffer[] = [];
  for (const [lineNo, raw] of text.split('\n').entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const match = /^(?:[A-Za-z0-9_]+\s*=\s*)?"(.*)"$/.exec(line);
    if (match === null) throw new Error(`dictionary line ${lineNo + 1}: expected name="value": ${line}`);
    const body = match[1] ?? '';
    const bytes: number[] = [];
    for (let i = 0; i < body.length; i += 1) {
      const c = body[i] as string;
      if (c !== '\\') { bytes.push(...Buffer.from(c, 'utf8')); continue; }
      const next = body[i + 1];
      if (next === 'x') {
        bytes.push(Number.parseInt(body.slice(i + 2, i + 4), 16));
        i += 3;
      } else {
        bytes.push((next ?? '\\').charCodeAt(0));
        i += 1;
      }
    }
    tokens.push(Buffer.from(bytes));
  }
  return tokens;
}
