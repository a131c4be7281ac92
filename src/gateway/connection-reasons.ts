/**
 * The gateway's and the engine's words for what happened at CONNECT and at a disconnect, turned into the
 * stable reason codes of connection events (registry/connection-events.ts). Providers and the engine keep
 * their own free-text reasons for logs; this is the one place that maps them.
 */
import { RC } from '../mqtt/reason-codes.ts';
import type { AdmissionLimit, Farewell } from '../broker/index.ts';
import type { ConnectionReason } from '../registry/connection-events.ts';

/** A client certificate refused right after the TLS handshake (x509-identity.ts / chain-verify.ts reasons). */
export function tlsRefusalReason(reason: string): ConnectionReason {
  if (reason === 'no_client_certificate') return 'CERT_MISSING';
  if (reason === 'cert_has_expired' || reason === 'cert_not_yet_valid') return 'CERT_EXPIRED';
  return 'CERT_UNTRUSTED';
}

/** The certificate step before the auth chain (certificate-checks.ts `beforeConnect`). */
export function certificateStepReason(reason: string): ConnectionReason {
  switch (reason) {
    case 'no_client_certificate': return 'CERT_MISSING';
    case 'certificate_revoked': return 'CERT_REVOKED';
    case 'certificate_status_unknown': return 'CERT_STATUS_UNKNOWN';
    case 'ocsp_responder_unavailable': return 'OCSP_UNAVAILABLE';
    default: return 'CERT_UNTRUSTED';
  }
}

export type Provider = 'FUNCTION' | 'HTTPS' | null;

/** A provider's refusal; `provider` is the gateway's third-party provider (null: one-party rows). */
export function denyReason(provider: Provider, reason: string): ConnectionReason {
  if (reason === 'device_disabled') return 'DEVICE_DISABLED';
  if (provider === 'FUNCTION') return 'FUNCTION_REJECTED';
  if (provider === 'HTTPS') return 'HTTPS_REJECTED';
  return reason === 'unknown_username' ? 'UNKNOWN_DEVICE' : 'BAD_CREDENTIALS';
}

/** A backend that could not answer: the provider's, or the credential store behind one-party rows. */
export function unavailableReason(provider: Provider): ConnectionReason {
  if (provider === 'FUNCTION') return 'FUNCTION_FAILED';
  if (provider === 'HTTPS') return 'HTTPS_UNAVAILABLE';
  return 'BACKEND_UNAVAILABLE';
}

/** A per-address admission limit: a rate is a throttle, a cap on open sockets a quota. */
export function admissionReason(limit: AdmissionLimit): ConnectionReason {
  return limit === 'connectionRatePerAddress' ? 'THROTTLED' : 'QUOTA_EXCEEDED';
}

const CLIENT_ID_IN_USE = { reason: 'CLIENT_ID_IN_USE', detail: 'the client id names a session of another device' } as const;

/**
 * An attempt the engine ended before CONNACK: a CONNECT step's refusal (the gateway's own `authenticate`
 * step reports itself, with more to say), a protocol violation, a deadline, or the client leaving.
 * Null: nothing to record here.
 */
export function endedConnectReason(cause: string, farewell: Farewell | null): { reason: ConnectionReason; detail: string | null } | null {
  if (cause === 'connect_refused' && farewell !== null) {
    const detail = farewell.detail ?? null;
    switch (farewell.step) {
      // The gateway's hook recorded its refusal itself; only a hook that threw is left to report.
      case 'authenticate': return detail === 'auth_hook_failed' ? { reason: 'BACKEND_UNAVAILABLE', detail } : null;
      case 'checkConnectionQuota': case 'checkConnectionQuotaAgain':
        // A cluster node that could not read or write the cluster's count refuses as unavailable (issue 16).
        return farewell.reasonCode === RC.QUOTA_EXCEEDED ? { reason: 'QUOTA_EXCEEDED', detail: 'maxConnections' }
          : { reason: 'CLUSTER_UNAVAILABLE', detail: detail ?? 'the cluster\'s connection count cannot be reached' };
      case 'checkClusterReachable': case 'checkClusterReachableAgain': return { reason: 'CLUSTER_UNAVAILABLE', detail: 'this node cannot reach NATS' };
      case 'checkSessionOwner':
        return farewell.reasonCode === RC.QUOTA_EXCEEDED ? { reason: 'QUOTA_EXCEEDED', detail: 'maxSessionsPerDevice' } : CLIENT_ID_IN_USE;
      // A cluster node learns that another device owns the client id from the cluster's record when the session is
      // held by another node (or worker): the same refusal as checkSessionOwner's, not a protocol error.
      case 'claimSession':
        if (farewell.reasonCode === RC.CLIENT_IDENTIFIER_NOT_VALID) return CLIENT_ID_IN_USE;
        if (farewell.reasonCode === RC.SERVER_UNAVAILABLE) return { reason: 'CLUSTER_UNAVAILABLE', detail: 'the session\'s record in the cluster cannot be written' };
        return { reason: 'PROTOCOL_ERROR', detail: detail ?? farewell.step };
      default: return { reason: 'PROTOCOL_ERROR', detail: detail ?? farewell.step ?? null };
    }
  }
  // Closed by the client (or the network) before its CONNACK.
  if (cause === 'closed_before_connect' || cause === 'connection_lost') return { reason: 'SOCKET_CLOSED', detail: null };
  // A protocol violation (malformed_packet, packet_too_large, first_packet_not_connect …) or connect_timeout.
  const words = farewell?.detail;
  return { reason: 'PROTOCOL_ERROR', detail: words === undefined ? cause : `${cause}: ${words}` };
}

/** Why the engine ended a connected session's connection (broker `client_disconnected`). */
export function disconnectReason(reason: string): ConnectionReason {
  switch (reason) {
    case 'client_disconnect': return 'CLIENT_DISCONNECT';
    case 'session_taken_over': return 'TAKEN_OVER';
    case 'keepalive_timeout': return 'KEEPALIVE_TIMEOUT';
    case 'disconnected_by_server': case 'device_disabled': case 'device_deleted': case 'disconnected_by_operator': return 'KICKED';
    case 'certificate_revoked': return 'CERT_REVOKED';
    case 'server_shutting_down': return 'SERVER_SHUTDOWN';
    // This cluster node could not reach NATS: a QoS 1/2 PUBLISH it could not route, or cut off past its lease.
    case 'cluster_unreachable': case 'cluster_cut_off': return 'CLUSTER_UNAVAILABLE';
    case 'connection_lost': return 'SOCKET_CLOSED';
    default: return 'PROTOCOL_ERROR'; // the engine's event name is the specific violation (detail)
  }
}
