/**
 * Everything a gateway checks about certificates, in the order a connection meets it:
 *
 * 1. handshake  — the server certificate goes out with a stapled OCSP response when one is fresh
 *                 (`stapling.ts`);
 * 2. `admit`    — right after the handshake, the device certificate is verified against the device
 *                 root bundle (`x509-identity.ts`); a refused socket is logged and closed before MQTT;
 * 3. `beforeConnect` — in the CONNECT pipeline, before the auth chain and CONNACK: the device
 *                 certificate's OCSP status (`client-check.ts`) and the gateway's failure policy;
 * 4. re-checks  — connected devices whose cached status expired are asked about again, and a revoked
 *                 one is disconnected.
 */
import type { X509Certificate } from 'node:crypto';
import type { Server, TLSSocket } from 'node:tls';
import type { Logger } from '../../core/logger.ts';
import { RC } from '../../mqtt/reason-codes.ts';
import type { GatewayOcspState } from '../../registry/ports.ts';
import type { GatewayRuntimeConfig } from '../../registry/types.ts';
import { ClientOcspChecker, emptyClientCheckStats } from './client-check.ts';
import { DEFAULT_OCSP_TIMINGS, type OcspTimings } from './ocsp-cache.ts';
import { ocspInputsDiffer } from './server-options.ts';
import { OcspStapler, type StaplingCounters } from './stapling.ts';
import { parsePemBundle, verifyClientCertificate, type DeviceCertificate } from './x509-identity.ts';

export type CertificateStep =
  | { ok: true; certificate: DeviceCertificate | undefined }
  | { ok: false; reasonCode: number; reason: string };

export interface CertificateChecksDeps {
  log: Logger;
  /** A socket refused for its client certificate, before MQTT (the reason as the TLS layer names it). */
  onRefused?: (socket: TLSSocket, reason: string, subject: string | undefined) => void;
  timings?: Partial<OcspTimings>;
  /** SHA-256 fingerprints of the device certificates of connected clients. */
  connectedCertificates: () => Iterable<string>;
  /** Disconnects the clients holding this certificate; returns how many. */
  disconnect: (fingerprint256: string) => number;
}

export class CertificateChecks {
  #config: GatewayRuntimeConfig;
  #anchors: X509Certificate[] = [];
  #stapler: OcspStapler | null = null;
  #client: ClientOcspChecker | null = null;
  #recheckTimer: NodeJS.Timeout | null = null;
  #rechecking = false;
  #running = false;
  readonly #accepted = new WeakMap<TLSSocket, DeviceCertificate>();
  readonly #x509Refusals: Record<string, number> = {};
  // Counters live as long as the listener: edits rebuild the checkers, not the numbers.
  readonly #staplingCounters: StaplingCounters = { served: 0, errors: {}, lastError: null };
  readonly #clientStats = emptyClientCheckStats();
  readonly #deps: CertificateChecksDeps;
  readonly #timings: OcspTimings;

  constructor(config: GatewayRuntimeConfig, deps: CertificateChecksDeps) {
    this.#config = config;
    this.#deps = deps;
    this.#timings = { ...DEFAULT_OCSP_TIMINGS, ...deps.timings };
    this.#build();
  }

  /** Hooks a listener's handshakes up to stapling. Call for every `tls.Server` of the gateway. */
  attach(server: Server): void {
    server.on('OCSPRequest', (certificate: Buffer, _issuer: Buffer | null, callback: (err: Error | null, response?: Buffer) => void) => {
      if (this.#stapler === null) callback(null);
      else this.#stapler.handle(certificate, callback);
    });
  }

  /** Starts stapling fetches and device re-checks (again after a port move: a no-op). */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#stapler?.start();
    this.#recheckTimer = setInterval(() => void this.#recheck(), this.#timings.recheckIntervalMs);
    this.#recheckTimer.unref();
  }

