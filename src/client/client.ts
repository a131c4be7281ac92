/**
 * The REST API client the console and the CLI share: openapi-fetch typed by the generated `paths`
 * (api-types.ts), so a path, its parameters, its body and its answer are checked against the route schemas
 * at compile time. It adds what both need: the admin token on every request, every failure as one
 * `ApiError` (the API's `{ error: { code, message, field } }`, or no answer at all), and `ok()` to turn an
 * answer into its body. No Node-only imports: the console bundles this file.
 */
import createFetchClient, { type Client } from 'openapi-fetch';
import type { paths } from './api-types.ts';

/** An API answer that was not 2xx, with the API's error body; status 0 when no answer came (or the caller refused first). */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly field: string | null;

  constructor(status: number, code: string, message: string, field: string | null) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.field = field;
  }
}

export interface ApiClientOptions {
  /** Where the API is: '' for the page's own origin (the console), `http://host:port` for the CLI. */
  baseUrl: string;
  /** The admin token, read at every request (the console's changes when the operator signs in). */
  token: () => string | null | undefined;
  /** The error a request that got no answer becomes: the console and the CLI each say it in their reader's words. */
  unreachable: (cause: string) => ApiError;
  /** Told of every 401 before its error is thrown (the console goes back to its sign-in page). */
  onUnauthorized?: () => void;
}

export type ApiClient = Client<paths>;

/** The message of a failed fetch: undici hides the socket's reason (ECONNREFUSED …) in `cause`. */
function causeOf(error: unknown): string {
  const cause = (error as { cause?: { message?: unknown } } | null)?.cause?.message;
  return typeof cause === 'string' ? cause : error instanceof Error ? error.message : String(error);
}

export function createApiClient(options: ApiClientOptions): ApiClient {
  const client = createFetchClient<paths>({
    baseUrl: options.baseUrl,
    // globalThis.fetch looked up per call, and called unbound (a browser refuses fetch called on another object).
    fetch: async (request: Request) => {
      try {
        return await globalThis.fetch(request);
      } catch (error) {
        // A caller's own abort stays what it is; anything else is "no answer".
        if (request.signal.aborted) throw error;
        throw options.unreachable(causeOf(error));
      }
    },
  });
  client.use({
    onRequest({ request }) {
      const token = options.token();
      if (token) request.headers.set('authorization', `Bearer ${token}`);
      return request;
    },
    onResponse({ response }) {
      if (response.status === 401) options.onUnauthorized?.();
      return response;
    },
  });
  return client;
}

/** The error an answer that was not 2xx carries, from its `{ error: { code, message, field } }` when it has one. */
export function apiError(response: Response, body: unknown): ApiError {
  const error = typeof body === 'object' && body !== null ? (body as { error?: unknown }).error : undefined;
  const fields = typeof error === 'object' && error !== null ? error as { code?: unknown; message?: unknown; field?: unknown } : {};
  const text = typeof body === 'string' && body !== '' ? body : `${response.status} ${response.statusText}`.trim();
  return new ApiError(
    response.status,
    typeof fields.code === 'string' ? fields.code : `HTTP_${response.status}`,
    typeof fields.message === 'string' ? fields.message : text,
    typeof fields.field === 'string' ? fields.field : null,
  );
}

/** What a successful answer's body is: the `data` of the answer's success branch. */
export type Data<R> = R extends { data: infer D } ? D : never;

/** The body of a 2xx answer; any other answer thrown as an `ApiError`. */
export async function ok<R extends { data?: unknown; error?: unknown; response: Response }>(pending: Promise<R>): Promise<Data<R>> {
  const { data, error, response } = await pending;
  if (!response.ok) throw apiError(response, error);
  return data as Data<R>;
}
