import type { IPubcompPacket } from '../../mqtt/codec.ts';
import type { Connection } from '../connection.ts';

/** PUBCOMP ends an outbound QoS 2 flow [MQTT-4.3.3-?]. */
export function handlePubcomp(conn: Connection, packet: IPubcompPacket): void {
  conn.session?.complete(packet.messageId ?? 0, 'pubcomp', packet.reasonCode ?? 0);
}
