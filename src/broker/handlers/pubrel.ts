import type { IPubrelPacket } from '../../mqtt/codec.ts';
import { RC } from '../../mqtt/reason-codes.ts';
import type { Connection } from '../connection.ts';

/**
 * PUBREL releases an inbound QoS 2 packet id; answered by PUBCOMP [MQTT-4.3.3-?]. On a cluster node the PUBCOMP
 * waits for the session's record to let the id go: the client may reuse it at once, and a node resuming the session
 * after this one's death must not take that new message for a resend (it would answer it without storing it). A
 * record that could not be written (NATS away, or the session claimed by another node meanwhile) gets no PUBCOMP: the
 * id stays held, the connection goes (v5: 0x9C use another server) and the client sends the PUBREL again once
 * connected where its session is [MQTT-4.4.0-1], which completes it there.
 */
export function handlePubrel(conn: Connection, packet: IPubrelPacket): void {
  const packetId = packet.messageId ?? 0;
  const session = conn.session;
  const known = session?.releaseQos2(packetId) ?? false;
  const rc = known || !conn.isV5 ? 0 : RC.PACKET_IDENTIFIER_NOT_FOUND;
  const written = known && session !== null ? conn.broker.qos2Released(session, packetId) : undefined;
  if (written === undefined) return conn.sendAck('pubcomp', packetId, rc);
  void written.then((ok) => {
    if (conn.state === 'closed') return;
    if (ok) return conn.sendAck('pubcomp', packetId, rc);
    // Still held here: the PUBREL sent again on this node is answered with PUBCOMP success, not 0x92.
    session!.takeQos2(packetId);
    conn.disconnect(RC.USE_ANOTHER_SERVER, 'cluster_session_unwritable');
  });
}
