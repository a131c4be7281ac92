/**
 * Admission of raw sockets before any TLS or MQTT work: per source address, a cap on open sockets and
 * a rate of new ones, and the clock every later deadline counts from. A stranger who opens sockets and
 * sends nothing must run into a limit, never into the process's file descriptors.
 */
import type { Socket } from 'node:net';
import type { BrokerStats } from './stats.ts';
import type { AdmissionLimit } from './hooks.ts';

export interface AdmissionLimits {
  /** A TLS handshake not finished within this time ends with the socket destroyed. */
  handshakeTimeoutMs: number;
  /** Open sockets from one source address; 0 = no limit. */
  maxConnectionsPerAddress: number;
  /** New sockets per second from one source address (bursts of twice as many); 0 = no limit. */
  connectionRatePerAddress: number;
}

/** Addresses kept while they have no open socket, before the table is pruned. */
const PRUNE_ABOVE = 4096;
const ACCEPTED_AT = Symbol('gatehouse.acceptedAt');

interface AddressState {
  open: number;
  tokens: number;
  refilledAt: number;
}

type StampedSocket = Socket & { [ACCEPTED_AT]?: number; _parent?: unknown };

export class Admission {
  readonly #byAddress = new Map<string, AddressState>();
  #limits: AdmissionLimits;
  readonly #stats: BrokerStats;
  readonly #onRefused: (address: string, limit: AdmissionLimit) => void;

  constructor(limits: AdmissionLimits, stats: BrokerStats, onRefused: (address: string, limit: AdmissionLimit) => void = () => {}) {
    this.#limits = limits;
    this.#stats = stats;
    this.#onRefused = onRefused;
  }

  set limits(next: AdmissionLimits) {
    this.#limits = next;
  }

  /** The most sockets open from any one address now (metrics: use against `maxConnectionsPerAddress`). */
  get mostOpenFromOneAddress(): number {
    let most = 0;
    for (const state of this.#byAddress.values()) if (state.open > most) most = state.open;
    return most;
  }

  /** Sockets from `address` that are open now (tests, metrics). */
  openFrom(address: string): number {
    return this.#byAddress.get(address)?.open ?? 0;
  }

  /**
   * Called for every accepted TCP socket (the server's 'connection' event). Destroys it and returns
   * false when its address is over a limit; otherwise stamps its accept time and counts it until close.
   */
  admit(socket: Socket, now = Date.now()): boolean {
    const address = socket.remoteAddress;
    if (address === undefined) {
      socket.destroy(); // already gone
      return false;
    }
    const { maxConnectionsPerAddress: maxOpen, connectionRatePerAddress: rate } = this.#limits;
    (socket as StampedSocket)[ACCEPTED_AT] = now;
    if (maxOpen === 0 && rate === 0) return true; // no per-address limits: nothing to count (the bare engine)
    let state = this.#byAddress.get(address);
    if (state === undefined) {
      if (this.#byAddress.size >= PRUNE_ABOVE) this.#prune(now);
      state = { open: 0, tokens: rate * 2, refilledAt: now };
      this.#byAddress.set(address, state);
    }
    if (rate > 0) {
      state.tokens = Math.min(rate * 2, state.tokens + ((now - state.refilledAt) * rate) / 1000);
      state.refilledAt = now;
    }
    const over: AdmissionLimit | null = maxOpen > 0 && state.open >= maxOpen ? 'maxConnectionsPerAddress'
      : rate > 0 && state.tokens < 1 ? 'connectionRatePerAddress' : null;
    if (over !== null) {
      this.#stats.socketsRefused++;
      socket.destroy();
      this.#onRefused(address, over);
      return false;
    }
    if (rate > 0) state.tokens -= 1;
    state.open++;
    const counted = state;
    socket.once('close', () => {
      counted.open--;
    });
    return true;
  }

  /** Drops addresses with no open socket whose rate bucket has refilled: the table stays bounded. */
  #prune(now: number): void {
    const rate = this.#limits.connectionRatePerAddress;
    for (const [address, state] of this.#byAddress) {
      const full = rate === 0 || state.tokens + ((now - state.refilledAt) * rate) / 1000 >= rate * 2;
      if (state.open === 0 && full) this.#byAddress.delete(address);
    }
  }
}

/**
 * When the TCP connection under `socket` was accepted: deadlines for the CONNECT count the TLS
 * handshake too. A TLS socket reaches its TCP socket through `_parent` (Node's, not documented); a
 * socket that was never stamped counts from now.
 */
export function acceptedAt(socket: Socket, now: number): number {
  const s = socket as StampedSocket;
  const own = s[ACCEPTED_AT];
  if (own !== undefined) return own;
  const parent = s._parent as StampedSocket | undefined;
  return parent?.[ACCEPTED_AT] ?? now;
}
