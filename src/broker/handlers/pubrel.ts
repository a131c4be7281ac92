import type { IPubrelPacket } from '../../mqtt/codec.ts';
import { RC } from '../../mqtt/reason-codes.ts';
import type { Connection } from '../connection.ts';

/** PUBREL releases an inbound QoS 2 packet id; always answered by PUBCOMP [MQTT-4.3.3-?]. */
export function handlePubrel(conn: Connection, packet: IPubrelPacket): void {
  const packetId = packet.messageId ?? 0;
  const known = conn.session?.releaseQos2(packetId) ?? false;
  conn.sendAck('pubcomp', packetId, known || !conn.isV5 ? 0 : RC.PACKET_IDENTIFIER_NOT_FOUND);
}
