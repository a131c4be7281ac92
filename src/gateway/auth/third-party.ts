/**
 * What the two third-party providers (verification function, HTTPS service) share: the facts of a
 * CONNECT they hand to the customer's logic, and the counters the metrics endpoint reads.
 */
import type { DeviceCertificateInfo } from '../../registry/types.ts';
import type { Credential } from './authenticator.ts';

export type CallResult = 'accept' | 'reject' | 'failure';
export type BreakerState = 'closed' | 'open' | 'half_open';

/** Counters of one provider instance (a plain object, copied into Prometheus at scrape time). */
export interface ThirdPartyStats {
  provider: 'FUNCTION' | 'HTTPS';
  /** Answers given to CONNECTs, cache hits included. */
  calls: Record<CallResult, number>;
  /** Failures by kind: timeout, http_5xx, network, bad_response, breaker_open, memory, threw … */
  failures: Record<string, number>;
  cacheHits: { accept: number; reject: number };
  breaker: BreakerState;
  /** Times the breaker opened. */
  breakerOpened: number;
}

export function newStats(provider: ThirdPartyStats['provider']): ThirdPartyStats {
  return { provider, calls: { accept: 0, reject: 0, failure: 0 }, failures: {}, cacheHits: { accept: 0, reject: 0 }, breaker: 'closed', breakerOpened: 0 };
}

export function countFailure(stats: ThirdPartyStats, kind: string): void {
  stats.calls.failure++;
  stats.failures[kind] = (stats.failures[kind] ?? 0) + 1;
}

/** The verified client certificate (X.509 on), as the CONNECT pipeline's certificate step found it. */
export function peerCertificate(credential: Credential): DeviceCertificateInfo | null {
  return credential.certificate ?? null;
}

/** MQTT 5 user properties with one value per key (the first of a repeated key). */
export function firstUserProperties(credential: Credential): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(credential.userProperties ?? {})) {
    const first = Array.isArray(value) ? value[0] : value;
    if (typeof first === 'string') out[key] = first;
  }
  return out;
}
