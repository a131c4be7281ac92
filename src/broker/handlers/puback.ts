import type { IPubackPacket } from '../../mqtt/codec.ts';
import type { Connection } from '../connection.ts';

/** PUBACK ends an outbound QoS 1 flow [MQTT-4.3.2-?]; an unknown id is ignored (it may be a late duplicate). */
export function handlePuback(conn: Connection, packet: IPubackPacket): void {
  conn.session?.complete(packet.messageId ?? 0, 'puback', packet.reasonCode ?? 0);
}
