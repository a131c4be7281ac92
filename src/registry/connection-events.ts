/**
 * Connection events (issue 14): every CONNECT attempt's outcome and every disconnect's cause, with a
 * stable reason code, so an operator can answer "why can this device not connect?" without the logs.
 * The types the data plane records, storage keeps and the API answers; no I/O here.
 */
import type { DeviceCertificateInfo } from './types.ts';

/**
 * CONNECT_REFUSED: the server ended the attempt (a CONNACK with a failure code, or the socket closed at
 * TLS); CONNECT_ABANDONED: the client went away before its CONNACK; DISCONNECTED: a connected session's
 * connection ended.
 */
export const CONNECTION_EVENT_TYPES = ['CONNECT_ACCEPTED', 'CONNECT_REFUSED', 'CONNECT_ABANDONED', 'DISCONNECTED'] as const;
export type ConnectionEventType = (typeof CONNECTION_EVENT_TYPES)[number];

/**
 * Stable reason codes: scripts and alerts match on these, so they are never renamed. `detail` carries the
 * specific violation, the limit or the backend's words.
 */
export const CONNECTION_REASONS = [
  'ACCEPTED',
  'BAD_CREDENTIALS', 'UNKNOWN_DEVICE', 'DEVICE_DISABLED', 'DEVICE_NAME_INVALID', 'CLIENT_ID_IN_USE',
  'CERT_MISSING', 'CERT_EXPIRED', 'CERT_UNTRUSTED', 'CERT_REVOKED', 'CERT_STATUS_UNKNOWN', 'OCSP_UNAVAILABLE',
  'TLS_HANDSHAKE_FAILED',
  'FUNCTION_REJECTED', 'FUNCTION_FAILED', 'HTTPS_REJECTED', 'HTTPS_UNAVAILABLE', 'BACKEND_UNAVAILABLE',
  'THROTTLED', 'QUOTA_EXCEEDED', 'PROTOCOL_ERROR',
  'KEEPALIVE_TIMEOUT', 'TAKEN_OVER', 'KICKED', 'CLIENT_DISCONNECT', 'SOCKET_CLOSED', 'SERVER_SHUTDOWN',
  'CLUSTER_UNAVAILABLE',
] as const;
export type ConnectionReason = (typeof CONNECTION_REASONS)[number];

export function isConnectionEventType(value: string): value is ConnectionEventType {
  return (CONNECTION_EVENT_TYPES as readonly string[]).includes(value);
}

export function isConnectionReason(value: string): value is ConnectionReason {
  return (CONNECTION_REASONS as readonly string[]).includes(value);
}

/** What the data plane reports, before it is stored. Device text is bounded; never a password. */
export interface ConnectionEventInput {
  gatewayId: string;
  type: ConnectionEventType;
  reason: ConnectionReason;
  /** The specific violation, the limit, the backend's answer, the TLS error … */
  detail: string | null;
  /**
   * What the device was sent, as it went on the wire: a v5 CONNACK / DISCONNECT reason code, or a v3.1.1
   * CONNACK return code (see `protocolVersion`); null when nothing was sent (closed at TLS, a v3.1.1
   * disconnect, the client went away).
   */
  mqttReasonCode: number | null;
  /** 3, 4 (3.1.1) or 5; null before the CONNECT was read. */
  protocolVersion: number | null;
  clientId: string | null;
  username: string | null;
  deviceName: string | null;
  address: string | null;
  certificate: DeviceCertificateInfo | null;
  /** ISO 8601. */
  at: string;
}

export interface ConnectionEventRecord extends ConnectionEventInput {
  /** Time-ordered text (as message ids): newer events sort after older ones; the cursor pages on it. */
  id: string;
  /** Identical events folded into this one (a device retrying 50 times a second is one row with a count). */
  count: number;
  /** When the last folded occurrence happened (= `at` for a single one). */
  lastAt: string;
}

export interface ConnectionEventQuery {
  gatewayId?: string;
  deviceName?: string;
  /** A refused device without a record is found by what it presented. */
  username?: string;
  clientId?: string;
  type?: ConnectionEventType;
  reason?: ConnectionReason;
  /** ISO 8601: events whose last occurrence is at or after it. */
  since?: string;
  /** Only ids below this one (the next page, newest first). */
  before?: string;
  limit: number;
}

/** Where connection events are kept (both storage backends). */
export interface ConnectionEventRepository {
  /** A few statements for the whole batch; an id already stored is left as it is. */
  insertMany(records: readonly ConnectionEventRecord[]): Promise<void>;
  /** Folded occurrences added to stored rows. */
  addCounts(updates: readonly { id: string; count: number; lastAt: string }[]): Promise<void>;
  /**
   * For the nodes of a cluster, which fold apart: each record is folded into the newest stored row of the same key
   * (gateway, type, reason, client id, username, device, address) whose first occurrence is at most `windowMs` before
   * the record's (its count added, its last occurrence moved), else inserted; one key at a time across the nodes
   * sharing the database. Returns, in order, the id of the row each record went to (its own when inserted).
   */
  foldMany(records: readonly ConnectionEventRecord[], windowMs: number): Promise<string[]>;
  /** Newest first. */
  query(query: ConnectionEventQuery): Promise<ConnectionEventRecord[]>;
  /** Keeps the newest `keep` of each gateway; returns how many went. */
  prunePerGateway(keep: number): Promise<number>;
  /** Drops events whose last occurrence is before `before` (ISO 8601); returns how many. */
  pruneOlderThan(before: string): Promise<number>;
}
