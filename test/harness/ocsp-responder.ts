/**
 * A real OCSP responder for tests, on 127.0.0.1 only.
 *
 * `openssl ocsp -port` binds every interface and wedges for good on a connection that sends nothing
 * (research/libraries.md, Addendum), so this is a small HTTP server that answers each request by running
 * `openssl ocsp -index … -rsigner … -rkey … -CA … -reqin req.der -respout resp.der -nmin N` once. openssl
 * reads `index.txt` on every request, so `openssl ca -revoke` (`revoke()` in `pki.ts`) shows at once.
 *
 * Requests: `POST /` with an `application/ocsp-request` body, or `GET /<url-encoded base64 request>`
 * (RFC 6960 appendix A). Modes, switched with `setMode()` to test a gateway's failure policy:
 *
 * | mode           | answer                                                                          |
 * |----------------|---------------------------------------------------------------------------------|
 * | `normal`       | openssl's answer, signed by the delegated responder, nextUpdate = now + N min    |
 * | `down`         | the TCP connection is destroyed without an HTTP response (client: socket error) |
 * | `http-error`   | HTTP 503, no OCSP body                                                          |
 * | `try-later`    | HTTP 200 with OCSPResponse status `tryLater` (3) and no response bytes          |
 * | `slow`         | the `normal` answer after `delayMs` (default 5000)                              |
 * | `wrong-signer` | openssl's answer signed by a responder certificate the CA did not issue         |
 * | `stale`        | the `normal` answer re-dated: thisUpdate = producedAt = now − 2 h, nextUpdate = |
 * |                | now − 1 h, re-signed by the right responder (see below)                         |
 * | `garbage`      | HTTP 200, `application/ocsp-response`, bytes that are not DER                   |
 *
 * Stale answers cannot come from openssl: `-nmin` and `-ndays` refuse 0 and negative values
 * ("Non-positive number"), and `openssl ocsp` has no option to set the signing time. So the `stale`
 * mode takes openssl's real answer (the true status from the database), moves its dates into the past
 * with pkijs and signs it again with the delegated responder's key (ECDSA P-256, SHA-256).
 */
