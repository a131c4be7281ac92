/**
 * An OCSP client for tests, as research/libraries.md §4 describes it: pkijs builds the request
 * (`OCSPRequest.createForCertificate` + nonce), undici POSTs it (or GETs it), and pkijs checks the
 * answer (`BasicOCSPResponse.verify` + `getCertificateStatus`).
 *
 * Transport and format failures throw an `OcspQueryError` with a `code`; a response that parses but
 * does not verify, is stale, or carries a wrong nonce is returned with those facts set, so a test can
 * assert each one.
 */
import { randomBytes, X509Certificate } from 'node:crypto';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { Agent, request } from 'undici';

export type OcspCertStatus = 'good' | 'revoked' | 'unknown';

/** What a successful OCSP response said about one certificate. */
export interface OcspResult {
  status: OcspCertStatus;
  /**
   * `BasicOCSPResponse.verify` passed: the signature is good and the signer is the CA or a delegated
   * responder (EKU OCSPSigning) chaining to one of the trusted certificates.
   */
  verified: boolean;
  /** Why verification failed, when it did. */
  verifyError?: string;
  producedAt: Date;
  thisUpdate: Date;
  nextUpdate?: Date;
  /** `nextUpdate` is before the time of the check. */
  stale: boolean;
  /** Set for `revoked`. */
  revocationTime?: Date;
  /** CRLReason when the responder gave one (1 = keyCompromise). */
  revocationReason?: number;
  /** Whether the response echoed the request's nonce. */
  nonce: 'matched' | 'mismatched' | 'absent' | 'not-sent';
  /** Certificates the responder included (normally its own). */
  responderCertsPem: string[];
  /** The whole DER `OCSPResponse`. */
  der: Buffer;
}

export type OcspQueryErrorCode =
  /** Connection refused, reset or closed without an HTTP response. */
  | 'network'
  | 'timeout'
  /** An HTTP status other than 200; see `httpStatus`. */
  | 'http-status'
  /** Not a DER OCSPResponse (or not a basic one). */
  | 'malformed'
  /** OCSPResponse status other than successful; see `responseStatus`. */
  | 'response-status'
  /** The response holds no status for the certificate asked about. */
  | 'no-status';

export class OcspQueryError extends Error {
  readonly code: OcspQueryErrorCode;
  readonly httpStatus: number | undefined;
  /** 1 malformedRequest, 2 internalError, 3 tryLater, 5 sigRequired, 6 unauthorized. */
  readonly responseStatus: number | undefined;

  constructor(code: OcspQueryErrorCode, message: string, extra: { httpStatus?: number; responseStatus?: number; cause?: unknown } = {}) {
    super(message, { cause: extra.cause });
    this.name = 'OcspQueryError';
    this.code = code;
    this.httpStatus = extra.httpStatus;
    this.responseStatus = extra.responseStatus;
  }
}

export interface BuildOcspRequestOptions {
  /** Add a random 16-byte nonce extension. Default true. */
  nonce?: boolean;
  /** CertID hash. Default SHA-1 (RFC 5019: what every responder understands). */
  hashAlgorithm?: 'SHA-1' | 'SHA-256';
}

export interface ReadOcspResponseOptions {
  /** Trust anchors for the responder's chain. Default: the issuer alone. */
  trustedPems?: string[];
  /** The nonce the request carried, to check the echo. */
  nonce?: Uint8Array<ArrayBuffer>;
  /** "Now" for the staleness check. Default: the current time. */
  now?: Date;
}

export interface QueryOcspOptions extends BuildOcspRequestOptions, Omit<ReadOcspResponseOptions, 'nonce'> {
  /** Responder URL. Default: the OCSP URL in the certificate's AIA extension. */
  url?: string;
  /** POST (`application/ocsp-request` body, default) or GET (base64 request in the path). */
  method?: 'POST' | 'GET';
  /** Whole-exchange timeout. Default 3000 ms. */
  timeoutMs?: number;
}

const NONCE_OID = '1.3.6.1.5.5.7.48.1.2';
const BASIC_OCSP_OID = '1.3.6.1.5.5.7.48.1.1';

