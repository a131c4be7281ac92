/**
 * One OCSP exchange (RFC 6960): pkijs builds the request for a certificate and its issuer, undici POSTs
 * it to the responder with timeouts, and pkijs checks the answer — signature, responder authorisation
 * (the CA itself or a delegated responder with EKU OCSPSigning chaining to a trusted certificate),
 * status and freshness. research/libraries.md §4 tried this path; npm `ocsp` fails on ECDSA.
 *
 * Every failure is an `OcspFetchError` with a `code`, so callers can count responder errors by kind
 * and never mistake one for an answer.
 */
import { randomBytes, type X509Certificate } from 'node:crypto';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { Agent, request } from 'undici';

export type OcspCertStatus = 'good' | 'revoked' | 'unknown';

/** A verified answer about one certificate. */
export interface OcspAnswer {
  status: OcspCertStatus;
  producedAt: Date;
  thisUpdate: Date;
  /** Absent: the responder did not say (RFC 6960 §2.4: newer information is always available). */
  nextUpdate: Date | undefined;
  /** The whole DER `OCSPResponse`, as stapled in a handshake (RFC 6066 §8). */
  der: Buffer;
}

export type OcspFetchErrorCode =
  | 'no_responder_url'
  | 'network'
  | 'timeout'
  | 'http_status'
  /** Not a DER OCSPResponse (or not a basic one). */
  | 'malformed'
  /** OCSPResponse status other than successful (tryLater, internalError …). */
  | 'response_status'
  /** The signature or the responder's authority did not verify against the trusted certificates. */
  | 'unverified'
  /** The response holds no status for the certificate asked about. */
  | 'no_status'
  /** nextUpdate is in the past, or thisUpdate in the future. */
  | 'stale'
  /** The response did not echo the request's nonce. */
  | 'nonce_mismatch';

export class OcspFetchError extends Error {
  readonly code: OcspFetchErrorCode;
  constructor(code: OcspFetchErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'OcspFetchError';
    this.code = code;
  }
}

export interface OcspQuery {
  cert: X509Certificate;
  issuer: X509Certificate;
  /** Trust anchors for the responder's signing chain. */
  trusted: readonly X509Certificate[];
  /** Untrusted certificates that may complete the signer's chain (e.g. intermediates). */
  intermediates?: readonly X509Certificate[];
  /** Default: the URL in the certificate's AIA extension. */
  url?: string;
  timeoutMs: number;
  /** Allowed clock difference for thisUpdate / nextUpdate. */
  clockSkewMs?: number;
}

const NONCE_OID = '1.3.6.1.5.5.7.48.1.2';
const BASIC_OCSP_OID = '1.3.6.1.5.5.7.48.1.1';
const MAX_RESPONSE_BYTES = 64 * 1024;
const DEFAULT_SKEW_MS = 5 * 60_000;

/** The OCSP responder URL in a certificate's AIA extension (RFC 5280 §4.2.2.1), if any. */
export function ocspUrlOf(cert: X509Certificate): string | undefined {
  const info = cert.infoAccess ?? '';
  return /^OCSP - URI:(.+)$/m.exec(info)?.[1]?.trim();
}

/** Asks the certificate's responder and returns a verified, fresh answer, or throws `OcspFetchError`. */
export async function fetchOcsp(query: OcspQuery): Promise<OcspAnswer> {
  const url = query.url ?? ocspUrlOf(query.cert);
  if (url === undefined) throw new OcspFetchError('no_responder_url', 'the certificate names no OCSP responder (AIA)');
  const cert = toPkijs(query.cert);
  const issuer = toPkijs(query.issuer);
  const ocspRequest = new pkijs.OCSPRequest();
  // SHA-1 CertID: what RFC 5019 responders are required to understand.
  await ocspRequest.createForCertificate(cert, { hashAlgorithm: 'SHA-1', issuerCertificate: issuer });
  const nonce = new Uint8Array(randomBytes(16));
  ocspRequest.tbsRequest.requestExtensions = [new pkijs.Extension({
    extnID: NONCE_OID,
    extnValue: new asn1js.OctetString({ valueHex: nonce }).toBER(),
  })];
  const body = await post(url, Buffer.from(ocspRequest.toSchema(true).toBER()), query.timeoutMs);
  return readOcspResponse(body, query, nonce);
}

