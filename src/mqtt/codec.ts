/**
 * The codec: mqtt-packet for parsing and for control packets, and a hand-written PUBLISH encoder
 * for the delivery hot path (one allocation per frame, shareable between subscribers).
 */
import { isUtf8 } from 'node:buffer';
import mqttPacket from 'mqtt-packet';
import type { Packet, IPublishPacket, IConnectPacket, IDisconnectPacket, UserProperties } from 'mqtt-packet';

export type { Packet, IPublishPacket, IConnectPacket, ISubscribePacket, IUnsubscribePacket, IDisconnectPacket,
  IPubackPacket, IPubrecPacket, IPubrelPacket, IPubcompPacket, IAuthPacket, UserProperties, ISubscription } from 'mqtt-packet';

// mqtt-packet otherwise builds a table of 65,536 two-byte Buffers (about 7 MB of heap) on its first
// encode. Our control packets are few and small; the table buys nothing here.
mqttPacket.writeToStream.cacheNumbers = false;

export type ProtocolVersion = 3 | 4 | 5;
export type QoS = 0 | 1 | 2;

/**
 * Decodes whole frames (from `Framer`). Frames arrive complete, so the parser holds no state between
 * them and one parser per protocol version serves every connection (a parser per connection costs
 * kilobytes of memory per idle device). A parser that failed is replaced.
 */
const parsers = new Map<ProtocolVersion, { parser: ReturnType<typeof mqttPacket.parser>; packet: Packet | null; error: Error | null }>();

/** The parts of mqtt-packet's parser that the strict checks below read (its own, unexported state). */
interface ParserInternals {
  _pos: number;
  _parseStringPair: (this: ParserInternals) => unknown;
  _list: { slice(start: number, end: number): Buffer; readUInt16BE(at: number): number; length: number };
  _parseString: (this: ParserInternals) => string | null;
  _parseProperties: (this: ParserInternals) => Record<string, unknown> | false;
  settings: { protocolVersion: number };
}

/** Why the frame being decoded is malformed where mqtt-packet does not see it (a string, the properties), or null. */
let badString: string | null = null;

/**
 * A packet the specification allows but this server's limits do not: decoding it would cost work in
 * proportion to its element count (100,000 user properties in a 1 MB PUBLISH take mqtt-packet about a
 * second of the event loop, for every gateway on the process). Refused before that work, with 0x97.
 */
/** A packet within the specification but over one of this server's element limits. */
export class PacketLimitError extends Error {
  readonly limit: keyof DecodeLimits;
  constructor(limit: keyof DecodeLimits, message: string) {
    super(message);
    this.limit = limit;
  }
}

/** Per-packet element limits applied while decoding. */
export interface DecodeLimits {
  /** User properties in one packet, will properties included. */
  maxUserProperties: number;
  /** Topic filters in one SUBSCRIBE or UNSUBSCRIBE. */
  maxTopicFilters: number;
}

const NO_DECODE_LIMITS: DecodeLimits = { maxUserProperties: Infinity, maxTopicFilters: Infinity };
/** The limits of the frame being decoded now, and the user properties it has had so far. */
let decodeLimits = NO_DECODE_LIMITS;
let userPropertiesSeen = 0;

function parserFor(version: ProtocolVersion) {
  let entry = parsers.get(version);
  if (entry === undefined) {
    const e = { parser: mqttPacket.parser({ protocolVersion: version }), packet: null as Packet | null, error: null as Error | null };
    e.parser.on('packet', (p: Packet) => { e.packet = p; });
    e.parser.on('error', (err: Error) => { e.error = err; });
    strictStrings(e.parser as unknown as ParserInternals);
    exactProperties(e.parser as unknown as ParserInternals);
    countedUserProperties(e.parser as unknown as ParserInternals);
    parsers.set(version, (entry = e));
  }
  return entry;
}

/**
 * Every UTF-8 string mqtt-packet decodes (client id, user name, will topic, topic filters, string
 * properties, user properties) is checked on its raw bytes: ill-formed UTF-8 [MQTT-1.5.4-1] and
 * U+0000 [MQTT-1.5.4-2] make the packet malformed. Decoding alone would turn bad bytes into U+FFFD,
 * so `\xffdev` and `\xfedev` would become the same client id.
 */
