/**
 * A raw MQTT peer for tests that must see exactly what the server sent, packet by packet (PUBACK order, a
 * PUBACK not yet sent), or send what a client library would not (a flood that never waits for its PUBACKs).
 */
import type { Socket } from 'node:net';
import mqttPacket from 'mqtt-packet';

/** One packet's bytes. */
export function frame(packet: object, protocolVersion: 4 | 5 = 4): Buffer {
  return mqttPacket.generate(packet as mqttPacket.Packet, { protocolVersion });
}

/** Every packet the socket reads from now on, parsed, in order. */
export function readPackets(socket: Socket, protocolVersion: 4 | 5 = 4): mqttPacket.Packet[] {
  const parser = mqttPacket.parser({ protocolVersion });
  const packets: mqttPacket.Packet[] = [];
  parser.on('packet', (p) => packets.push(p));
  socket.on('data', (d: Buffer) => parser.parse(d));
  return packets;
}

/** The v5 CONNACK reason code `socket` receives (byte 3: fixed header, length, flags, reason); rejects if it closes first. */
export function connackReasonCode(socket: Socket): Promise<number> {
  return new Promise((resolve, reject) => {
    let got = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      got = Buffer.concat([got, chunk]);
      if (got.length >= 4) {
        if (got[0] !== 0x20) reject(new Error(`not a CONNACK: first byte 0x${got[0]!.toString(16)}`));
        else resolve(got[3]!);
      }
    });
    socket.once('close', () => reject(new Error('closed without CONNACK')));
  });
}
