/**
 * Remembered answers of the verification service, keyed by a digest of the request body (so the
 * password is not kept in the clear). Accepts and rejects have their own lifetimes; backend failures
 * are never cached. Oldest entries go first when the cache is full.
 */
import { createHmac, randomBytes } from 'node:crypto';
import type { AclRule } from '../../../registry/access-control.ts';

export type CachedAnswer =
  | { kind: 'accept'; deviceName: string; acl?: AclRule[] }
  | { kind: 'reject'; reason: string };

interface Entry {
  answer: CachedAnswer;
  expiresAt: number;
}

export class ResultCache {
  readonly #acceptTtlMs: number;
  readonly #rejectTtlMs: number;
  readonly #maxEntries: number;
  readonly #entries = new Map<string, Entry>();
  /** Per-process: digests are useless outside this process. */
  readonly #key = randomBytes(32);

  constructor(acceptTtlMs: number, rejectTtlMs: number, maxEntries = 100_000) {
    this.#acceptTtlMs = acceptTtlMs;
    this.#rejectTtlMs = rejectTtlMs;
    this.#maxEntries = maxEntries;
  }

  keyOf(requestBody: string): string {
    return createHmac('sha256', this.#key).update(requestBody).digest('base64');
  }

  get(key: string, now = Date.now()): CachedAnswer | undefined {
    const entry = this.#entries.get(key);
    if (entry === undefined) return undefined;
    if (entry.expiresAt <= now) {
      this.#entries.delete(key);
      return undefined;
    }
    return entry.answer;
  }

  put(key: string, answer: CachedAnswer, now = Date.now()): void {
    const ttl = answer.kind === 'accept' ? this.#acceptTtlMs : this.#rejectTtlMs;
    if (ttl <= 0) return;
    this.#entries.delete(key);
    this.#entries.set(key, { answer, expiresAt: now + ttl });
    if (this.#entries.size > this.#maxEntries) this.#entries.delete(this.#entries.keys().next().value!);
  }

  get size(): number {
    return this.#entries.size;
  }
}