function strictStrings(parser: ParserInternals): void {
  const decode = parser._parseString;
  parser._parseString = function parseStrictString(this: ParserInternals): string | null {
    const start = this._pos;
    const result = decode.call(this);
    if (result === null || badString !== null) return result;
    const raw = this._list.slice(start + 2, this._pos);
    if (raw.includes(0)) badString = 'U+0000 in a UTF-8 string';
    else if (!isUtf8(raw)) badString = 'ill-formed UTF-8 string';
    return result;
  };
}

/**
 * A v5 property block is exactly its Property Length, and each property in it whole (§2.2.2.1). mqtt-packet
 * reads a string or binary value that runs past the packet as null and goes on, and reads one that runs
 * past the block on into the fields after it: a message then carried `null` in its properties (which
 * broke the encoder at every delivery) or a payload cut short. Either makes the packet malformed.
 */
function exactProperties(parser: ParserInternals): void {
  const decode = parser._parseProperties;
  parser._parseProperties = function parseExactProperties(this: ParserInternals): Record<string, unknown> | false {
    const start = this._pos;
    const head = this._list.slice(start, Math.min(start + 4, this._list.length));
    let length = 0;
    let lengthBytes = 0;
    for (let shift = 0; lengthBytes < head.length; shift += 7) {
      const byte = head[lengthBytes++]!;
      length += (byte & 0x7f) * 2 ** shift;
      if ((byte & 0x80) === 0) break;
    }
    const result = decode.call(this);
    if (result === false || badString !== null) return result;
    if (this._pos !== start + lengthBytes + length) {
      badString = `the properties take ${this._pos - start - lengthBytes} bytes, their Property Length says ${length}`;
    } else if (!propertiesWhole(result)) {
      badString = 'a property value runs past the end of the packet';
    }
    return result;
  };
}

function propertiesWhole(properties: Record<string, unknown>): boolean {
  for (const value of Object.values(properties)) {
    if (value === null || (Array.isArray(value) && value.includes(null))) return false;
    if (typeof value === 'object' && !Buffer.isBuffer(value) && !Array.isArray(value) && !propertiesWhole(value as Record<string, unknown>)) return false;
  }
  return true;
}

/** Stops the parser at the first user property over the limit, before it decodes the rest. */
function countedUserProperties(parser: ParserInternals): void {
  const decode = parser._parseStringPair;
  parser._parseStringPair = function parseCountedPair(this: ParserInternals): unknown {
    userPropertiesSeen += 1;
    if (userPropertiesSeen > decodeLimits.maxUserProperties) {
      throw new PacketLimitError('maxUserProperties', `more than ${decodeLimits.maxUserProperties} user properties in one packet`);
    }
    return decode.call(this);
  };
}

/**
 * Topic filters in a SUBSCRIBE (type 8) or UNSUBSCRIBE (type 10) frame, counted on the raw bytes without
 * decoding them; stops counting past `stopAfter`. Malformed layouts are left to the decoder to report.
 */
export function topicFilterCount(frame: Buffer, type: number, protocolVersion: ProtocolVersion, stopAfter: number): number {
  let pos = variableHeaderOffset(frame) + 2; // the Packet Identifier
  if (protocolVersion === 5) {
    let propertiesLength = 0;
    let shift = 0;
    for (let i = 0; i < 4 && pos < frame.length; i++) {
      const byte = frame[pos++]!;
      propertiesLength += (byte & 0x7f) << shift;
      shift += 7;
      if ((byte & 0x80) === 0) break;
    }
    pos += propertiesLength;
  }
  const optionsByte = type === 8 ? 1 : 0;
  let count = 0;
  while (pos + 2 <= frame.length && count <= stopAfter) {
    pos += 2 + frame.readUInt16BE(pos) + optionsByte;
    count += 1;
  }
  return count;
}

/**
 * What the generic decoder lets through and the specification refuses: bytes left over after a
 * packet's fields [MQTT-1.5.5? §2.1.4 Remaining Length], a Packet Identifier of 0 [MQTT-2.2.1-3]
 * (or missing), a PINGREQ or v3.1.1 DISCONNECT with a body [§3.12.1, §3.14.1].
 */
