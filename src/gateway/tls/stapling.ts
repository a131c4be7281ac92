/**
 * OCSP stapling for a gateway's server certificate (modes SERVER and SERVER_AND_CLIENT; RFC 6066 §8
 * status_request). The response is fetched from the responder in the certificate's AIA extension,
 * verified against the gateway's trusted certificate, kept until `nextUpdate` clamped to 5 min … 1 h,
 * and refreshed at three quarters of that time. Only a fresh, verified `good` response is stapled:
 * while the responder cannot be reached the last good one is stapled until it goes stale, then
 * stapling pauses until a fresh response arrives. The tls `'OCSPRequest'` event fires on every
 * handshake that asks, so it is answered from memory, never from the network.
 */
import type { X509Certificate } from 'node:crypto';
import type { Logger } from '../../core/logger.ts';
import type { OcspServerState } from '../../registry/ports.ts';
import { cacheUntil, type OcspTimings } from './ocsp-cache.ts';
import { fetchOcsp, OcspFetchError, type OcspAnswer } from './ocsp-fetch.ts';
import { issuedBy } from './chain-verify.ts';
import { parsePemBundle } from './x509-identity.ts';

/** What the API view and metrics show of a gateway's stapling. */
export type StaplingState = OcspServerState;

export interface StaplerOptions {
  chainPem: string;
  trustedPem: string | null;
  timings: OcspTimings;
  log: Logger;
  /** Counters that outlive this stapler (a rotated certificate gets a new stapler, not new counters). */
  counters?: StaplingCounters;
  now?: () => number;
}

export interface StaplingCounters {
  served: number;
  errors: Record<string, number>;
  lastError: { at: string; reason: string } | null;
}

interface Kept {
  answer: OcspAnswer;
  fetchedAt: number;
  expiresAt: number;
}

export class OcspStapler {
  readonly #leaf: X509Certificate | undefined;
  readonly #issuer: X509Certificate | undefined;
  readonly #intermediates: X509Certificate[];
  readonly #trusted: X509Certificate[];
  readonly #options: StaplerOptions;
  readonly #now: () => number;
  #kept: Kept | null = null;
  #timer: NodeJS.Timeout | null = null;
  #nextRefreshAt: number | null = null;
  #failures = 0;
  #stopped = false;
  readonly #counters: StaplingCounters;

  constructor(options: StaplerOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.#counters = options.counters ?? { served: 0, errors: {}, lastError: null };
    const chain = parsePemBundle(options.chainPem);
    this.#trusted = parsePemBundle(options.trustedPem);
    this.#leaf = chain[0];
    this.#intermediates = chain.slice(1);
    const leaf = this.#leaf;
    this.#issuer = leaf === undefined ? undefined : [...this.#intermediates, ...this.#trusted].find((c) => issuedBy(leaf, c));
  }

  /** Fetches the first response at once; later ones on schedule. */
  start(): void {
    this.#schedule(0);
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    this.#nextRefreshAt = null;
  }

  /** The `'OCSPRequest'` listener of the tls.Server: the response for `certificate`, or none. */
  handle(certificate: Buffer, callback: (err: Error | null, response?: Buffer) => void): void {
    const response = this.#staplable(certificate);
    if (response === undefined) {
      callback(null);
      return;
    }
    this.#counters.served++;
    callback(null, response);
  }

  state(): StaplingState {
    const now = this.#now();
    const kept = this.#kept;
    const stapling = this.#leaf !== undefined && this.#staplable(this.#leaf.raw, now) !== undefined;
    return {
      stapling,
      certStatus: kept?.answer.status ?? null,
      thisUpdate: kept?.answer.thisUpdate.toISOString() ?? null,
      nextUpdate: kept?.answer.nextUpdate?.toISOString() ?? null,
      fetchedAt: kept === null ? null : new Date(kept.fetchedAt).toISOString(),
      ageSeconds: kept === null ? null : Math.max(0, Math.round((now - kept.answer.thisUpdate.getTime()) / 1000)),
      expiresAt: kept === null ? null : new Date(kept.expiresAt).toISOString(),
      nextRefreshAt: this.#nextRefreshAt === null ? null : new Date(this.#nextRefreshAt).toISOString(),
      staplesServed: this.#counters.served,
      responderErrors: { ...this.#counters.errors },
      lastError: this.#counters.lastError,
    };
  }

  #staplable(certificate: Buffer, now = this.#now()): Buffer | undefined {
    const kept = this.#kept;
    if (kept === null || this.#leaf === undefined || !certificate.equals(this.#leaf.raw)) return undefined;
    if (kept.answer.status !== 'good') return undefined;
    // Never a stale response: our own keep time, and the responder's nextUpdate if it is earlier.
    if (now >= kept.expiresAt) return undefined;
    if (kept.answer.nextUpdate !== undefined && now >= kept.answer.nextUpdate.getTime()) return undefined;
    return kept.answer.der;
  }

  #schedule(delayMs: number): void {
    if (this.#stopped) return;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#nextRefreshAt = this.#now() + delayMs;
    this.#timer = setTimeout(() => void this.#refresh(), delayMs);
    this.#timer.unref();
  }

  async #refresh(): Promise<void> {
    this.#timer = null;
    const { timings, log } = this.#options;
    const leaf = this.#leaf;
    const issuer = this.#issuer;
    try {
      if (leaf === undefined) throw new OcspFetchError('no_status', 'no server certificate');
      if (issuer === undefined) throw new OcspFetchError('unverified', 'the issuer of the server certificate is neither in the chain nor the trusted certificate');
      const answer = await fetchOcsp({ cert: leaf, issuer, trusted: this.#trusted, intermediates: this.#intermediates, timeoutMs: timings.fetchTimeoutMs });
      if (this.#stopped) return;
      const fetchedAt = this.#now();
      const expiresAt = cacheUntil(answer.nextUpdate, fetchedAt, timings);
      this.#kept = { answer, fetchedAt, expiresAt };
      this.#failures = 0;
      if (answer.status !== 'good') {
        log.error({ certStatus: answer.status, serial: leaf.serialNumber }, 'ocsp_server_certificate_not_good');
      } else {
        log.debug({ nextUpdate: answer.nextUpdate?.toISOString() }, 'ocsp_staple_refreshed');
      }
      // Refresh before the kept response (or the responder's nextUpdate) runs out.
      const freshUntil = Math.min(expiresAt, answer.nextUpdate?.getTime() ?? expiresAt);
      this.#schedule(Math.max(1000, Math.floor((freshUntil - fetchedAt) * 0.75)));
    } catch (error) {
      if (this.#stopped) return;
      const code = error instanceof OcspFetchError ? error.code : 'internal';
      const reason = error instanceof Error ? error.message : String(error);
      this.#counters.errors[code] = (this.#counters.errors[code] ?? 0) + 1;
      this.#counters.lastError = { at: new Date(this.#now()).toISOString(), reason: `${code}: ${reason}` };
      this.#failures++;
      const retry = Math.min(timings.retryMs * 2 ** (this.#failures - 1), timings.minCacheMs);
      log.warn({ code, reason, retryMs: retry, stillStapling: this.state().stapling }, 'ocsp_responder_error');
      this.#schedule(retry);
    }
  }
}
