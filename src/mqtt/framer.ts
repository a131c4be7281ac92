/**
 * Splits a byte stream into whole MQTT control packets using only the fixed header (spec §2.1),
 * so an oversized packet is refused from its header before its body is buffered, and a broken
 * Remaining Length is caught before the codec sees it.
 */
export type FrameError = 'malformed-length' | 'too-large';

/** Receives the frames `Framer.push` finds; returns false to stop (the rest stays buffered). */
export interface FrameSink {
  onFrame(frame: Buffer, type: number): boolean;
}

/**
 * The chunks of one incomplete frame whose length is known, joined once it is whole: concatenating
 * on every chunk copied a 1 MB packet arriving in 16 KB TLS records ~64 times (32 MB per packet).
 */
interface PartialFrame {
  readonly chunks: Buffer[];
  /** Bytes in `chunks`. */
  length: number;
  /** Bytes of the whole frame, fixed header included. */
  readonly total: number;
}

export class Framer {
  /** Bytes that are not yet a frame of known length (a cut header), or whole frames the sink did not take. */
  #pending: Buffer | null = null;
  #partial: PartialFrame | null = null;
  #maxPacketSize: number;

  constructor(maxPacketSize: number) {
    this.#maxPacketSize = maxPacketSize;
  }

  set maxPacketSize(value: number) {
    this.#maxPacketSize = value;
  }

  /** Bytes held back waiting for the rest of a packet. */
  get bufferedBytes(): number {
    return this.#partial?.length ?? this.#pending?.length ?? 0;
  }

  /**
   * Appends `chunk` and calls `sink.onFrame` for each complete packet in order. Stops early (keeping
   * the rest) when it returns false. Returns an error when the stream can no longer be framed.
   * A sink object rather than a callback: a closure per connection costs memory on every idle device.
   * A frame that arrives within one chunk is a view of that chunk, not a copy.
   */
  push(chunk: Buffer | null, sink: FrameSink): FrameError | null {
    let buf: Buffer;
    const partial = this.#partial;
    if (partial !== null) {
      if (chunk === null) return null;
      partial.chunks.push(chunk);
      partial.length += chunk.length;
      if (partial.length < partial.total) return null;
      buf = Buffer.concat(partial.chunks, partial.length);
      this.#partial = null;
    } else if (this.#pending === null) {
      if (chunk === null) return null;
      buf = chunk;
    } else {
      buf = chunk === null ? this.#pending : Buffer.concat([this.#pending, chunk]);
    }
    this.#pending = null;
    let off = 0;
    let incompleteTotal = 0;
    const len = buf.length;
    while (off < len) {
      // Remaining Length: variable byte integer of at most four bytes [MQTT-1.5.5-1], read as far as
      // it has arrived (a header cut short is read again, from its first byte, with the next chunk).
      let remaining = 0;
      let multiplier = 1;
      let pos = off + 1;
      let complete = false;
      for (let i = 0; pos < len; i++) {
        const b = buf[pos++]!;
        remaining += (b & 0x7f) * multiplier;
        multiplier *= 128;
        if ((b & 0x80) === 0) {
          complete = true;
          break;
        }
        if (i === 3) return 'malformed-length';
      }
      if (!complete) break; // header not all here yet
      const total = pos - off + remaining;
      if (total > this.#maxPacketSize) return 'too-large';
      if (len - off < total) {
        incompleteTotal = total;
        break;
      }
      const frame = buf.subarray(off, off + total);
      off += total;
      if (!sink.onFrame(frame, frame[0]! >> 4)) break;
    }
    if (off < len) {
      // Copy a small remainder so a big socket chunk is not kept alive by it.
      const rest = buf.subarray(off);
      const kept = rest.length < 4096 && buf.length > 65536 ? Buffer.from(rest) : rest;
      if (incompleteTotal !== 0) this.#partial = { chunks: [kept], length: kept.length, total: incompleteTotal };
      else this.#pending = kept;
    }
    return null;
  }
}
