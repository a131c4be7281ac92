import { RC } from '../../mqtt/reason-codes.ts';
import type { Connection } from '../connection.ts';

/**
 * No enhanced authentication method is configured, so no AUTH exchange was started: an AUTH
 * packet from the client is a protocol error [MQTT-4.12.0-6? see §4.12: AUTH only after a CONNECT with an Authentication Method].
 */
export function handleAuth(conn: Connection): void {
  conn.protocolViolation(RC.PROTOCOL_ERROR, 'unexpected_auth');
}