function strictnessError(packet: Packet, consumed: number, length: number, version: ProtocolVersion): Error | null {
  switch (packet.cmd) {
    case 'publish':
      if (packet.qos > 0 && !validPacketId(packet.messageId)) return new Error('Packet identifier must be 1-65535');
      return null; // the payload is the rest of the packet
    case 'puback': case 'pubrec': case 'pubrel': case 'pubcomp':
      // v3.1.1: Remaining Length is exactly 2 [§3.4.1, §3.5.1, §3.6.1, §3.7.1].
      if (version !== 5 && length !== 2) return new Error(`${packet.cmd} must have a Remaining Length of 2`);
      if (!validPacketId(packet.messageId)) return new Error('Packet identifier must be 1-65535');
      break;
    case 'subscribe': case 'unsubscribe':
      // [MQTT-2.3.1-1] SUBSCRIBE and UNSUBSCRIBE carry a non-zero Packet Identifier.
      if (!validPacketId(packet.messageId)) return new Error('Packet identifier must be 1-65535');
      break;
    case 'pingreq':
      if (length !== 0) return new Error('PINGREQ must have a Remaining Length of 0');
      return null;
    case 'disconnect':
      if (version !== 5 && length !== 0) return new Error('DISCONNECT must have a Remaining Length of 0');
      break;
    case 'connect':
      // [MQTT-3.1.2-22] v3.1.1: a password without a user name.
      if (packet.protocolVersion !== 5 && packet.password !== undefined && packet.username === undefined) {
        return new Error('Password flag set without the User Name flag');
      }
      break;
    default:
      break;
  }
  return consumed === length ? null : new Error(`${length - consumed} bytes left over after the ${packet.cmd} fields`);
}

function validPacketId(id: number | undefined): boolean {
  return id !== undefined && id !== null && id >= 1 && id <= 0xffff;
}

export function decodeFrame(frame: Buffer, protocolVersion: ProtocolVersion, limits: DecodeLimits = NO_DECODE_LIMITS): Packet | Error {
  const type = frame[0]! >> 4;
  if ((type === 8 || type === 10) && topicFilterCount(frame, type, protocolVersion, limits.maxTopicFilters) > limits.maxTopicFilters) {
    return new PacketLimitError('maxTopicFilters', `more than ${limits.maxTopicFilters} topic filters in one ${type === 8 ? 'SUBSCRIBE' : 'UNSUBSCRIBE'}`);
  }
  const entry = parserFor(protocolVersion);
  // The parser switches itself to v5 on a v5 CONNECT; pin it back to this connection's version.
  (entry.parser as unknown as { settings: { protocolVersion: number } }).settings.protocolVersion = protocolVersion;
  entry.packet = null;
  entry.error = null;
  badString = null;
  decodeLimits = limits;
  userPropertiesSeen = 0;
  let consumed = 0;
  const internals = entry.parser as unknown as ParserInternals;
  // The parser resets its position after emitting: read how far it got while the packet is emitted.
  const onPacket = (): void => { consumed = internals._pos; };
  entry.parser.once('packet', onPacket);
  try {
    entry.parser.parse(frame);
  } catch (err) {
    entry.error = err instanceof Error ? err : new Error(String(err));
  }
  entry.parser.off('packet', onPacket);
  decodeLimits = NO_DECODE_LIMITS;
  const { packet, error } = entry;
  entry.packet = null;
  if (error !== null || packet === null) {
    parsers.delete(protocolVersion); // its internal state is unknown now
    return error ?? new Error('Incomplete packet');
  }
  if (badString !== null) return new Error(badString);
  return strictnessError(packet, consumed, frame.length - variableHeaderOffset(frame), protocolVersion) ?? packet;
}

/**
 * Fast path for the most frequent packet: a PUBLISH without v5 properties, decoded straight from
 * its frame. Returns null when the generic decoder must handle it (v5 properties present), an Error
 * for a malformed packet. `knownTopic` is the topic name the caller has checked these very bytes to be.
 */
