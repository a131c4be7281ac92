/**
 * Third-party verification by the customer's HTTPS service. One undici Agent per service keeps
 * connections alive between CONNECTs; TLS verification is always on (the gateway's CA certificate, when
 * set, replaces the system store). 2xx with a valid `deviceName` = accept; any 4xx or 2xx without one =
 * reject (the service refused that device: a 400 for a username it finds malformed is no outage); a
 * timeout, a 5xx, another status, a network error or an unreadable body = backend failure, which is never
 * an accept. Answers are cached (accepts longer than rejects); timeouts, network errors and 5xx from
 * many callers trip a circuit breaker.
 */
import { Agent, request } from 'undici';
import type { Logger } from '../../../core/logger.ts';
import { RC } from '../../../mqtt/reason-codes.ts';
import { checkedDeviceName, deviceAclOf, type HttpsProvider } from '../../../registry/index.ts';
import type { Authenticator, Credential, Decision } from '../authenticator.ts';
import { countFailure, newStats, type ThirdPartyStats } from '../third-party.ts';
import { BREAKER_DEFAULTS, CircuitBreaker, type BreakerOptions } from './circuit-breaker.ts';
import { ResultCache, type CachedAnswer } from './result-cache.ts';
import { signatureHeaders, verificationBody } from './verification-request.ts';
import { readBounded } from './read-bounded.ts';

/** Failures that are the service's fault, counted by the circuit breaker (issue 13). */
const BREAKER_FAILURES = new Set(['timeout', 'network', 'http_5xx']);

/** A verification answer is a small JSON object; anything bigger is not one. */
const MAX_RESPONSE_BYTES = 64 * 1024;

type Outcome = CachedAnswer | { kind: 'failure'; failure: string; detail: string };

export interface HttpsAuthOptions {
  breaker?: Partial<BreakerOptions>;
}

export class HttpsAuthenticator implements Authenticator {
  readonly id = 'https';
  readonly stats: ThirdPartyStats = newStats('HTTPS');
  readonly #config: HttpsProvider;
  readonly #agent: Agent;
  readonly #cache: ResultCache;
  readonly #breaker: CircuitBreaker;
  readonly #log: Logger;

