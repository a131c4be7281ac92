/**
 * The tables as Kysely sees them. Portable column types only: JSON as text, booleans as 0/1 integers,
 * entity timestamps as ISO 8601 text (readable in a SQL shell), data-plane expiries as epoch-ms
 * integers (compared numerically on every sweep).
 */
import type { Generated } from 'kysely';

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
  properties: string;
  created_at: string;
  updated_at: string;
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

export interface RetainedMessagesTable {
  gateway_id: string;
  topic: string;
  payload: Buffer;
  qos: number;
  properties: string | null;
  expires_at: number | null;
}

export interface SessionsTable {
  gateway_id: string;
  client_id: string;
  expiry_interval: number;
  expires_at: number | null;
  subscriptions: string;
}

export interface SessionMessagesTable {
  id: Generated<number>;
  gateway_id: string;
  client_id: string;
  topic: string;
  payload: Buffer;
  qos: number;
  retain: number;
  properties: string | null;
  packet_id: number | null;
  expires_at: number | null;
}

export interface Database {
  gateways: GatewaysTable;
  products: ProductsTable;
  devices: DevicesTable;
  functions: FunctionsTable;
  settings: SettingsTable;
  retained_messages: RetainedMessagesTable;
  sessions: SessionsTable;
  session_messages: SessionMessagesTable;
}

export type Dialect = 'sqlite' | 'postgres';
