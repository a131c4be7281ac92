/**
 * The one table of coded errors. The control plane throws `GatehouseError`s built from it; the API
 * turns them into `{ error: { code, message, field } }` with the table's HTTP status. Tests assert
 * codes, not messages.
 */
export const ERRORS = {
  GW_ERR_VALIDATION: { status: 400, message: 'Invalid input' },
  GW_ERR_NOT_FOUND: { status: 404, message: 'Not found' },
  GW_ERR_CONFLICT: { status: 409, message: 'Conflict' },
  GW_ERR_UNAUTHORIZED: { status: 401, message: 'Missing or invalid admin token' },
  GW_ERR_CONFIG_INVALID: { status: 500, message: 'Invalid process configuration' },
  GW_ERR_INTERNAL: { status: 500, message: 'Internal error' },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof ERRORS;

export class GatehouseError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly field: string | undefined;

  constructor(code: ErrorCode, message?: string, field?: string) {
    super(message ?? ERRORS[code].message);
    this.name = 'GatehouseError';
    this.code = code;
    this.status = ERRORS[code].status;
    this.field = field;
  }
}