  stop(): void {
    this.#running = false;
    this.#stapler?.stop();
    if (this.#recheckTimer !== null) clearInterval(this.#recheckTimer);
    this.#recheckTimer = null;
  }

  /** An edited configuration: rebuilds what it changed (a rotated server certificate gets its own staple). */
  apply(next: GatewayRuntimeConfig): void {
    const previous = this.#config;
    this.#config = next;
    if (!ocspInputsDiffer(previous, next)) return;
    this.#stapler?.stop();
    this.#build();
    if (this.#running) this.#stapler?.start();
  }

  /**
   * Right after the handshake, before MQTT: with X.509 on, a socket without a valid device certificate
   * is logged and destroyed (false). Otherwise the certificate is kept for `beforeConnect`.
   */
  admit(socket: TLSSocket): boolean {
    if (!this.#config.x509.enabled) return true;
    const verdict = verifyClientCertificate(socket, this.#anchors);
    if (!verdict.ok) {
      this.#x509Refusals[verdict.reason] = (this.#x509Refusals[verdict.reason] ?? 0) + 1;
      this.#deps.log.info({ remoteAddress: socket.remoteAddress, reason: verdict.reason, subject: verdict.subject }, 'tls_client_certificate_refused');
      this.#deps.onRefused?.(socket, verdict.reason, verdict.subject);
      socket.destroy();
      return false;
    }
    this.#accepted.set(socket, verdict.certificate);
    return true;
  }

  /** The verified device certificate of a socket `admit` accepted. */
  certificateOf(socket: unknown): DeviceCertificate | undefined {
    return this.#accepted.get(socket as TLSSocket);
  }

  /** The certificate step of the CONNECT pipeline: the device certificate and its OCSP status. */
  async beforeConnect(socket: unknown): Promise<CertificateStep> {
    if (!this.#config.x509.enabled) return { ok: true, certificate: undefined };
    const certificate = this.certificateOf(socket);
    if (certificate === undefined) return { ok: false, reasonCode: RC.NOT_AUTHORIZED, reason: 'no_client_certificate' };
    const client = this.#client;
    if (client === null) return { ok: true, certificate };
    const outcome = await client.check(certificate);
    const facts = { cn: certificate.info.cn, serial: certificate.info.serial, cached: outcome.cached };
    const policy = this.#config.ocsp.onResponderFailure;
    switch (outcome.result) {
      case 'good':
        client.watch(certificate);
        return { ok: true, certificate };
      case 'revoked':
        this.#deps.log.info(facts, 'device_certificate_revoked');
        return { ok: false, reasonCode: RC.NOT_AUTHORIZED, reason: 'certificate_revoked' };
      case 'unknown':
        if (policy === 'ACCEPT') {
          this.#deps.log.warn(facts, 'device_certificate_status_unknown_accepted');
          client.watch(certificate);
          return { ok: true, certificate };
        }
        this.#deps.log.info(facts, 'device_certificate_status_unknown');
        return { ok: false, reasonCode: RC.NOT_AUTHORIZED, reason: 'certificate_status_unknown' };
      case 'responder_error':
        if (policy === 'ACCEPT') {
          this.#deps.log.warn({ ...facts, error: outcome.error }, 'ocsp_responder_unavailable_accepted');
          client.watch(certificate);
          return { ok: true, certificate };
        }
        this.#deps.log.warn({ ...facts, error: outcome.error }, 'ocsp_responder_unavailable');
        // A backend failure is "server unavailable", never confused with a refused certificate.
        return { ok: false, reasonCode: RC.SERVER_UNAVAILABLE, reason: 'ocsp_responder_unavailable' };
    }
  }

  state(): GatewayOcspState | undefined {
    if (!this.#config.x509.enabled && this.#config.ocsp.mode === 'DISABLED') return undefined;
    const client = this.#client;
    return {
      mode: this.#config.ocsp.mode,
      server: this.#stapler?.state() ?? null,
      client: client === null ? null : {
        onResponderFailure: this.#config.ocsp.onResponderFailure,
        checks: { ...client.stats.checks },
        cacheHits: client.stats.cacheHits,
        cacheSize: client.cacheSize,
        responderErrors: { ...client.stats.responderErrors },
        lastError: client.stats.lastError,
        revokedWhileConnected: client.stats.revokedWhileConnected,
      },
      x509Refusals: { ...this.#x509Refusals },
    };
  }

  #build(): void {
    const config = this.#config;
    const mode = config.ocsp.mode;
    this.#anchors = config.x509.enabled ? parsePemBundle(config.certificates.deviceRootCertificates) : [];
    this.#stapler = mode === 'SERVER' || mode === 'SERVER_AND_CLIENT'
      ? new OcspStapler({
        chainPem: config.certificates.serverCertificateChain,
        trustedPem: config.certificates.trustedCertificate,
        timings: this.#timings,
        log: this.#deps.log,
        counters: this.#staplingCounters,
      })
      : null;
    const clientMode = config.x509.enabled && (mode === 'CLIENT' || mode === 'SERVER_AND_CLIENT');
    this.#client = clientMode ? new ClientOcspChecker({ trusted: this.#anchors, timings: this.#timings, stats: this.#clientStats }) : null;
  }

  async #recheck(): Promise<void> {
    const client = this.#client;
    if (client === null || this.#rechecking) return;
    this.#rechecking = true;
    try {
      const revoked = await client.recheck(new Set(this.#deps.connectedCertificates()));
      for (const fingerprint256 of revoked) {
        const n = this.#deps.disconnect(fingerprint256);
        this.#deps.log.info({ fingerprint256, disconnected: n }, 'device_certificate_revoked_disconnected');
      }
    } catch (err) {
      this.#deps.log.error({ err }, 'ocsp_recheck_failed');
    } finally {
      this.#rechecking = false;
    }
  }
}