/** The OCSP responder URL in a certificate's AIA extension, if any. */
export function ocspUrlOf(certPem: string): string | undefined {
  const info = new X509Certificate(certPem).infoAccess ?? '';
  return /^OCSP - URI:(.+)$/m.exec(info)?.[1]?.trim();
}

/** A DER `OCSPRequest` for one certificate, and the nonce it carries. */
export async function buildOcspRequest(
  certPem: string,
  issuerPem: string,
  options: BuildOcspRequestOptions = {},
): Promise<{ der: Buffer; nonce?: Uint8Array<ArrayBuffer> }> {
  const ocspRequest = new pkijs.OCSPRequest();
  await ocspRequest.createForCertificate(toPkijs(certPem), {
    hashAlgorithm: options.hashAlgorithm ?? 'SHA-1',
    issuerCertificate: toPkijs(issuerPem),
  });
  let nonce: Uint8Array<ArrayBuffer> | undefined;
  if (options.nonce ?? true) {
    nonce = new Uint8Array(randomBytes(16));
    ocspRequest.tbsRequest.requestExtensions = [new pkijs.Extension({
      extnID: NONCE_OID,
      extnValue: new asn1js.OctetString({ valueHex: nonce }).toBER(),
    })];
  }
  return { der: Buffer.from(ocspRequest.toSchema(true).toBER()), nonce };
}

/**
 * Reads a DER `OCSPResponse` (from a responder, or stapled in a TLS handshake) for `certPem`.
 * Throws `OcspQueryError` (`malformed`, `response-status`, `no-status`) when there is no status to read.
 */
export async function readOcspResponse(
  der: Uint8Array,
  certPem: string,
  issuerPem: string,
  options: ReadOcspResponseOptions = {},
): Promise<OcspResult> {
  let response: pkijs.OCSPResponse;
  let basic: pkijs.BasicOCSPResponse;
  try {
    response = pkijs.OCSPResponse.fromBER(new Uint8Array(der));
  } catch (cause) {
    throw new OcspQueryError('malformed', 'the body is not a DER OCSPResponse', { cause });
  }
  const responseStatus = response.responseStatus.valueBlock.valueDec;
  if (responseStatus !== 0) {
    throw new OcspQueryError('response-status', `OCSP response status ${responseStatus}`, { responseStatus });
  }
  if (response.responseBytes?.responseType !== BASIC_OCSP_OID) {
    throw new OcspQueryError('malformed', 'successful OCSPResponse without a basic response');
  }
  try {
    basic = pkijs.BasicOCSPResponse.fromBER(response.responseBytes.response.valueBlock.valueHexView.slice());
  } catch (cause) {
    throw new OcspQueryError('malformed', 'the BasicOCSPResponse does not parse', { cause });
  }

  const cert = toPkijs(certPem);
  const issuer = toPkijs(issuerPem);
  const trusted = (options.trustedPems ?? [issuerPem]).map(toPkijs);
  let verified = false;
  let verifyError: string | undefined;
  try {
    verified = await basic.verify({ trustedCerts: trusted, issuerCerts: [issuer] });
    if (!verified) verifyError = 'signature mismatch';
  } catch (error) {
    verifyError = error instanceof Error ? error.message : String(error);
  }

  const { isForCertificate, status } = await basic.getCertificateStatus(cert, issuer);
  const single = basic.tbsResponseData.responses.find((r) => r.certID.serialNumber.isEqual(cert.serialNumber));
  if (!isForCertificate || !single) {
    throw new OcspQueryError('no-status', 'the response holds no status for this certificate');
  }
  const revocation = status === 1 ? revocationOf(single) : {};
  const now = options.now ?? new Date();
  return {
    status: status === 0 ? 'good' : status === 1 ? 'revoked' : 'unknown',
    verified,
    ...(verifyError === undefined ? {} : { verifyError }),
    producedAt: basic.tbsResponseData.producedAt,
    thisUpdate: single.thisUpdate,
    ...(single.nextUpdate ? { nextUpdate: single.nextUpdate } : {}),
    stale: single.nextUpdate !== undefined && single.nextUpdate.getTime() < now.getTime(),
    ...revocation,
    nonce: nonceCheck(basic, options.nonce),
    responderCertsPem: (basic.certs ?? []).map(toPem),
    der: Buffer.from(der),
  };
}

