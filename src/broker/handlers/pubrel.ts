import type { IPubrelPacket } from '../../mqtt/codec.ts';
import { RC } from '../../mqtt/reason-codes.ts';
import type { Connection } from '../connection.ts';

/**
 * PUBREL releases an inbound QoS 2 packet id; always answered by PUBCOMP [MQTT-4.3.3-?]. On a cluster node the PUBCOMP
 * waits for the session's record to let the id go: the client may reuse it at once, and a node resuming the session
 * after this one's death must not take that new message for a resend.
 */
export function handlePubrel(conn: Connection, packet: IPubrelPacket): void {
  const packetId = packet.messageId ?? 0;
  const session = conn.session;
  const known = session?.releaseQos2(packetId) ?? false;
  const rc = known || !conn.isV5 ? 0 : RC.PACKET_IDENTIFIER_NOT_FOUND;
  const written = known && session !== null ? conn.broker.qos2Released(session, packetId) : undefined;
  if (written === undefined) return conn.sendAck('pubcomp', packetId, rc);
  void written.then(() => {
    if (conn.state !== 'closed') conn.sendAck('pubcomp', packetId, rc);
  });
}
