import type { IDisconnectPacket } from '../../mqtt/codec.ts';
import { RC } from '../../mqtt/reason-codes.ts';
import type { Connection } from '../connection.ts';

/**
 * Client DISCONNECT. 0x00 discards the will [MQTT-3.14.4-3]; 0x04 keeps it [§3.14.2.1]. A v5 client
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
  conn.normalDisconnect = (packet.reasonCode ?? 0) !== RC.DISCONNECT_WITH_WILL;
  conn.close('client_disconnect');
}