  constructor(config: HttpsProvider, logger: Logger, options: HttpsAuthOptions = {}) {
    this.#config = config;
    this.#log = logger;
    this.#agent = new Agent({
      connect: { ...(config.caCertificate !== null ? { ca: config.caCertificate } : {}), rejectUnauthorized: true },
      keepAliveTimeout: 30_000,
    });
    this.#cache = new ResultCache(config.acceptCacheTtlSeconds * 1000, config.rejectCacheTtlSeconds * 1000);
    this.#breaker = new CircuitBreaker({ ...BREAKER_DEFAULTS, ...options.breaker }, (state) => {
      this.stats.breaker = state;
      if (state === 'open') this.stats.breakerOpened++;
      this.#log.warn({ url: this.#config.url, state }, `auth_breaker_${state}`);
    });
  }

  async authenticate(credential: Credential): Promise<Decision> {
    const body = verificationBody(credential, this.#config.params);
    const key = this.#cache.keyOf(body);
    const cached = this.#cache.get(key);
    if (cached !== undefined) {
      this.stats.cacheHits[cached.kind]++;
      return this.#decide(cached, true);
    }
    if (!this.#breaker.tryAcquire()) {
      countFailure(this.stats, 'breaker_open');
      return { kind: 'unavailable', reason: 'https_breaker_open: the verification service kept failing; calls are paused' };
    }
    const outcome = await this.#call(body);
    if (outcome.kind === 'failure') {
      // Only the backend's own faults count; a body it sent that we cannot read is not an outage.
      if (BREAKER_FAILURES.has(outcome.failure)) this.#breaker.recordFailure({ username: credential.username, address: credential.remoteAddress });
      countFailure(this.stats, outcome.failure);
      return { kind: 'unavailable', reason: `https_${outcome.failure}: ${outcome.detail}` };
    }
    this.#breaker.recordSuccess();
    this.#cache.put(key, outcome);
    return this.#decide(outcome, false);
  }

  /** Lets open connections finish and closes them. */
  async close(): Promise<void> {
    await this.#agent.close().catch(() => undefined);
  }

  #decide(answer: CachedAnswer, fromCache: boolean): Decision {
    const via = fromCache ? ' (cached)' : '';
    if (answer.kind === 'accept') {
      this.stats.calls.accept++;
      return { kind: 'allow', deviceName: answer.deviceName, ...(answer.acl !== undefined ? { acl: answer.acl } : {}) };
    }
    this.stats.calls.reject++;
    return { kind: 'deny', reasonCode: RC.BAD_USER_NAME_OR_PASSWORD, reason: `${answer.reason}${via}` };
  }

  async #call(body: string): Promise<Outcome> {
    const { timeoutMs, signingSecret, url } = this.#config;
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      accept: 'application/json',
      ...(signingSecret !== null ? signatureHeaders(signingSecret, body) : {}),
    };
    let status: number;
    let text: string;
    try {
      const response = await request(url, {
        method: 'POST', headers, body, dispatcher: this.#agent, signal: AbortSignal.timeout(timeoutMs),
        headersTimeout: timeoutMs, bodyTimeout: timeoutMs,
      });
      status = response.statusCode;
      if (status < 200 || status >= 300) {
        await response.body.dump();
      } else {
        const length = Number(response.headers['content-length'] ?? 0);
        if (length > MAX_RESPONSE_BYTES) {
          await response.body.dump();
          return { kind: 'failure', failure: 'bad_response', detail: `response of ${length} bytes` };
        }
      }
      const read = status >= 200 && status < 300 ? await readBounded(response.body, MAX_RESPONSE_BYTES) : '';
      if (read === null) return { kind: 'failure', failure: 'bad_response', detail: `response over ${MAX_RESPONSE_BYTES} bytes` };
      text = read;
    } catch (err) {
      const e = err as Error & { code?: string; name: string };
      if (e.name === 'TimeoutError' || e.name === 'AbortError' || e.code === 'UND_ERR_HEADERS_TIMEOUT' || e.code === 'UND_ERR_BODY_TIMEOUT') {
        return { kind: 'failure', failure: 'timeout', detail: `no answer within ${timeoutMs} ms` };
      }
      return { kind: 'failure', failure: 'network', detail: e.code ?? e.message };
    }
    if (status >= 400 && status < 500) return { kind: 'reject', reason: `service_refused_${status}` };
    if (status < 200 || status >= 300) return { kind: 'failure', failure: status >= 500 ? 'http_5xx' : 'http_other', detail: `status ${status}` };
    let parsed: unknown;
    try {
      parsed = text.trim() === '' ? {} : JSON.parse(text);
    } catch {
      return { kind: 'failure', failure: 'bad_response', detail: 'the body is not JSON' };
    }
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
      return { kind: 'failure', failure: 'bad_response', detail: 'the body is not a JSON object' };
    }
    const deviceName = (parsed as Record<string, unknown>).deviceName;
    if (deviceName === undefined || deviceName === null || deviceName === '') return { kind: 'reject', reason: 'service_answered_without_device_name' };
    const valid = checkedDeviceName(deviceName);
    if (valid === undefined) {
      return { kind: 'reject', reason: `device_name_invalid: ${JSON.stringify(deviceName).slice(0, 80)}` };
    }
    const acl = (parsed as Record<string, unknown>).acl;
    if (acl === undefined || acl === null) return { kind: 'accept', deviceName: valid };
    // Rules that do not check out are the service's fault: never an accept with rules nobody meant.
    const rules = deviceAclOf(acl);
    if (typeof rules === 'string') return { kind: 'failure', failure: 'bad_response', detail: `acl: ${rules}` };
    return { kind: 'accept', deviceName: valid, acl: rules };
  }
}
