/**
 * Sockets the server has ended (`socket.end()`) and that wait for the peer to finish the close. A
 * peer that never does must not hold the socket, so the broker's periodic sweep destroys those past
 * their deadline. One FIFO instead of a timer per socket: during a reconnect storm thousands of
 * connections close within seconds, and a timer each was a measurable share of the CPU per connect.
 */
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';

export class LingeringSockets {
  readonly #lingerMs: number;
  // Monotonic deadlines, all with the same linger: the oldest entry is always the first to go.
  #sockets: Socket[] = [];
  #deadlines: number[] = [];
  #head = 0;

  constructor(lingerMs: number) {
    this.#lingerMs = lingerMs;
  }

  get size(): number {
    return this.#sockets.length - this.#head;
  }

  add(socket: Socket): void {
    this.#sockets.push(socket);
    this.#deadlines.push(performance.now() + this.#lingerMs);
  }

  /** Destroys the sockets past their deadline that are still open. */
  reap(): void {
    const now = performance.now();
    while (this.#head < this.#sockets.length && this.#deadlines[this.#head]! <= now) {
      const socket = this.#sockets[this.#head]!;
      this.#sockets[this.#head] = undefined as unknown as Socket; // let it go now, not at compaction
      this.#head++;
      if (!socket.destroyed) socket.destroy();
    }
    if (this.#head > 1024 && this.#head * 2 > this.#sockets.length) this.#compact();
  }

  /** Destroys every socket still lingering (the broker is closing). */
  destroyAll(): void {
    for (let i = this.#head; i < this.#sockets.length; i++) {
      const socket = this.#sockets[i]!;
      if (!socket.destroyed) socket.destroy();
    }
    this.#sockets = [];
    this.#deadlines = [];
    this.#head = 0;
  }

  #compact(): void {
    this.#sockets = this.#sockets.slice(this.#head);
    this.#deadlines = this.#deadlines.slice(this.#head);
    this.#head = 0;
  }
}
