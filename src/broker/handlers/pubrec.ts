import type { IPubrecPacket } from '../../mqtt/codec.ts';
import { RC } from '../../mqtt/reason-codes.ts';
import type { Connection } from '../connection.ts';

/** PUBREC: answer with PUBREL [MQTT-4.3.3-?], unless the receiver refused the message (≥ 0x80). */
export function handlePubrec(conn: Connection, packet: IPubrecPacket): void {
  const packetId = packet.messageId ?? 0;
  const outcome = conn.session?.received(packetId, packet.reasonCode ?? 0) ?? 'unknown';
  if (outcome === 'pubrel') conn.sendPubrel(packetId);
  else if (typeof outcome !== 'string') {
    // The cluster's record is written first (issue 16 item 2); in order with the other PUBRELs it waits behind.
    void outcome.then(() => {
      if (conn.state !== 'closed') conn.sendPubrel(packetId);
    });
  }
  // Unknown id: PUBREL with 0x92 tells the client we hold no such flow [MQTT-4.3.3-?].
  else if (outcome === 'unknown') conn.sendAck('pubrel', packetId, conn.isV5 ? RC.PACKET_IDENTIFIER_NOT_FOUND : 0);
}
