/** Third-party verification by the customer's HTTPS service. */
export { HttpsAuthenticator, type HttpsAuthOptions } from './https-authenticator.ts';
export { SIGNATURE_HEADER, TIMESTAMP_HEADER } from './verification-request.ts';
