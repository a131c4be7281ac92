import type { IDisconnectPacket } from '../../mqtt/codec.ts';
import { RC } from '../../mqtt/reason-codes.ts';
import type { Connection } from '../connection.ts';

/**
 * Client DISCONNECT. 0x00 discards the will [MQTT-3.14.4-3]; any other reason keeps it. A v5 client
 * may change the session expiry here, but not from 0 to non-zero [MQTT-3.14.2-2].
 */
export function handleDisconnect(conn: Connection, packet: IDisconnectPacket): void {
  const session = conn.session;
  const newExpiry = packet.properties?.sessionExpiryInterval;
  if (session !== null && newExpiry !== undefined) {
    if (session.expiryInterval === 0 && newExpiry !== 0) {
      conn.protocolViolation(RC.PROTOCOL_ERROR, 'session_expiry_changed_from_zero');
      return;
    }
    session.expiryInterval = Math.min(newExpiry, conn.broker.options.maxSessionExpiry);
    session.changed();
  }
  // Only Normal disconnection (0x00) deletes the will [MQTT-3.1.2-8]; 0x04 and error codes keep it.
  conn.normalDisconnect = (packet.reasonCode ?? 0) === RC.SUCCESS;
  conn.close('client_disconnect');
}
