/**
 * A socket without a kernel: the engine reads a fuzz input from it and writes its answers into it, the
 * same `Connection` code path as a TCP socket (data, end, cork, write, end, destroy). A loopback TCP
 * round trip per input costs ~5 ms of the machine's two cores; this costs microseconds, which is what
 * lets coverage guidance explore (thousands of inputs a second instead of a hundred). Real sockets are
 * still used where the socket itself matters: the fuzzer's watchdog client and the regression replay.
 */
import { Duplex } from 'node:stream';
import type { Socket } from 'node:net';

/** How much of the engine's answer is kept for the invariants (CONNACK and the first packets). */
const KEEP_ANSWER_BYTES = 64;

export class MemorySocket extends Duplex {
  readonly remoteAddress = '127.0.0.9';
  readonly remotePort = 50_000;
  /** The first bytes the engine wrote back. */
  answer = Buffer.alloc(0);
  answerBytes = 0;
  /** Settles when the stream is closed (by the engine or by `destroy`). */
  readonly ended: Promise<void>;

  constructor() {
    // As a socket a net.Server accepts: when the client ends its stream, the engine's side ends too.
    super({ allowHalfOpen: false });
    this.ended = new Promise((resolve) => this.once('close', () => resolve()));
    // The engine ending its side is the peer's cue to close, as an MQTT client does on a DISCONNECT.
    this.once('finish', () => this.destroy());
  }

  /** What the engine's `handle(socket)` takes: this stream stands in for a `net.Socket`. */
  asSocket(): Socket {
    return this as unknown as Socket;
  }

  setNoDelay(): this { return this; }
  setKeepAlive(): this { return this; }

  /** Sends the whole input and then the peer's end of stream. */
  deliver(chunks: readonly Buffer[]): void {
    for (const chunk of chunks) this.push(chunk);
    this.push(null);
  }

  override _read(): void { /* input is pushed by deliver() */ }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (this.answer.length < KEEP_ANSWER_BYTES) {
      this.answer = Buffer.concat([this.answer, chunk.subarray(0, KEEP_ANSWER_BYTES - this.answer.length)]);
    }
    this.answerBytes += chunk.length;
    callback();
  }
}