/** Checks a DER `OCSPResponse` for `query.cert` (the body of a responder's answer, or stapled bytes). */
export async function readOcspResponse(der: Buffer, query: OcspQuery, nonce?: Uint8Array<ArrayBuffer>, now = new Date()): Promise<OcspAnswer> {
  let response: pkijs.OCSPResponse;
  let basic: pkijs.BasicOCSPResponse;
  try {
    response = pkijs.OCSPResponse.fromBER(new Uint8Array(der));
  } catch (cause) {
    throw new OcspFetchError('malformed', 'the body is not a DER OCSPResponse', { cause });
  }
  const responseStatus = response.responseStatus.valueBlock.valueDec;
  if (responseStatus !== 0) throw new OcspFetchError('response_status', `OCSP response status ${responseStatus}`);
  if (response.responseBytes?.responseType !== BASIC_OCSP_OID) throw new OcspFetchError('malformed', 'successful OCSPResponse without a basic response');
  try {
    basic = pkijs.BasicOCSPResponse.fromBER(response.responseBytes.response.valueBlock.valueHexView.slice());
  } catch (cause) {
    throw new OcspFetchError('malformed', 'the BasicOCSPResponse does not parse', { cause });
  }

  const cert = toPkijs(query.cert);
  const issuer = toPkijs(query.issuer);
  let verified = false;
  let why = 'signature mismatch';
  try {
    verified = await basic.verify({
      trustedCerts: query.trusted.map(toPkijs),
      issuerCerts: [issuer, ...(query.intermediates ?? []).map(toPkijs)],
    });
  } catch (error) {
    why = error instanceof Error ? error.message : String(error);
  }
  if (!verified) throw new OcspFetchError('unverified', `OCSP response does not verify: ${why}`);

  if (nonce !== undefined) {
    // A responder may leave the nonce out (RFC 5019 §2.2.1: pre-produced responses); a wrong one is a replay.
    const echoed = basic.tbsResponseData.responseExtensions?.find((e) => e.extnID === NONCE_OID);
    if (echoed !== undefined) {
      const expected = Buffer.from(new asn1js.OctetString({ valueHex: nonce }).toBER());
      if (!Buffer.from(echoed.extnValue.valueBlock.valueHexView).equals(expected)) throw new OcspFetchError('nonce_mismatch', 'the response carries another nonce');
    }
  }

  const { isForCertificate, status } = await basic.getCertificateStatus(cert, issuer);
  const single = basic.tbsResponseData.responses.find((r) => r.certID.serialNumber.isEqual(cert.serialNumber));
  if (!isForCertificate || single === undefined) throw new OcspFetchError('no_status', 'the response holds no status for this certificate');
  const skew = query.clockSkewMs ?? DEFAULT_SKEW_MS;
  // RFC 6960 §3.2 (5)/(6): thisUpdate sufficiently recent, nextUpdate (when set) not passed.
  if (single.nextUpdate !== undefined && single.nextUpdate.getTime() <= now.getTime()) {
    throw new OcspFetchError('stale', `the response expired at ${single.nextUpdate.toISOString()}`);
  }
  if (single.thisUpdate.getTime() > now.getTime() + skew) throw new OcspFetchError('stale', 'the response is dated in the future');
  return {
    status: status === 0 ? 'good' : status === 1 ? 'revoked' : 'unknown',
    producedAt: basic.tbsResponseData.producedAt,
    thisUpdate: single.thisUpdate,
    nextUpdate: single.nextUpdate,
    der,
  };
}

async function post(url: string, der: Buffer, timeoutMs: number): Promise<Buffer> {
  const agent = new Agent({ connect: { timeout: timeoutMs }, headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
  try {
    const res = await request(url, {
      method: 'POST',
      dispatcher: agent,
      body: der,
      headers: { 'content-type': 'application/ocsp-request', accept: 'application/ocsp-response' },
      signal: AbortSignal.timeout(timeoutMs),
    });
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > MAX_RESPONSE_BYTES) throw new OcspFetchError('malformed', 'response larger than 64 KiB');
      chunks.push(chunk);
    }
    if (res.statusCode !== 200) throw new OcspFetchError('http_status', `responder answered HTTP ${res.statusCode}`);
    return Buffer.concat(chunks);
  } catch (error) {
    if (error instanceof OcspFetchError) throw error;
    const name = error instanceof Error ? error.name : '';
    const code = (error as { code?: unknown } | null)?.code;
    const timedOut = name === 'TimeoutError' || name === 'AbortError' || code === 'UND_ERR_CONNECT_TIMEOUT'
      || code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT';
    throw new OcspFetchError(timedOut ? 'timeout' : 'network', `OCSP request to ${url} failed: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  } finally {
    agent.destroy().catch(() => {});
  }
}

function toPkijs(cert: X509Certificate): pkijs.Certificate {
  return pkijs.Certificate.fromBER(new Uint8Array(cert.raw));
}
