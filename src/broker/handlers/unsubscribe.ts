import type { IUnsubscribePacket } from '../../mqtt/codec.ts';
import { RC } from '../../mqtt/reason-codes.ts';
import type { Connection } from '../connection.ts';
import { nextTurn, pastDeadline, sliceDeadline } from '../slices.ts';

/** UNSUBSCRIBE: remove each filter that matches exactly [MQTT-3.10.4-1], answer UNSUBACK [MQTT-3.10.4-4]; in slices (slices.ts). */
export function handleUnsubscribe(conn: Connection, packet: IUnsubscribePacket): void | Promise<void> {
  // [MQTT-3.10.3-2] at least one Topic Filter.
  if (packet.unsubscriptions.length === 0) return conn.protocolViolation(RC.PROTOCOL_ERROR, 'unsubscribe_without_filters');
  const codes: number[] = [];
  const run = (from: number): void | Promise<void> => {
    const deadline = sliceDeadline();
    for (let i = from; i < packet.unsubscriptions.length; i++) {
      if (conn.state === 'closed') return;
      if (i > from && pastDeadline(deadline)) return nextTurn().then(() => run(i));
      const sub = conn.session!.subscriptions.get(packet.unsubscriptions[i]!);
      if (sub === undefined) {
        codes.push(RC.NO_SUBSCRIPTION_EXISTED);
      } else {
        conn.broker.unsubscribe(sub);
        codes.push(RC.SUCCESS);
      }
    }
    conn.send({ cmd: 'unsuback', messageId: packet.messageId ?? 0, ...(conn.isV5 ? { granted: codes } : {}) } as Parameters<Connection['send']>[0]);
  };
  return run(0);
}