import type { ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { mkdtemp, readFile, rm, unlink, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { webcrypto } from 'node:crypto';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { killTracked, onProcessExit, openssl, OpensslError } from './pki-openssl.ts';

/** The files the responder answers from: one CA's database, its certificate and the signers. */
export interface OcspAuthority {
  /** `index.txt` of the CA (`openssl ca` database). */
  indexPath: string;
  /** Certificate of that CA (`-CA`): the responder answers `unknown` for certificates of other CAs. */
  issuerCertPath: string;
  /** Delegated responder certificate and key (EKU OCSPSigning, issued by the CA). */
  signerCertPath: string;
  signerKeyPath: string;
  /** A responder certificate and key the CA did not issue, for `wrong-signer` mode. */
  wrongSignerCertPath: string;
  wrongSignerKeyPath: string;
}

export type OcspResponderMode =
  | 'normal' | 'down' | 'http-error' | 'try-later' | 'slow' | 'wrong-signer' | 'stale' | 'garbage';

export interface OcspResponderOptions {
  /** What to answer for; can be given later with `serve()`. Until then every request gets `tryLater`. */
  authority?: OcspAuthority;
  /** nextUpdate of normal answers, in minutes from now (`openssl ocsp -nmin`). Default 5. */
  nextUpdateMinutes?: number;
  /** Let the process exit while the responder is open (used by the process-wide `getPki()`). */
  unref?: boolean;
}

export interface OcspResponder {
  /** `http://127.0.0.1:<port>/`: what goes into the AIA extension of the certificates. */
  readonly url: string;
  readonly port: number;
  readonly mode: OcspResponderMode;
  /** HTTP requests received (in any mode, `down` included) since start or `reset()`. */
  readonly requestCount: number;
  /** Answers for `authority` from now on. */
  serve(authority: OcspAuthority): void;
  /** `delayMs` applies to `slow` (default 5000 ms). */
  setMode(mode: OcspResponderMode, options?: { delayMs?: number }): void;
  /** Back to `normal`, default delay, request count 0. */
  reset(): void;
  /** Stops listening, drops connections, kills running openssl children, removes temp files. */
  close(): Promise<void>;
}

// OCSPResponse ::= SEQUENCE { responseStatus ENUMERATED } with no responseBytes (RFC 6960 §4.2.1).
const MALFORMED_REQUEST = Buffer.from([0x30, 0x03, 0x0a, 0x01, 0x01]);
const INTERNAL_ERROR = Buffer.from([0x30, 0x03, 0x0a, 0x01, 0x02]);
const TRY_LATER = Buffer.from([0x30, 0x03, 0x0a, 0x01, 0x03]);
const GARBAGE = Buffer.from('this is not an OCSP response\n');
const MAX_REQUEST_BYTES = 64 * 1024;
const DEFAULT_DELAY_MS = 5000;
const HOUR_MS = 3_600_000;

export async function startOcspResponder(options: OcspResponderOptions = {}): Promise<OcspResponder> {
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'gatehouse-ocsp-'));
  const children = new Set<ChildProcess>();
  const closing = new AbortController();
  const unregisterExit = onProcessExit(() => {
    killTracked(children);
    rmSync(tmp, { recursive: true, force: true });
  });
  const nmin = String(options.nextUpdateMinutes ?? 5);
  let authority = options.authority;
  let mode: OcspResponderMode = 'normal';
  let delayMs = DEFAULT_DELAY_MS;
  let requestCount = 0;
  let sequence = 0;
  let closed: Promise<void> | undefined;

  async function runOcsp(request: Buffer, auth: OcspAuthority, signer: 'right' | 'wrong'): Promise<Buffer> {
    const id = ++sequence;
    const reqPath = path.join(tmp, `req-${id}.der`);
    const respPath = path.join(tmp, `resp-${id}.der`);
    const [signerCert, signerKey] = signer === 'right'
      ? [auth.signerCertPath, auth.signerKeyPath]
      : [auth.wrongSignerCertPath, auth.wrongSignerKeyPath];
    const args = ['ocsp', '-index', auth.indexPath, '-CA', auth.issuerCertPath, '-rsigner', signerCert,
      '-rkey', signerKey, '-rmd', 'sha256', '-nmin', nmin, '-reqin', reqPath, '-respout', respPath];
    await writeFile(reqPath, request);
    try {
      try {
        await openssl(args, { track: children, timeoutMs: 10_000 });
      } catch (error) {
        if (isMalformed(error) || closing.signal.aborted) throw error;
        // `openssl ca` replaces index.txt by two renames; a request landing between them finds no
        // database. One retry covers that window.
        await sleep(50);
        await openssl(args, { track: children, timeoutMs: 10_000 });
      }
      return await readFile(respPath);
    } finally {
      await Promise.all([unlink(reqPath).catch(() => {}), unlink(respPath).catch(() => {})]);
    }
  }

  async function answer(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    requestCount++;
    const current = mode;
    if (current === 'down') {
      req.socket.destroy();
      return;
    }
    const request = await readOcspRequest(req);
    if (current === 'slow') await sleep(delayMs, undefined, { signal: closing.signal, ref: !options.unref });
    if (request === 'method') return send(res, 405, 'text/plain', Buffer.from('GET or POST\n'));
    if (request === 'too-large') return send(res, 413, 'text/plain', Buffer.from('request too large\n'));
    if (current === 'http-error') return send(res, 503, 'text/plain', Buffer.from('responder unavailable\n'));
    if (current === 'garbage') return send(res, 200, 'application/ocsp-response', GARBAGE);
    const auth = authority;
    if (current === 'try-later' || auth === undefined) return send(res, 200, 'application/ocsp-response', TRY_LATER);
    if (request.length === 0) return send(res, 200, 'application/ocsp-response', MALFORMED_REQUEST);
    let body: Buffer;
    try {
      body = await runOcsp(request, auth, current === 'wrong-signer' ? 'wrong' : 'right');
      if (current === 'stale') body = await restampStale(body, await readFile(auth.signerKeyPath, 'utf8'));
    } catch (error) {
      if (closing.signal.aborted) throw error;
      body = isMalformed(error) ? MALFORMED_REQUEST : INTERNAL_ERROR;
    }
    send(res, 200, 'application/ocsp-response', body);
  }

  const server = http.createServer((req, res) => {
    answer(req, res).catch(() => {
      // Closing mid-request (or a broken client): there is nobody left to answer.
      req.socket.destroy();
    });
  });
  server.on('connection', (socket) => {
    if (options.unref) socket.unref();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  if (options.unref) server.unref();
  const port = (server.address() as AddressInfo).port;

  return {
    url: `http://127.0.0.1:${port}/`,
    port,
    get mode() { return mode; },
    get requestCount() { return requestCount; },
    serve(next) { authority = next; },
    setMode(next, modeOptions = {}) {
      mode = next;
      delayMs = modeOptions.delayMs ?? DEFAULT_DELAY_MS;
    },
    reset() {
      mode = 'normal';
      delayMs = DEFAULT_DELAY_MS;
      requestCount = 0;
    },
    close() {
      closed ??= (async () => {
        closing.abort();
        killTracked(children);
        server.closeAllConnections();
        await new Promise<void>((resolve) => server.close(() => resolve()));
        unregisterExit();
        await rm(tmp, { recursive: true, force: true });
      })();
      return closed;
    },
  };
}

// RFC 6960 appendix A: GET carries the url-encoded base64 request as the path. Empty = no request.
async function readOcspRequest(req: http.IncomingMessage): Promise<Buffer | 'method' | 'too-large'> {
  if (req.method === 'GET') {
    const encoded = (req.url ?? '/').replace(/^\/+/, '');
    try {
      return Buffer.from(decodeURIComponent(encoded), 'base64');
    } catch {
      return Buffer.alloc(0);
    }
  }
  if (req.method !== 'POST') {
    req.resume();
    return 'method';
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_REQUEST_BYTES) return 'too-large';
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

function send(res: http.ServerResponse, status: number, contentType: string, body: Buffer): void {
  res.writeHead(status, { 'content-type': contentType, 'content-length': body.length, 'cache-control': 'no-store' });
  res.end(body);
}

function isMalformed(error: unknown): boolean {
  return error instanceof OpensslError && /reading OCSP request|Error reading|asn1|DER/i.test(error.stderr);
}

// openssl cannot sign a response dated in the past (module comment), so re-date openssl's own answer and
// sign it again with the delegated responder's key. Whole seconds: DER GeneralizedTime has no fraction here.
async function restampStale(der: Buffer, signerKeyPem: string): Promise<Buffer> {
  const response = pkijs.OCSPResponse.fromBER(new Uint8Array(der));
  if (!response.responseBytes) return der;
  const basic = pkijs.BasicOCSPResponse.fromBER(response.responseBytes.response.valueBlock.valueHexView.slice());
  const now = Math.floor(Date.now() / 1000) * 1000;
  const thisUpdate = new Date(now - 2 * HOUR_MS);
  basic.tbsResponseData.producedAt = thisUpdate;
  for (const single of basic.tbsResponseData.responses) {
    single.thisUpdate = thisUpdate;
    single.nextUpdate = new Date(now - HOUR_MS);
  }
  const key = await webcrypto.subtle.importKey('pkcs8', pemBody(signerKeyPem),
    { name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign']);
  await basic.sign(key, 'SHA-256');
  response.responseBytes.response = new asn1js.OctetString({ valueHex: basic.toSchema().toBER() });
  return Buffer.from(response.toSchema().toBER());
}

function pemBody(pem: string): Uint8Array<ArrayBuffer> {
  return new Uint8Array(Buffer.from(pem.replace(/-----(BEGIN|END) [^-]+-----/g, '').replace(/\s+/g, ''), 'base64'));
}
