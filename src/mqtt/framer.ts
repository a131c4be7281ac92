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
 * One incomplete frame whose length is known. Its bytes are gathered as chunks and joined once whole:
 * concatenating on every chunk copied a 1 MB packet arriving in 16 KB TLS records ~64 times (32 MB per
 * packet). A big frame (`SHARED_FRAME_BYTES` or more) instead gets its shared buffer once a quarter of it
 * has arrived, and each later chunk is copied in as it comes: the first write to fresh shared memory costs a
 * page fault per 4 KiB (~2.7 ms per MB on this machine, against ~0.3 ms to copy into reused memory), and
 * paid all at once on the frame's last chunk it stalled every gateway's sockets for as long. Waiting for a
 * quarter bounds what a peer that announces a big frame and sends little of it makes this process reserve:
 * four times what it sent.
 */
interface PartialFrame {
  /** The frame's bytes so far, until `target` is reserved. */
  chunks: Buffer[];
  /** Bytes of the frame received so far (never more than `total`). */
  length: number;
  /** Bytes of the whole frame, fixed header included. */
  readonly total: number;
  /** The frame's shared buffer, filled up to `length`, once reserved. */
  target: Buffer | null;
  /** Whether a big frame goes to shared memory (`Framer.shareLargeFrames` when it started). */
  readonly shared: boolean;
}

/**
 * A frame joined from several chunks at least this big is assembled in a SharedArrayBuffer: its payload then
 * crosses to the threads that write it (the engine's state, the uplink journal, the message store) by
 * reference instead of a copy each. During a flood of 1 MB messages those copies were most of the external
 * memory the process allocated, and V8 answers external memory with full (mark-compact) collections that
 * stop every gateway's sockets (`npm run bench:abuse -- --gc`, retained-1mb). Small frames stay in Node's
 * pooled buffers, which cost less to allocate.
 */
export const SHARED_FRAME_BYTES = 64 * 1024;

/** `chunks` copied one after another into the start of `target`. */
function copyInto(target: Buffer, chunks: readonly Buffer[]): void {
  let at = 0;
  for (const c of chunks) at += c.copy(target, at);
}

/** Adds `chunk`'s first bytes to `partial`, up to the frame's end; returns how many it took. */
function fill(partial: PartialFrame, chunk: Buffer): number {
  const take = Math.min(partial.total - partial.length, chunk.length);
  if (partial.target !== null) chunk.copy(partial.target, partial.length, 0, take);
  else partial.chunks.push(take === chunk.length ? chunk : chunk.subarray(0, take));
  partial.length += take;
  if (partial.shared && partial.target === null && partial.length < partial.total && partial.total >= SHARED_FRAME_BYTES
    && partial.length * 4 >= partial.total) {
    partial.target = Buffer.from(new SharedArrayBuffer(partial.total));
    copyInto(partial.target, partial.chunks);
    partial.chunks = [];
  }
  return take;
}

/** The whole frame `partial` gathered. */
function join(partial: PartialFrame): Buffer {
  if (partial.target !== null) return partial.target;
  if (!partial.shared || partial.total < SHARED_FRAME_BYTES) return Buffer.concat(partial.chunks, partial.total);
  const joined = Buffer.from(new SharedArrayBuffer(partial.total));
  copyInto(joined, partial.chunks);
  return joined;
}

export class Framer {
  /** Bytes that are not yet a frame of known length (a cut header), or whole frames the sink did not take. */
  #pending: Buffer | null = null;
  #partial: PartialFrame | null = null;
  #maxPacketSize: number;
  /**
   * Big frames go to shared memory, reserved once a quarter has arrived. Off until the peer is accepted (the
   * engine turns it on at CONNACK): a stranger's CONNECT is held as the bytes it sent, never reserved ahead of them.
   */
  shareLargeFrames = false;

  constructor(maxPacketSize: number) {
    this.#maxPacketSize = maxPacketSize;
  }

  set maxPacketSize(value: number) {
    this.#maxPacketSize = value;
  }

  /** Bytes held back waiting for the rest of a packet. */
  get bufferedBytes(): number {
    const partial = this.#partial;
    if (partial !== null) return partial.target === null ? partial.length : partial.total;
    return this.#pending?.length ?? 0;
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
      const took = fill(partial, chunk);
      if (partial.length < partial.total) return null;
      this.#partial = null;
      const rest = chunk.subarray(took);
      const frame = join(partial);
      if (!sink.onFrame(frame, frame[0]! >> 4)) {
        this.#pending = rest.length === 0 ? null : rest;
        return null;
      }
      if (rest.length === 0) return null;
      buf = rest;
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
      if (incompleteTotal !== 0) {
        const started: PartialFrame = { chunks: [], length: 0, total: incompleteTotal, target: null, shared: this.shareLargeFrames };
        fill(started, kept);
        this.#partial = started;
      } else this.#pending = kept;
    }
    return null;
  }
}