export function decodePublishFast(frame: Buffer, protocolVersion: ProtocolVersion, knownTopic?: string): IPublishPacket | Error | null {
  const flags = frame[0]! & 0x0f;
  const qos = (flags >> 1) & 0x03;
  if (qos === 3) return new Error('Packet must not have both QoS bits set to 1'); // [MQTT-3.3.1-4]
  const dup = (flags & 0x08) !== 0;
  if (qos === 0 && dup) return new Error('DUP must be 0 for QoS 0 messages'); // [MQTT-3.3.1-2]
  let pos = variableHeaderOffset(frame);
  if (pos + 2 > frame.length) return new Error('Cannot parse topic');
  const topicLen = frame.readUInt16BE(pos);
  pos += 2;
  if (pos + topicLen > frame.length) return new Error('Cannot parse topic');
  // The caller may already know these bytes (the connection's previous topic): no decoding then.
  const topic = knownTopic ?? frame.toString('utf8', pos, pos + topicLen);
  pos += topicLen;
  let messageId: number | undefined;
  if (qos > 0) {
    if (pos + 2 > frame.length) return new Error('Cannot parse messageId');
    messageId = frame.readUInt16BE(pos);
    if (messageId === 0) return new Error('Packet identifier must be non-zero'); // [MQTT-2.2.1-3]
    pos += 2;
  }
  if (protocolVersion === 5) {
    if (pos >= frame.length) return new Error('Cannot parse properties length');
    if (frame[pos] !== 0) return null; // properties present: generic decoder
    pos++;
  }
  // A small payload is copied (from Node's buffer pool: cheap) so a queued or retained message does
  // not keep the whole socket read alive; a large one keeps its view.
  const view = frame.subarray(pos);
  const payload = view.length <= 16 * 1024 ? Buffer.from(view) : view;
  return { cmd: 'publish', qos: qos as QoS, dup, retain: (flags & 0x01) !== 0, topic, payload, messageId };
}

/**
 * Where the variable header of a whole frame starts: after the type byte and the Remaining Length
 * (the Framer has already checked that length). In a PUBLISH, the Topic Name's length field.
 */
export function variableHeaderOffset(frame: Buffer): number {
  let pos = 1;
  while (pos < frame.length && (frame[pos]! & 0x80) !== 0) pos++;
  return pos + 1;
}

/** Reads a length-prefixed string that is plain ASCII without U+0000; null for anything else. */
function asciiStringAt(frame: Buffer, pos: number): string | null {
  if (pos + 2 > frame.length) return null;
  const end = pos + 2 + frame.readUInt16BE(pos);
  if (end > frame.length) return null;
  for (let i = pos + 2; i < end; i++) {
    const b = frame[i]!;
    if (b === 0 || b >= 0x80) return null;
  }
  return frame.toString('latin1', pos + 2, end);
}

/**
 * Fast path for the CONNECT most devices send: protocol "MQTT" level 4 or 5, no will, no v5
 * properties, ASCII client id and user name. Every connect of a fleet goes through here, and
 * the stream parser costs several times more while the process is still cold. Returns null for
 * anything else, which the generic decoder then handles (and reports, if malformed).
 */
export function decodeConnectFast(frame: Buffer): IConnectPacket | null {
  if (frame[0] !== 0x10) return null;
  let pos = variableHeaderOffset(frame);
  if (pos + 10 > frame.length) return null;
  // Protocol Name "MQTT" [MQTT-3.1.2-1]
  if (frame[pos] !== 0 || frame[pos + 1] !== 4 || frame[pos + 2] !== 0x4d || frame[pos + 3] !== 0x51 ||
    frame[pos + 4] !== 0x54 || frame[pos + 5] !== 0x54) return null;
  const level = frame[pos + 6]!;
  if (level !== 4 && level !== 5) return null;
  const flags = frame[pos + 7]!;
  // Reserved bit [MQTT-3.1.2-3] and the will bits (flag, QoS, retain): the generic decoder.
  if ((flags & 0x3d) !== 0) return null;
  const hasUsername = (flags & 0x80) !== 0;
  const hasPassword = (flags & 0x40) !== 0;
  if (hasPassword && !hasUsername) return null;
  const keepalive = frame.readUInt16BE(pos + 8);
  pos += 10;
  if (level === 5) {
    if (frame[pos] !== 0) return null; // properties present
    pos++;
  }
  const clientId = asciiStringAt(frame, pos);
  if (clientId === null) return null;
  pos += 2 + clientId.length;
  const packet: IConnectPacket = { cmd: 'connect', protocolId: 'MQTT', protocolVersion: level, clean: (flags & 0x02) !== 0, keepalive, clientId };
  if (hasUsername) {
    const username = asciiStringAt(frame, pos);
    if (username === null) return null;
    packet.username = username;
    pos += 2 + username.length;
  }
  if (hasPassword) {
    if (pos + 2 > frame.length) return null;
    const end = pos + 2 + frame.readUInt16BE(pos);
    if (end > frame.length) return null;
    packet.password = Buffer.from(frame.subarray(pos + 2, end)); // a copy: the frame is not kept alive
    pos = end;
  }
  return pos === frame.length ? packet : null;
}

