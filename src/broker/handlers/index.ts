/**
 * Dispatch: checks the connection state before any handler runs, then hands the packet to the
 * one file that knows its type. A handler returns a promise only when it must wait (hooks).
 */
import type { Packet } from '../../mqtt/codec.ts';
import { RC } from '../../mqtt/reason-codes.ts';
import type { Connection } from '../connection.ts';
import { handleConnect } from './connect.ts';
import { handlePublish } from './publish.ts';
import { handlePuback } from './puback.ts';
import { handlePubrec } from './pubrec.ts';
import { handlePubrel } from './pubrel.ts';
import { handlePubcomp } from './pubcomp.ts';
import { handleSubscribe } from './subscribe.ts';
import { handleUnsubscribe } from './unsubscribe.ts';
import { handlePingreq } from './pingreq.ts';
import { handleDisconnect } from './disconnect.ts';
import { handleAuth } from './auth.ts';

export function dispatch(conn: Connection, packet: Packet): void | Promise<void> {
  if (conn.state === 'awaiting-connect') {
    // The first packet from the client MUST be a CONNECT [MQTT-3.1.0-1].
    if (packet.cmd !== 'connect') return conn.protocolViolation(RC.PROTOCOL_ERROR, 'packet_before_connect');
    return handleConnect(conn, packet);
  }
  if (conn.state !== 'connected') return;
  switch (packet.cmd) {
    case 'publish': return handlePublish(conn, packet);
    case 'puback': return handlePuback(conn, packet);
    case 'pubrec': return handlePubrec(conn, packet);
    case 'pubrel': return handlePubrel(conn, packet);
    case 'pubcomp': return handlePubcomp(conn, packet);
    case 'subscribe': return handleSubscribe(conn, packet);
    case 'unsubscribe': return handleUnsubscribe(conn, packet);
    case 'pingreq': return handlePingreq(conn);
    case 'disconnect': return handleDisconnect(conn, packet);
    case 'auth': return handleAuth(conn);
    // A second CONNECT is a protocol error [MQTT-3.1.0-2].
    case 'connect': return conn.protocolViolation(RC.PROTOCOL_ERROR, 'second_connect');
    // Server-to-client packets are not for us to receive.
    default: return conn.protocolViolation(RC.PROTOCOL_ERROR, 'unexpected_packet', packet.cmd);
  }
}
