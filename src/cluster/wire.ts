/**
 * A message as it travels between nodes: a compact binary frame, because every cross-node delivery
 * pays for it. The MQTT topic travels inside the frame, never in the NATS subject, so any topic a
 * device may use (`.`, spaces, `*`, `>`, empty levels, any UTF-8) crosses unchanged.
 *
 *   u8  version (1)
 *   u8  flags: bits 0-1 QoS, bit 2 RETAIN, bit 3 properties follow
 *   f64 expiresAt (epoch ms, 0 = never)
 *   u16 topic length, topic (UTF-8)
 *   u16 sender length, sender client id (UTF-8; No Local compares it)
 *   [u32 properties length, properties (JSON; correlation data as base64)]
 *   payload: the rest
 */
import type { ForwardedProperties, QoS } from '../mqtt/codec.ts';
import { createMessage, type Message } from '../broker/index.ts';

const VERSION = 1;
const HEADER = 2 + 8;

interface WireProperties extends Omit<ForwardedProperties, 'correlationData'> {
  correlationData?: string;
}

export function encodeMessage(m: Message): Buffer {
  const topicLength = Buffer.byteLength(m.topic);
  const senderLength = Buffer.byteLength(m.senderId);
  let props: Buffer | null = null;
  if (m.properties !== undefined) {
    const { correlationData, ...rest } = m.properties;
    const wire: WireProperties = correlationData === undefined ? rest : { ...rest, correlationData: correlationData.toString('base64') };
    props = Buffer.from(JSON.stringify(wire));
  }
  const size = HEADER + 2 + topicLength + 2 + senderLength + (props === null ? 0 : 4 + props.length) + m.payload.length;
  const out = Buffer.allocUnsafe(size);
  out[0] = VERSION;
  out[1] = m.qos | (m.retain ? 4 : 0) | (props === null ? 0 : 8);
  out.writeDoubleBE(m.expiresAt, 2);
  let at = HEADER;
  out.writeUInt16BE(topicLength, at);
  at += 2 + out.write(m.topic, at + 2, 'utf8');
  out.writeUInt16BE(senderLength, at);
  at += 2 + out.write(m.senderId, at + 2, 'utf8');
  if (props !== null) {
    out.writeUInt32BE(props.length, at);
    at += 4 + props.copy(out, at + 4);
  }
  m.payload.copy(out, at);
  return out;
}

/** Throws on a frame that is not one (another version, cut short): the caller counts and drops it. */
export function decodeMessage(bytes: Uint8Array): Message {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (b.length < HEADER + 4 || b[0] !== VERSION) throw new Error(`not a version ${VERSION} message frame`);
  const flags = b[1]!;
  const qos = (flags & 3) as QoS;
  if (qos > 2) throw new Error('QoS 3 in a message frame');
  const expiresAt = b.readDoubleBE(2);
  let at = HEADER;
  const field = (width: 2 | 4): Buffer => {
    if (at + width > b.length) throw new Error('message frame cut short');
    const length = width === 2 ? b.readUInt16BE(at) : b.readUInt32BE(at);
    const start = at + width;
    if (start + length > b.length) throw new Error('message frame cut short');
    at = start + length;
    return b.subarray(start, at);
  };
  const topic = field(2).toString('utf8');
  const senderId = field(2).toString('utf8');
  let properties: ForwardedProperties | undefined;
  if ((flags & 8) !== 0) {
    const wire = JSON.parse(field(4).toString('utf8')) as WireProperties;
    const { correlationData, ...rest } = wire;
    properties = correlationData === undefined ? rest : { ...rest, correlationData: Buffer.from(correlationData, 'base64') };
  }
  // A copy: the frame's buffer belongs to the NATS client, and the payload may outlive it in a queue.
  const payload = Buffer.from(b.subarray(at));
  return createMessage({ topic, payload, qos, retain: (flags & 4) !== 0, properties, expiresAt, senderId });
}
