/**
 * The console's REST API client: the one the CLI uses too (src/client/), typed by the route schemas. Every call
 * carries the admin token kept in sessionStorage; errors come back as `ApiError` with the field at fault; a 401
 * sends the operator back to the sign-in page.
 */
import { ApiError, createApiClient, type ApiClient, type GatewayLimits } from '../../src/client/index.ts';

export { ApiError, ok } from '../../src/client/index.ts';
export type * from '../../src/client/shapes.ts';

const TOKEN_KEY = 'gatehouse.adminToken';

export function getToken(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(token: string | null): void {
  if (token === null) sessionStorage.removeItem(TOKEN_KEY);
  else sessionStorage.setItem(TOKEN_KEY, token);
}

/** Listeners told when the token is refused, so the app can go back to the sign-in page. */
const unauthorizedListeners = new Set<() => void>();
export function onUnauthorized(listener: () => void): () => void {
  unauthorizedListeners.add(listener);
  return () => unauthorizedListeners.delete(listener);
}

const unreachable = () => new ApiError(0, 'NETWORK', 'Gatehouse is not reachable. Is it running?', null);

/** The API of the page's own origin, as the signed-in operator. */
export const api: ApiClient = createApiClient({
  baseUrl: '',
  token: getToken,
  unreachable,
  onUnauthorized: () => {
    for (const listener of unauthorizedListeners) listener();
  },
});

/** The API with a token not yet kept: the sign-in page tries it with one request. */
export function apiWithToken(token: string): ApiClient {
  return createApiClient({ baseUrl: '', token: () => token, unreachable });
}

/** The gateway's limits, in the order the console shows them (the API's `limits`; each null = no limit). */
export const LIMIT_NAMES = [
  'maxConnections', 'messagesPerSecondPerDevice', 'bytesPerSecondPerDevice', 'maxSubscriptionsPerDevice', 'maxRetainedMessages',
  'maxPacketSize', 'maxQueuedMessagesPerDevice', 'maxSessionExpirySeconds', 'maxSessionsPerDevice', 'maxConnectionsPerAddress',
  'connectionRatePerAddress', 'maxRetainedBytes', 'maxQueuedBytesPerDevice', 'maxTopicLevels', 'maxTopicLength', 'maxClientIdLength',
  'maxUserPropertiesPerPacket', 'maxFiltersPerSubscribe',
] as const satisfies readonly (keyof GatewayLimits)[];
export type LimitName = (typeof LIMIT_NAMES)[number];
/** A limit the API has and the list above lacks fails to compile here, until the console gives it a place. */
export const EVERY_LIMIT_PLACED: [Exclude<keyof GatewayLimits, LimitName>] extends [never] ? true : never = true;
