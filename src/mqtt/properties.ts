/**
 * Checks on decoded v5 properties that the codec does not make: a property the codec could not read
 * (a length running past the packet) is a Malformed Packet; a property that may appear once but
 * appeared twice is a Protocol Error [MQTT-2.2.2-?, §2.2.2.2].
 */
import { RC } from './reason-codes.ts';
import { variableHeaderOffset } from './codec.ts';

/** Properties that may appear more than once in a packet. */
const MULTI = new Set(['userProperties', 'subscriptionIdentifier']);

export function checkProperties(props: Record<string, unknown> | undefined): number {
  if (props === undefined) return RC.SUCCESS;
  for (const [name, value] of Object.entries(props)) {
    if (value === null || value === undefined) return RC.MALFORMED_PACKET;
    if (name === 'userProperties') {
      for (const v of Object.values(value as Record<string, unknown>)) {
        if (v === null || v === undefined) return RC.MALFORMED_PACKET;
        if (Array.isArray(v) && v.some((x) => typeof x !== 'string')) return RC.MALFORMED_PACKET;
      }
      continue;
    }
    if (Array.isArray(value)) {
      if (!MULTI.has(name)) return RC.PROTOCOL_ERROR;
      if (value.some((x) => x === null || x === undefined)) return RC.MALFORMED_PACKET;
    }
  }
  return RC.SUCCESS;
}

/**
 * A v5 SUBSCRIBE whose Subscription Identifier is 0 (a Protocol Error [MQTT-3.8.2-?, §3.8.2.1.2]).
 * Checked on the raw frame because the codec rejects such a packet as malformed instead.
 */
export function subscribeHasZeroSubscriptionId(frame: Buffer): boolean {
  let pos = variableHeaderOffset(frame) + 2; // after the Packet Identifier
  const [propsLen, lenBytes] = readVarint(frame, pos);
  pos += lenBytes;
  const end = Math.min(frame.length, pos + propsLen);
  while (pos < end) {
    const id = frame[pos++]!;
    if (id === 0x0b) {
      const [value, n] = readVarint(frame, pos);
      if (value === 0) return true;
      pos += n;
    } else if (id === 0x26) {
      for (let i = 0; i < 2 && pos + 2 <= end; i++) pos += 2 + frame.readUInt16BE(pos);
    } else {
      return false; // not a SUBSCRIBE property: the codec reports it
    }
  }
  return false;
}

function readVarint(buf: Buffer, pos: number): [value: number, bytes: number] {
  let value = 0;
  let mul = 1;
  for (let i = 0; i < 4 && pos + i < buf.length; i++) {
    const b = buf[pos + i]!;
    value += (b & 0x7f) * mul;
    if ((b & 0x80) === 0) return [value, i + 1];
    mul *= 128;
  }
  return [-1, 4];
}