/** DISCONNECT with no reason code and no properties (the usual two bytes); null for anything else. */
export function decodeDisconnectFast(frame: Buffer): IDisconnectPacket | null {
  return frame.length === 2 && frame[0] === 0xe0 && frame[1] === 0 ? { cmd: 'disconnect' } : null;
}

const ACK_CMD = [undefined, undefined, undefined, undefined, 'puback', 'pubrec', 'pubrel', 'pubcomp'] as const;

/**
 * Fast path for PUBACK / PUBREC / PUBREL / PUBCOMP without properties: half of all packets under QoS 1/2
 * load. Returns null for anything the generic decoder must handle (properties, odd lengths).
 */
export function decodeAckFast(frame: Buffer, type: number, protocolVersion: ProtocolVersion): Packet | Error | null {
  const cmd = ACK_CMD[type];
  if (cmd === undefined) return null;
  // Fixed header flags: 0010 for PUBREL, 0000 for the others [MQTT-2.1.3-1].
  if ((frame[0]! & 0x0f) !== (type === 6 ? 0x02 : 0x00)) return new Error('Invalid header flag bits');
  const len = frame[1]!;
  if (frame.length !== len + 2) return null;
  if (len === 2) return { cmd, messageId: frame.readUInt16BE(2) };
  if (len === 3 && protocolVersion === 5) return { cmd, messageId: frame.readUInt16BE(2), reasonCode: frame[4]! };
  return null;
}

const ACK_TYPE = { puback: 0x40, pubrec: 0x50, pubrel: 0x62, pubcomp: 0x70 } as const;

/**
 * PUBACK / PUBREC / PUBREL / PUBCOMP. With reason 0x00 and no properties the short two-byte form is
 * used in v5 too (§3.4.2.1): the form every client reads (some, like paho 1.6, read no other).
 */
export function encodeAck(cmd: keyof typeof ACK_TYPE, packetId: number, reasonCode: number, protocolVersion: ProtocolVersion): Buffer {
  const long = protocolVersion === 5 && reasonCode !== 0;
  const buf = Buffer.allocUnsafe(long ? 5 : 4);
  buf[0] = ACK_TYPE[cmd];
  buf[1] = long ? 3 : 2;
  buf.writeUInt16BE(packetId, 2);
  if (long) buf[4] = reasonCode;
  return buf;
}

export function encodePacket(packet: Packet, protocolVersion: ProtocolVersion): Buffer {
  // The two control packets every v3 connection gets, without the generic encoder.
  if (packet.cmd === 'connack' && protocolVersion !== 5 && typeof packet.returnCode === 'number') {
    return Buffer.from([0x20, 2, packet.sessionPresent === true ? 1 : 0, packet.returnCode]);
  }
  if (packet.cmd === 'pingresp') return Buffer.from([0xd0, 0]);
  return mqttPacket.generate(packet, { protocolVersion });
}

/** v5 PUBLISH properties that travel with a message unchanged [MQTT-3.3.2-*]. */
export interface ForwardedProperties {
  payloadFormatIndicator?: boolean;
  contentType?: string;
  responseTopic?: string;
  correlationData?: Buffer;
  userProperties?: UserProperties;
}

export function forwardedPropertiesOf(p: IPublishPacket['properties']): ForwardedProperties | undefined {
  if (p === undefined) return undefined;
  const out: ForwardedProperties = {};
  let any = false;
  if (p.payloadFormatIndicator !== undefined) { out.payloadFormatIndicator = p.payloadFormatIndicator; any = true; }
  if (p.contentType !== undefined) { out.contentType = p.contentType; any = true; }
  if (p.responseTopic !== undefined) { out.responseTopic = p.responseTopic; any = true; }
  if (p.correlationData !== undefined) { out.correlationData = p.correlationData; any = true; }
  if (p.userProperties !== undefined) { out.userProperties = p.userProperties; any = true; }
  return any ? out : undefined;
}

