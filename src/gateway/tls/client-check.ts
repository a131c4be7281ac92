/**
 * OCSP for device certificates (modes CLIENT and SERVER_AND_CLIENT): asked after the TLS handshake and
 * before CONNACK, cached by issuer and serial for `nextUpdate` clamped to 5 min … 1 h, and asked again
 * for connected devices once their cached status expires, so that a revocation disconnects a device
 * without waiting for it to reconnect. Plain TLS never checks revocation (research/libraries.md §4).
 */
import type { X509Certificate } from 'node:crypto';
import { cacheUntil, certKey, OcspStatusCache, type OcspTimings } from './ocsp-cache.ts';
import { fetchOcsp, OcspFetchError, type OcspCertStatus } from './ocsp-fetch.ts';
import type { DeviceCertificate } from './x509-identity.ts';

export type ClientCheckResult = OcspCertStatus | 'responder_error';

export interface ClientCheckOutcome {
  result: ClientCheckResult;
  /** Answered from the cache, without asking the responder. */
  cached: boolean;
  /** Why the responder could not answer (`responder_error` only). */
  error?: string;
}

/** Counters since the gateway started, for metrics and the API view. */
export interface ClientCheckStats {
  checks: Record<ClientCheckResult, number>;
  cacheHits: number;
  /** Responder failures by kind (`timeout`, `unverified`, `stale` …). */
  responderErrors: Record<string, number>;
  lastError: { at: string; reason: string } | null;
  /** Connected devices disconnected because their certificate became revoked. */
  revokedWhileConnected: number;
}

export interface ClientCheckerOptions {
  /** The gateway's device root certificates: anchors for the responder's signing chain. */
  trusted: readonly X509Certificate[];
  timings: OcspTimings;
  /** Counters that outlive this checker (an edit that rebuilds it keeps them). */
  stats?: ClientCheckStats;
  now?: () => number;
}

export function emptyClientCheckStats(): ClientCheckStats {
  return { checks: { good: 0, revoked: 0, unknown: 0, responder_error: 0 }, cacheHits: 0, responderErrors: {}, lastError: null, revokedWhileConnected: 0 };
}

interface Watched {
  certificate: DeviceCertificate;
}

export class ClientOcspChecker {
  readonly #cache = new OcspStatusCache();
  readonly #inflight = new Map<string, Promise<ClientCheckOutcome>>();
  /** Certificates of connected devices, by SHA-256 fingerprint, for the re-checks. */
  readonly #watched = new Map<string, Watched>();
  readonly #options: ClientCheckerOptions;
  readonly #now: () => number;
  readonly stats: ClientCheckStats;

  constructor(options: ClientCheckerOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.stats = options.stats ?? emptyClientCheckStats();
  }

  get cacheSize(): number {
    return this.#cache.size;
  }

  /** The status of a device certificate, from the cache or its issuer's responder (AIA). */
  async check(certificate: DeviceCertificate): Promise<ClientCheckOutcome> {
    const key = certKey(certificate.leaf);
    const hit = this.#cache.get(key, this.#now());
    if (hit !== undefined) {
      this.stats.cacheHits++;
      this.stats.checks[hit.status]++;
      return { result: hit.status, cached: true };
    }
    // One request per certificate at a time: a reconnect storm of one device asks once.
    let pending = this.#inflight.get(key);
    if (pending === undefined) {
      pending = this.#ask(certificate, key).finally(() => this.#inflight.delete(key));
      this.#inflight.set(key, pending);
    }
    const outcome = await pending;
    this.stats.checks[outcome.result]++;
    return outcome;
  }

  /** Remember a connected device's certificate for re-checks. */
  watch(certificate: DeviceCertificate): void {
    this.#watched.set(certificate.info.fingerprint256, { certificate });
  }

  /**
   * Re-checks the certificates of connected devices (`connected`: their fingerprints) whose cached
   * status expired; forgets the others. Returns the fingerprints now known to be revoked. A responder
   * failure leaves a device connected: an outage must not drop a whole fleet.
   */
  async recheck(connected: ReadonlySet<string>): Promise<string[]> {
    const revoked: string[] = [];
    const now = this.#now();
    const due: Watched[] = [];
    for (const [fingerprint, watched] of this.#watched) {
      if (!connected.has(fingerprint)) this.#watched.delete(fingerprint);
      else if (this.#cache.get(certKey(watched.certificate.leaf), now) === undefined) due.push(watched);
    }
    await Promise.all(due.map(async (watched) => {
      const outcome = await this.check(watched.certificate);
      if (outcome.result === 'revoked') {
        revoked.push(watched.certificate.info.fingerprint256);
        this.#watched.delete(watched.certificate.info.fingerprint256);
        this.stats.revokedWhileConnected++;
      }
    }));
    return revoked;
  }

  async #ask(certificate: DeviceCertificate, key: string): Promise<ClientCheckOutcome> {
    try {
      const answer = await fetchOcsp({
        cert: certificate.leaf,
        issuer: certificate.issuer,
        trusted: this.#options.trusted,
        timeoutMs: this.#options.timings.fetchTimeoutMs,
      });
      const now = this.#now();
      this.#cache.set(key, { status: answer.status, expiresAt: cacheUntil(answer.nextUpdate, now, this.#options.timings) });
      return { result: answer.status, cached: false };
    } catch (error) {
      const code = error instanceof OcspFetchError ? error.code : 'internal';
      const reason = error instanceof Error ? error.message : String(error);
      this.stats.responderErrors[code] = (this.stats.responderErrors[code] ?? 0) + 1;
      this.stats.lastError = { at: new Date(this.#now()).toISOString(), reason: `${code}: ${reason}` };
      return { result: 'responder_error', cached: false, error: `${code}: ${reason}` };
    }
  }
}
