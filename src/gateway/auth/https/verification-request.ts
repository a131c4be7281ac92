/**
 * The body and headers of the HTTPS verification call (DESIGN.md "HTTPS verification call"):
 * `{username, password, certificateCommonName?}` plus each custom parameter rendered from its template,
 * and, when the gateway has a signing secret, an HMAC over the timestamp and the body so the customer's
 * service can tell the call came from its gateway and is recent.
 */
import { createHmac } from 'node:crypto';
import { renderTemplate, type HttpsParam, type TemplateContext } from '../../../registry/index.ts';
import type { Credential } from '../authenticator.ts';
import { firstUserProperties, peerCertificate } from '../third-party.ts';

export const TIMESTAMP_HEADER = 'x-gatehouse-timestamp';
export const SIGNATURE_HEADER = 'x-gatehouse-signature';

export function verificationBody(credential: Credential, params: readonly HttpsParam[]): string {
  const cert = peerCertificate(credential);
  const context: TemplateContext = {
    username: credential.username ?? '',
    // MQTT passwords are bytes; the service gets them as UTF-8 text, as the reference product sends them.
    password: credential.password?.toString('utf8') ?? '',
    clientId: credential.clientId,
    cert: cert === null ? null : { cn: cert.cn, serial: cert.serial, issuer: cert.issuer },
    userProperties: firstUserProperties(credential),
  };
  const body: Record<string, string> = { username: context.username, password: context.password };
  if (cert?.cn != null) body.certificateCommonName = cert.cn;
  for (const param of params) body[param.key] = renderTemplate(param.value, context);
  return JSON.stringify(body);
}

/**
 * `x-gatehouse-signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>` with the Unix time in
 * seconds in `x-gatehouse-timestamp` (the scheme of Stripe and Slack webhooks: the service recomputes
 * it and refuses old timestamps, so a recorded call cannot be replayed later).
 */
export function signatureHeaders(secret: string, body: string, now = Date.now()): Record<string, string> {
  const timestamp = String(Math.floor(now / 1000));
  const signature = createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex');
  return { [TIMESTAMP_HEADER]: timestamp, [SIGNATURE_HEADER]: `sha256=${signature}` };
}
