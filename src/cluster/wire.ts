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
 *
 * QoS 0 forwards of one event-loop turn cross together (links.ts): a NATS message costs the sending node, nats-server
 * and every receiving node more than the bytes it carries, so several messages go in one batch frame:
 *
 *   u8  2, then per message: u32 length, its frame as above
 *
 * A lone message goes as its own frame (version 1).
 */
import type { ForwardedProperties, QoS } from '../mqtt/codec.ts';
import { createMessage, type Message } from '../broker/index.ts';

const VERSION = 1;
const BATCH = 2;
const HEADER = 2 + 8;
/** A batch frame's bytes for `frames`, before the frames themselves: its first byte and a length per frame. */
export const batchOverhead = (frames: number): number => 1 + 4 * frames;

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

/** Frames of several messages (encodeMessage's) in one batch frame; `bytes`: their total length. */
export function encodeBatch(frames: readonly Buffer[], bytes: number): Buffer {
  const out = Buffer.allocUnsafe(batchOverhead(frames.length) + bytes);
  out[0] = BATCH;
  let at = 1;
  for (const frame of frames) {
    out.writeUInt32BE(frame.length, at);
    at += 4 + frame.copy(out, at + 4);
  }
  return out;
}

/** The messages of a frame, a lone message's or a batch's, in order. Throws on one that is neither (nothing of it is used). */
export function decodeFrames(bytes: Uint8Array): Message[] {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (b[0] !== BATCH) return [decodeMessage(b)];
  const out: Message[] = [];
  let at = 1;
  while (at < b.length) {
    if (at + 4 > b.length) throw new Error('batch frame cut short');
    const length = b.readUInt32BE(at);
    if (at + 4 + length > b.length) throw new Error('batch frame cut short');
    out.push(decodeMessage(b.subarray(at + 4, at + 4 + length)));
    at += 4 + length;
  }
  if (out.length === 0) throw new Error('empty batch frame');
  return out;
}
