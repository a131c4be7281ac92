/**
 * Splits a byte stream into MQTT control packets by reading only the fixed header (type/flags byte and
 * the Remaining Length varint). The generator uses this instead of a full parser so that counting and
 * acknowledging hundreds of thousands of PUBLISH frames per second stays cheap.
 */

/** Called once per complete frame: `buf[bodyStart, bodyEnd)` is the variable header plus payload. */
export type FrameHandler = (header: number, buf: Buffer, bodyStart: number, bodyEnd: number) => void;

/** The generator never receives packets this large; anything bigger means the stream is out of sync. */
const MAX_FRAME = 1024 * 1024;

export class FrameScanner {
  private pending: Buffer | null = null;
  private readonly onFrame: FrameHandler;

  constructor(onFrame: FrameHandler) {
    this.onFrame = onFrame;
  }

  /** Feeds one chunk; throws on a malformed Remaining Length or an oversized frame. */
  push(chunk: Buffer): void {
    let buf = chunk;
    if (this.pending !== null) {
      // Only a partial frame is ever kept, so this copy is at most one frame long.
      buf = Buffer.concat([this.pending, chunk]);
      this.pending = null;
    }
    const len = buf.length;
    let pos = 0;
    while (len - pos >= 2) {
      let i = pos + 1;
      let remaining = 0;
      let multiplier = 1;
      let byte = 0x80;
      while ((byte & 0x80) !== 0) {
        if (i >= len) break;
        if (multiplier > 128 ** 3) throw new Error('malformed Remaining Length');
        byte = buf[i++]!;
        remaining += (byte & 0x7f) * multiplier;
        multiplier *= 128;
      }
      if ((byte & 0x80) !== 0) break; // varint continues in the next chunk
      if (remaining > MAX_FRAME) throw new Error(`frame of ${remaining} bytes exceeds ${MAX_FRAME}`);
      if (i + remaining > len) break;
      this.onFrame(buf[pos]!, buf, i, i + remaining);
      pos = i + remaining;
    }
    if (pos < len) this.pending = buf.subarray(pos);
  }

  /** Bytes of an incomplete frame waiting for more data. */
  get buffered(): number {
    return this.pending === null ? 0 : this.pending.length;
  }
}

/** MQTT control packet types (high nibble of the first byte). */
export const PacketType = {
  CONNACK: 2,
  PUBLISH: 3,
  PUBACK: 4,
  PUBREC: 5,
  PUBREL: 6,
  PUBCOMP: 7,
  SUBACK: 9,
  PINGRESP: 13,
} as const;
