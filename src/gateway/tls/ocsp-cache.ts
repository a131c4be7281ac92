/**
 * How long an OCSP answer is kept (DESIGN.md "Contracts decided": until `nextUpdate`, clamped to
 * 5 min … 1 h) and the cache of client-certificate answers, keyed by issuer and serial (the CertID of
 * RFC 6960 §4.1.1 without the hash algorithm).
 */
import type { X509Certificate } from 'node:crypto';
import type { OcspCertStatus } from './ocsp-fetch.ts';

/** The clock and the bounds the OCSP code works with; tests shorten them. */
export interface OcspTimings {
  /** Lower bound of how long an answer is kept. */
  minCacheMs: number;
  /** Upper bound of how long an answer is kept. */
  maxCacheMs: number;
  /** Whole-exchange timeout of one responder request. */
  fetchTimeoutMs: number;
  /** First retry after a failed fetch of the server's response (doubles up to `minCacheMs`). */
  retryMs: number;
  /** How often connected devices are looked at for an expired status. */
  recheckIntervalMs: number;
}

export const DEFAULT_OCSP_TIMINGS: OcspTimings = {
  minCacheMs: 5 * 60_000,
  maxCacheMs: 60 * 60_000,
  fetchTimeoutMs: 5_000,
  retryMs: 10_000,
  recheckIntervalMs: 30_000,
};

/** When an answer fetched at `now` expires: `nextUpdate` clamped to [min, max] from now; min when absent. */
export function cacheUntil(nextUpdate: Date | undefined, now: number, timings: Pick<OcspTimings, 'minCacheMs' | 'maxCacheMs'>): number {
  if (nextUpdate === undefined) return now + timings.minCacheMs;
  const lifetime = Math.min(Math.max(nextUpdate.getTime() - now, timings.minCacheMs), timings.maxCacheMs);
  return now + lifetime;
}

/** The cache key of a certificate: its issuer's name and its serial. */
export function certKey(cert: X509Certificate): string {
  return `${cert.issuer}\u0000${cert.serialNumber}`;
}

/** A client-certificate status the gateway holds. `responder_error` entries are not cached. */
export interface CachedStatus {
  status: OcspCertStatus;
  expiresAt: number;
}

export class OcspStatusCache {
  readonly #entries = new Map<string, CachedStatus>();
  readonly #maxEntries: number;

  constructor(maxEntries = 100_000) {
    this.#maxEntries = maxEntries;
  }

  /** A live entry, or undefined (an expired one is dropped). */
  get(key: string, now: number): CachedStatus | undefined {
    const entry = this.#entries.get(key);
    if (entry === undefined) return undefined;
    if (entry.expiresAt <= now) {
      this.#entries.delete(key);
      return undefined;
    }
    return entry;
  }

  set(key: string, entry: CachedStatus): void {
    // Oldest-inserted first out: a bound on memory, not an LRU (entries expire within the hour anyway).
    if (this.#entries.size >= this.#maxEntries && !this.#entries.has(key)) {
      const oldest = this.#entries.keys().next().value;
      if (oldest !== undefined) this.#entries.delete(oldest);
    }
    this.#entries.delete(key);
    this.#entries.set(key, entry);
  }

  get size(): number {
    return this.#entries.size;
  }

  clear(): void {
    this.#entries.clear();
  }
}