/** Asks the responder about `certPem` and reads the answer (see `readOcspResponse`). */
export async function queryOcsp(certPem: string, issuerPem: string, options: QueryOcspOptions = {}): Promise<OcspResult> {
  const url = options.url ?? ocspUrlOf(certPem);
  if (url === undefined) throw new Error('no OCSP URL given and none in the certificate');
  const { der, nonce } = await buildOcspRequest(certPem, issuerPem, options);
  const timeoutMs = options.timeoutMs ?? 3000;
  const agent = new Agent({ connect: { timeout: timeoutMs } });
  let body: Buffer;
  try {
    const method = options.method ?? 'POST';
    const target = method === 'GET'
      ? `${url.endsWith('/') ? url : `${url}/`}${encodeURIComponent(der.toString('base64'))}`
      : url;
    const res = await request(target, {
      method,
      dispatcher: agent,
      signal: AbortSignal.timeout(timeoutMs),
      ...(method === 'POST' ? { body: der, headers: { 'content-type': 'application/ocsp-request' } } : {}),
    });
    body = Buffer.from(await res.body.arrayBuffer());
    if (res.statusCode !== 200) {
      throw new OcspQueryError('http-status', `responder answered HTTP ${res.statusCode}`, { httpStatus: res.statusCode });
    }
  } catch (error) {
    if (error instanceof OcspQueryError) throw error;
    throw transportError(error);
  } finally {
    await agent.destroy().catch(() => {});
  }
  return readOcspResponse(body, certPem, issuerPem, {
    ...(options.trustedPems ? { trustedPems: options.trustedPems } : {}),
    ...(options.now ? { now: options.now } : {}),
    ...(nonce ? { nonce } : {}),
  });
}

function transportError(error: unknown): OcspQueryError {
  const name = error instanceof Error ? error.name : '';
  const code = (error as { code?: unknown } | null)?.code;
  const timedOut = name === 'TimeoutError' || name === 'AbortError' || code === 'UND_ERR_CONNECT_TIMEOUT'
    || code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT';
  const message = error instanceof Error ? error.message : String(error);
  return new OcspQueryError(timedOut ? 'timeout' : 'network', `OCSP request failed: ${message}`, { cause: error });
}

// RevokedInfo ::= SEQUENCE { revocationTime GeneralizedTime, revocationReason [0] EXPLICIT CRLReason OPTIONAL }
function revocationOf(single: pkijs.SingleResponse): { revocationTime?: Date; revocationReason?: number } {
  const info = single.certStatus as asn1js.BaseBlock;
  if (!(info instanceof asn1js.Constructed)) return {};
  const [time, reason] = info.valueBlock.value;
  const result: { revocationTime?: Date; revocationReason?: number } = {};
  if (time instanceof asn1js.GeneralizedTime) result.revocationTime = time.toDate();
  if (reason instanceof asn1js.Constructed) {
    const value = reason.valueBlock.value[0];
    if (value instanceof asn1js.Enumerated) result.revocationReason = value.valueBlock.valueDec;
  }
  return result;
}

function nonceCheck(basic: pkijs.BasicOCSPResponse, sent: Uint8Array<ArrayBuffer> | undefined): OcspResult['nonce'] {
  if (sent === undefined) return 'not-sent';
  const echoed = basic.tbsResponseData.responseExtensions?.find((e) => e.extnID === NONCE_OID);
  if (!echoed) return 'absent';
  const expected = Buffer.from(new asn1js.OctetString({ valueHex: sent }).toBER());
  return Buffer.from(echoed.extnValue.valueBlock.valueHexView).equals(expected) ? 'matched' : 'mismatched';
}

function toPkijs(pem: string): pkijs.Certificate {
  return pkijs.Certificate.fromBER(new X509Certificate(pem).raw);
}

function toPem(cert: pkijs.Certificate): string {
  const b64 = Buffer.from(cert.toSchema().toBER()).toString('base64').replace(/.{64}/g, '$&\n').replace(/\n$/, '');
  return `-----BEGIN CERTIFICATE-----\n${b64}\n-----END CERTIFICATE-----\n`;
}
