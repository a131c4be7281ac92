/**
 * The tables as Kysely sees them. Portable column types only: JSON as text, booleans as 0/1 integers,
 * timestamps as ISO 8601 text (readable in a SQL shell). The data plane's durable MQTT state (retained
 * messages, sessions) is not here: it lives in its own SQLite file (sqlite-broker-store.ts).
 */
export interface GatewaysTable {
  id: string;
  name: string;
  protocol: string;
  port: number;
  product_key: string;
  data_parsing: string;
  auth_type: string;
  third_party: string | null;
  x509_enabled: number;
  ocsp: string;
  /** JSON; null in rows stored before access control existed (read as the default, ALLOW with no rules). */
  access_control: string | null;
  /** JSON; null in rows stored before limits were settable (read as the defaults, which were the fixed limits). */
  limits: string | null;
  server_certificate_chain: string;
  server_private_key_encrypted: string;
  device_root_certificates: string | null;
  trusted_certificate: string | null;
  enabled: number;
  status: string;
  status_reason: string | null;
  created_at: string;
  updated_at: string;
}

export interface ProductsTable {
  product_key: string;
  name: string;
  gateway_id: string;
  created_at: string;
}

export interface DevicesTable {
  product_key: string;
  device_name: string;
  username: string | null;
  password_hash: string | null;
  sn: string | null;
  origin: string;
  connection_state: string;
  disabled: number;
  last_online_at: string | null;
  client_address: string | null;
  certificate: string | null;
  created_at: string;
  updated_at: string;
  /** The node holding the device's connection while ONLINE (migration 0008); null for none or unknown. */
  online_node: string | null;
}

/** One property of a device (an Alink property post writes only the names it carries). */
export interface DevicePropertiesTable {
  product_key: string;
  device_name: string;
  name: string;
  /** JSON. */
  value: string;
  /** What this property adds to the device's JSON document (registry/device-properties.ts). */
  bytes: number;
}

export interface FunctionsTable {
  name: string;
  source: string;
  timeout_ms: number;
  memory_mb: number;
  created_at: string;
  updated_at: string;
}

export interface SettingsTable {
  key: string;
  value: string;
}

export interface MessagesTable {
  id: string;
  gateway_id: string;
  product_key: string;
  device_name: string;
  topic: string;
  qos: number;
  /** The bytes as received (BLOB / bytea; base64 text before migration 0009). */
  payload: Buffer;
  parsed: string | null;
  parse_error: string | null;
  received_at: string;
}

export interface WebhooksTable {
  id: string;
  url: string;
  description: string | null;
  gateway_id: string | null;
  event_types: string;
  secret_encrypted: string;
  ca_certificate: string | null;
  enabled: number;
  created_at: string;
  updated_at: string;
}

export interface WebhookDeadLettersTable {
  id: string;
  webhook_id: string;
  event_id: string;
  body: string;
  attempts: number;
  last_error: string;
  failed_at: string;
}

export interface WebhookOutboxTable {
  webhook_id: string;
  event_id: string;
  event_type: string;
  body: string;
  created_at: string;
  /** The node sending it (issue 16); null for rows written before claims. */
  claimed_by: string | null;
  /** ISO time the claim lapses unless its node renews it. */
  claimed_until: string | null;
}

/** A CONNECT outcome or a disconnect (issue 14); repeats folded into `count`. */
export interface ConnectionEventsTable {
  /** Time-ordered text, as message ids. */
  id: string;
  gateway_id: string;
  type: string;
  reason: string;
  detail: string | null;
  mqtt_reason_code: number | null;
  protocol_version: number | null;
  client_id: string | null;
  username: string | null;
  device_name: string | null;
  address: string | null;
  /** JSON ({cn, serial, issuer, fingerprint256}). */
  certificate: string | null;
  at: string;
  count: number;
  last_at: string;
}

/** An import operation (issue 14), shared by every node (issue 16). */
export interface ImportOperationsTable {
  id: string;
  product_key: string;
  /** RUNNING, DONE or FAILED. */
  state: string;
  total: number;
  processed: number;
  created: number;
  failed: number;
  started_at: string;
  finished_at: string | null;
  /** JSON ({code, message, field}) of a FAILED operation. */
  error: string | null;
  /** JSON array of the failed rows reported one by one. */
  failures: string;
  failures_omitted: number;
  /** The node running it (null: a registry without a node id, e.g. in a test). */
  node_id: string | null;
  /** ISO time: a RUNNING operation whose lease is past lost its node. */
  lease_until: string | null;
}

export interface Database {
  gateways: GatewaysTable;
  products: ProductsTable;
  devices: DevicesTable;
  device_properties: DevicePropertiesTable;
  functions: FunctionsTable;
  settings: SettingsTable;
  messages: MessagesTable;
  webhooks: WebhooksTable;
  webhook_dead_letters: WebhookDeadLettersTable;
  webhook_outbox: WebhookOutboxTable;
  connection_events: ConnectionEventsTable;
  import_operations: ImportOperationsTable;
}

export type Dialect = 'sqlite' | 'postgres';
