/**
 * MQTT 3.1.1 control packets for the generator, built once with mqtt-packet. Hot-path frames (PUBLISH,
 * PUBACK) are templates whose packet identifier and timestamp bytes are patched in place.
 */
import { generate } from 'mqtt-packet';

export function connectPacket(clientId: string, keepalive: number): Buffer {
  return generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId, keepalive });
}

export function subscribePacket(topic: string, qos: 0 | 1, messageId: number): Buffer {
  return generate({ cmd: 'subscribe', messageId, subscriptions: [{ topic, qos }] });
}

export const DISCONNECT: Buffer = generate({ cmd: 'disconnect' });

export const PUBACK_TEMPLATE: Buffer = generate({ cmd: 'puback', messageId: 1 });
/** PUBACK is 2 bytes of fixed header, then the packet identifier. */
export const PUBACK_ID_OFFSET = 2;

export interface PublishTemplate {
  frame: Buffer;
  /** Offset of the 2-byte packet identifier (QoS 1 only; -1 for QoS 0). */
  idOffset: number;
  payloadOffset: number;
}

export function publishTemplate(topic: string, payloadBytes: number, qos: 0 | 1): PublishTemplate {
  const payload = Buffer.alloc(payloadBytes, 0x61);
  const frame = generate({ cmd: 'publish', topic, payload, qos, dup: false, retain: false, messageId: qos === 1 ? 1 : undefined });
  const remaining = 2 + Buffer.byteLength(topic) + (qos === 1 ? 2 : 0) + payloadBytes;
  const bodyStart = frame.length - remaining;
  const topicEnd = bodyStart + 2 + Buffer.byteLength(topic);
  return { frame, idOffset: qos === 1 ? topicEnd : -1, payloadOffset: frame.length - payloadBytes };
}

/** Offset of the payload inside a received PUBLISH body, or -1 if the body is too short. */
export function publishPayloadStart(header: number, buf: Buffer, bodyStart: number, bodyEnd: number): number {
  if (bodyEnd - bodyStart < 2) return -1;
  const qos = (header >> 1) & 3;
  const start = bodyStart + 2 + buf.readUInt16BE(bodyStart) + (qos > 0 ? 2 : 0);
  return start <= bodyEnd ? start : -1;
}
