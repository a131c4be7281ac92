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

  // A cluster node (GATEHOUSE_NATS_URL), checked at start
  GW_ERR_CLUSTER_NEEDS_DATABASE: { status: 500, message: 'A cluster node (GATEHOUSE_NATS_URL) needs PostgreSQL (GATEHOUSE_DATABASE_URL)' },
  GW_ERR_CLUSTER_NATS_UNREACHABLE: { status: 500, message: 'The NATS server of GATEHOUSE_NATS_URL cannot be reached' },
  GW_ERR_WORKERS_NEED_CLUSTER: { status: 500, message: 'GATEHOUSE_WORKERS needs GATEHOUSE_NATS_URL and GATEHOUSE_DATABASE_URL' },
  GW_ERR_CLUSTER_NODE_ID_TAKEN: { status: 500, message: 'Another running node uses this GATEHOUSE_NODE_ID' },
  // A step of the start (storage, NATS, the gateways, the API) waited past its deadline
  GW_ERR_START_STEP_TIMED_OUT: { status: 500, message: 'A step of the start did not finish in time' },
  GW_ERR_HTTP_PORT_UNAVAILABLE: { status: 500, message: 'The console and API cannot listen on their address and port' },

  // The data directory (checked at start, by `gatehouse doctor`, `backup` and `restore`)
  GW_ERR_DATA_DIR_DATABASE_MISSING: { status: 500, message: 'The data directory holds an installation\'s state but its database is missing, empty or new' },
  GW_ERR_DATA_DIR_DATABASE_FOREIGN: { status: 500, message: 'The database belongs to another installation or application' },
  GW_ERR_DATA_DIR_DATABASE_DAMAGED: { status: 500, message: 'A database file of the data directory is damaged' },
  GW_ERR_DATA_DIR_IDENTITY_INVALID: { status: 500, message: 'The data directory\'s identity file is unreadable' },
  GW_ERR_DATA_DIR_PERMISSIONS: { status: 500, message: 'The data directory or a file in it is open to other users and cannot be tightened' },
  GW_ERR_BACKUP_FAILED: { status: 500, message: 'The backup could not be written' },
  GW_ERR_RESTORE_REFUSED: { status: 500, message: 'The restore was refused' },
  GW_ERR_UNSUPPORTED_MEDIA_TYPE: { status: 415, message: 'Unsupported content type' },
  GW_ERR_BODY_TOO_LARGE: { status: 413, message: 'Request body too large' },

  // Gateways (DESIGN.md "Contracts decided": gateway fields)
  GW_ERR_GATEWAY_NOT_FOUND: { status: 404, message: 'No gateway with this ID' },
  GW_ERR_GATEWAY_NAME_INVALID: { status: 400, message: 'Gateway name must be 4-30 characters of letters, digits and underscores' },
  GW_ERR_GATEWAY_NAME_TAKEN: { status: 409, message: 'Another gateway already has this name' },
  GW_ERR_PROTOCOL_UNSUPPORTED: { status: 400, message: 'Protocol must be MQTT' },
  GW_ERR_PORT_OUT_OF_RANGE: { status: 400, message: 'Port must be an integer from 1024 to 65535' },
  GW_ERR_PORT_TAKEN: { status: 409, message: 'Another gateway already uses this port' },
  GW_ERR_PROVIDER_REQUIRED: { status: 400, message: 'Third-party verification needs a provider (FUNCTION or HTTPS)' },
  GW_ERR_URL_INVALID: { status: 400, message: 'Not a valid URL' },
  GW_ERR_URL_NOT_HTTPS: { status: 400, message: 'The verification URL must start with https://' },
  GW_ERR_TOO_MANY_PARAMS: { status: 400, message: 'At most 10 custom verification parameters' },
  GW_ERR_PARAM_TOO_LONG: { status: 400, message: 'Parameter keys and values are at most 64 characters' },
  GW_ERR_PARAM_KEY_INVALID: { status: 400, message: 'Parameter key is empty, repeated or reserved' },
  GW_ERR_TEMPLATE_VARIABLE_UNKNOWN: { status: 400, message: 'Unknown template variable' },
  GW_ERR_FUNCTION_UNKNOWN: { status: 400, message: 'No verification function with this name' },
  GW_ERR_OCSP_NEEDS_X509: { status: 400, message: 'Client OCSP verification needs X.509 device verification' },
  GW_ERR_SCRIPT_REQUIRED: { status: 400, message: 'A script is required' },
  GW_ERR_SCRIPT_SYNTAX: { status: 400, message: 'The script is not valid JavaScript' },
  GW_ERR_SCRIPT_NO_TRANSFORM: { status: 400, message: 'The parsing script does not define transformPayload(topic, bytes)' },
  GW_ERR_ACL_ACTION_INVALID: { status: 400, message: 'An access rule action (and the default action) must be ALLOW or DENY' },
  GW_ERR_ACL_ACCESS_INVALID: { status: 400, message: 'An access rule access must be PUBLISH, SUBSCRIBE or ALL' },
  GW_ERR_ACL_TOPIC_INVALID: { status: 400, message: 'An access rule topic must be a valid topic filter whose placeholders fill whole levels' },
  GW_ERR_ACL_PLACEHOLDER_UNKNOWN: { status: 400, message: 'Unknown placeholder in an access rule topic' },
  GW_ERR_ACL_TOO_MANY_RULES: { status: 400, message: 'Too many access rules' },
  GW_ERR_LIMIT_UNKNOWN: { status: 400, message: 'Unknown gateway limit' },
  GW_ERR_LIMIT_NOT_INTEGER: { status: 400, message: 'A gateway limit must be a whole number or null (no limit)' },
  GW_ERR_LIMIT_OUT_OF_RANGE: { status: 400, message: 'A gateway limit is outside its allowed range' },

  // Certificates (PEM)
  GW_ERR_CERT_REQUIRED: { status: 400, message: 'A certificate is required by the chosen options' },
  GW_ERR_CERT_INVALID: { status: 400, message: 'Not a valid PEM certificate' },
  GW_ERR_CERT_CHAIN_REVERSED: { status: 400, message: 'The certificate chain is in reverse order: put the server certificate first' },
  GW_ERR_CERT_CHAIN_BROKEN: { status: 400, message: 'A certificate in the chain was not issued by the next one' },
  GW_ERR_CERT_NOT_CA: { status: 400, message: 'Not a CA certificate' },
  GW_ERR_CERT_EXPIRED: { status: 400, message: 'Certificate has expired' },
  GW_ERR_CERT_NOT_YET_VALID: { status: 400, message: 'Certificate is not valid yet' },
  GW_ERR_KEY_INVALID: { status: 400, message: 'Not a valid unencrypted PEM private key' },
  GW_ERR_KEY_MISMATCH: { status: 400, message: 'The private key does not match the server certificate' },

  // Products and devices (one-party rows)
  GW_ERR_PRODUCT_NOT_FOUND: { status: 404, message: 'No product with this product key' },
  GW_ERR_DEVICE_NOT_FOUND: { status: 404, message: 'No device with this name in the product' },
  GW_ERR_DEVICE_NAME_INVALID: { status: 400, message: 'Device name must be 4-32 characters of letters, digits and - _ @ . :' },
  GW_ERR_DEVICE_NAME_TAKEN: { status: 409, message: 'The product already has a device with this name' },
  GW_ERR_USERNAME_INVALID: { status: 400, message: 'Username must be 4-32 characters of letters, digits and - _ @ . :' },
  GW_ERR_USERNAME_TAKEN: { status: 409, message: 'The product already has a device with this username' },
  GW_ERR_PASSWORD_INVALID: { status: 400, message: 'Password must be 1-32 characters of letters, digits and - _ @ . :' },
  GW_ERR_SN_INVALID: { status: 400, message: 'SN must be at most 64 printable characters' },
  GW_ERR_IMPORT_TOO_LARGE: { status: 413, message: 'Too many rows: at most 10,000 per import request, 100,000 per import operation' },
  GW_ERR_IMPORT_NOT_FOUND: { status: 404, message: 'No import operation with this id (finished ones are kept for an hour)' },
  GW_ERR_IMPORT_INTERRUPTED: { status: 500, message: 'The node running the import stopped before it finished; rows imported before stay' },
  GW_ERR_DEVICE_STATUS_INVALID: { status: 400, message: 'status must be online, offline, inactive or disabled' },
  GW_ERR_DEVICE_SEARCH_INVALID: { status: 400, message: 'search is at most 64 characters, without control characters' },
  GW_ERR_PAGE_OFFSET_UNSUPPORTED: { status: 400, message: 'Device lists page by cursor: pass nextCursor of the previous page as cursor (offset is gone)' },
  GW_ERR_IMPORT_INVALID: { status: 400, message: 'The import is not a JSON array of rows or CSV sn,username,password' },
  GW_ERR_IMPORT_ENCODING: { status: 400, message: 'The CSV is not UTF-8 and no charset was named' },
  GW_ERR_IMPORT_CHARSET_UNSUPPORTED: { status: 400, message: 'The named charset is not supported for CSV imports' },

  // Verification functions
  GW_ERR_FUNCTION_NOT_FOUND: { status: 404, message: 'No function with this name' },
  GW_ERR_FUNCTION_NAME_INVALID: { status: 400, message: 'Function name must be 1-64 characters of letters, digits, - and _' },
  GW_ERR_FUNCTION_NAME_TAKEN: { status: 409, message: 'A function with this name already exists' },
  GW_ERR_FUNCTION_IN_USE: { status: 409, message: 'A gateway uses this function' },
  GW_ERR_FUNCTION_LIMIT_OUT_OF_RANGE: { status: 400, message: 'Function limit out of range' },

  // Platform side: messages, downlink, webhooks, parsing
  GW_ERR_WEBHOOK_NOT_FOUND: { status: 404, message: 'No webhook with this id' },
  GW_ERR_WEBHOOK_EVENTS_INVALID: { status: 400, message: 'Event types must be a non-empty list of message, online, offline' },
  GW_ERR_WEBHOOK_SECRET_INVALID: { status: 400, message: 'The signing secret must be 16-128 printable characters' },
  GW_ERR_DEAD_LETTER_NOT_FOUND: { status: 404, message: 'No dead letter with this id' },
  GW_ERR_TOPIC_INVALID: { status: 400, message: 'Not a valid MQTT topic name' },
  GW_ERR_TOPIC_OVER_LIMIT: { status: 400, message: 'The topic has more levels or bytes than the gateway allows its devices' },
  GW_ERR_PAYLOAD_INVALID: { status: 400, message: 'The payload is not valid base64 (or hex)' },
  GW_ERR_TIME_INVALID: { status: 400, message: 'Not an ISO 8601 time' },
  // Connection events
  GW_ERR_EVENT_TYPE_UNKNOWN: { status: 400, message: 'Unknown connection event type' },
  GW_ERR_EVENT_REASON_UNKNOWN: { status: 400, message: 'Unknown connection event reason' },
  GW_ERR_CURSOR_INVALID: { status: 400, message: 'Not a cursor this API gave (use nextCursor of the previous page)' },
  GW_ERR_PAGE_LIMIT_INVALID: { status: 400, message: 'The page limit is outside its allowed range' },
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