function varintSize(n: number): number {
  return n < 128 ? 1 : n < 16384 ? 2 : n < 2097152 ? 3 : 4;
}

function writeVarint(buf: Buffer, off: number, n: number): number {
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    buf[off++] = b;
  } while (n > 0);
  return off;
}

function utf8Field(s: string): Buffer {
  const b = Buffer.from(s, 'utf8');
  const out = Buffer.allocUnsafe(2 + b.length);
  out.writeUInt16BE(b.length, 0);
  b.copy(out, 2);
  return out;
}

/** Encodes the forwarded properties once per message; the per-delivery ones are added around them. */
export function encodeForwardedProperties(p: ForwardedProperties | undefined): Buffer {
  if (p === undefined) return EMPTY;
  const parts: Buffer[] = [];
  if (p.payloadFormatIndicator !== undefined) parts.push(Buffer.from([0x01, p.payloadFormatIndicator ? 1 : 0]));
  if (p.contentType !== undefined) parts.push(Buffer.from([0x03]), utf8Field(p.contentType));
  if (p.responseTopic !== undefined) parts.push(Buffer.from([0x08]), utf8Field(p.responseTopic));
  if (p.correlationData !== undefined) {
    const h = Buffer.allocUnsafe(3);
    h[0] = 0x09;
    h.writeUInt16BE(p.correlationData.length, 1);
    parts.push(h, p.correlationData);
  }
  if (p.userProperties !== undefined) {
    for (const [k, v] of Object.entries(p.userProperties)) {
      for (const value of Array.isArray(v) ? v : [v]) parts.push(Buffer.from([0x26]), utf8Field(k), utf8Field(value));
    }
  }
  return Buffer.concat(parts);
}

const EMPTY = Buffer.alloc(0);

export interface PublishFrame {
  topic: Buffer; // UTF-8 bytes of the topic name, empty when an established alias is used
  payload: Buffer;
  qos: QoS;
  retain: boolean;
  dup: boolean;
  packetId: number;
  protocolVersion: ProtocolVersion;
  /** v5 only: pre-encoded forwarded properties. */
  forwarded: Buffer;
  /** v5 only: remaining message expiry (seconds), or -1 for none. */
  messageExpiry: number;
  /** v5 only: topic alias or 0. */
  topicAlias: number;
  /** v5 only: subscription identifiers. */
  subscriptionIds: readonly number[] | undefined;
}

/** Encodes one PUBLISH into a single buffer (spec §3.3). */
export function encodePublish(f: PublishFrame): Buffer {
  let propsLen = 0;
  if (f.protocolVersion === 5) {
    propsLen = f.forwarded.length;
    if (f.messageExpiry >= 0) propsLen += 5;
    if (f.topicAlias > 0) propsLen += 3;
    if (f.subscriptionIds !== undefined) for (const id of f.subscriptionIds) propsLen += 1 + varintSize(id);
  }
  const remaining = 2 + f.topic.length + (f.qos > 0 ? 2 : 0) +
    (f.protocolVersion === 5 ? varintSize(propsLen) + propsLen : 0) + f.payload.length;
  const buf = Buffer.allocUnsafe(1 + varintSize(remaining) + remaining);
  buf[0] = 0x30 | (f.dup ? 0x08 : 0) | (f.qos << 1) | (f.retain ? 1 : 0);
  let off = writeVarint(buf, 1, remaining);
  buf.writeUInt16BE(f.topic.length, off);
  off += 2;
  off += f.topic.copy(buf, off);
  if (f.qos > 0) {
    buf.writeUInt16BE(f.packetId, off);
    off += 2;
  }
  if (f.protocolVersion === 5) {
    off = writeVarint(buf, off, propsLen);
    if (f.messageExpiry >= 0) {
      buf[off++] = 0x02;
      buf.writeUInt32BE(f.messageExpiry, off);
      off += 4;
    }
    if (f.topicAlias > 0) {
      buf[off++] = 0x23;
      buf.writeUInt16BE(f.topicAlias, off);
      off += 2;
    }
    if (f.subscriptionIds !== undefined) {
      for (const id of f.subscriptionIds) {
        buf[off++] = 0x0b;
        off = writeVarint(buf, off, id);
      }
    }
    off += f.forwarded.copy(buf, off);
  }
  f.payload.copy(buf, off);
  return buf;
}
