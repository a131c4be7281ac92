/**
 * Admission of raw sockets before any TLS or MQTT work: per source address, a cap on open sockets and
 * a rate of new ones, and the clock every later deadline counts from. A stranger who opens sockets and
 * sends nothing must run into a limit, never into the process's file descriptors.
 */
import type { Socket } from 'node:net';
import type { BrokerStats } from './stats.ts';
import type { AdmissionLimit } from './hooks.ts';
import { AddressTable, type AddressLimits } from './address-table.ts';

export interface AdmissionLimits extends AddressLimits {
  /** A TLS handshake not finished within this time ends with the socket destroyed. */
  handshakeTimeoutMs: number;
}

/**
 * The machine's per-address tables, for an engine in a GATEHOUSE_WORKERS worker (src/address-admission.ts: the
 * primary keeps them, so one address gets one allowance on the machine, not one per worker).
 */
export interface SharedAdmission {
  /**
   * Counts a new socket from `address` on the machine under `limits`: the limit it is over (not counted), null (counted
   * until `release`), or 'unanswered' when the machine's table could not be asked in time (judge locally).
   */
  ask(address: string, limits: AddressLimits): Promise<AdmissionLimit | null | 'unanswered'>;
  /** A socket the machine counted has closed. */
  release(address: string): void;
}

const ACCEPTED_AT = Symbol('gatehouse.acceptedAt');

type StampedSocket = Socket & { [ACCEPTED_AT]?: number; _parent?: unknown };

export class Admission {
  /** This process's sockets per address: the judge of a single process, or of a worker whose primary did not answer. */
  readonly #local = new AddressTable();
  #limits: AdmissionLimits;
  readonly #stats: BrokerStats;
  readonly #onRefused: (address: string, limit: AdmissionLimit) => void;
  readonly #shared: SharedAdmission | null;

  constructor(limits: AdmissionLimits, stats: BrokerStats, onRefused: (address: string, limit: AdmissionLimit) => void = () => {}, shared: SharedAdmission | null = null) {
    this.#limits = limits;
    this.#stats = stats;
    this.#onRefused = onRefused;
    this.#shared = shared;
  }

  set limits(next: AdmissionLimits) {
    this.#limits = next;
  }

  /**
   * The most sockets open from any one address now (metrics: use against `maxConnectionsPerAddress`), in this process
   * (under GATEHOUSE_WORKERS the machine's scrape takes the highest of the workers').
   */
  get mostOpenFromOneAddress(): number {
    return this.#local.mostOpen;
  }

  /** Sockets from `address` that are open now in this process (tests, metrics). */
  openFrom(address: string): number {
    return this.#local.openFrom(address);
  }

  /**
   * Called for every accepted TCP socket (the server's 'connection' event): stamps its accept time, then either
   * destroys it (its address is over a limit) or calls `proceed` (TLS or MQTT takes it) and counts it until close.
   * Synchronous in a single process; in a worker, once the machine's table has answered — until then nothing reads
   * the socket for TLS or MQTT (what arrives waits in its buffer, which stops reading the handle once full).
   */
  admit(socket: Socket, proceed: () => void, now = Date.now()): void {
    const address = socket.remoteAddress;
    if (address === undefined) {
      socket.destroy(); // already gone
      return;
    }
    (socket as StampedSocket)[ACCEPTED_AT] = now;
    const { maxConnectionsPerAddress, connectionRatePerAddress } = this.#limits;
    if (maxConnectionsPerAddress === 0 && connectionRatePerAddress === 0) {
      proceed(); // no per-address limits: nothing to count (the bare engine)
      return;
    }
    const limits: AddressLimits = { maxConnectionsPerAddress, connectionRatePerAddress };
    if (this.#shared === null) {
      this.#judgeLocally(socket, address, limits, now, proceed);
      return;
    }
    const shared = this.#shared;
    // Nobody else listens yet: a reset while the machine is asked must not be an uncaught 'error'.
    const ignore = (): void => {};
    socket.on('error', ignore);
    void shared.ask(address, limits).then((verdict) => {
      socket.off('error', ignore);
      if (verdict === 'unanswered') this.#judgeLocally(socket, address, limits, Date.now(), proceed);
      else if (verdict !== null) this.#refuse(socket, address, verdict);
      else if (socket.destroyed) shared.release(address); // gone while the machine was asked
      else {
        this.#local.add(address, Date.now());
        socket.once('close', () => {
          this.#local.release(address);
          shared.release(address);
        });
        proceed();
      }
    });
  }

  #judgeLocally(socket: Socket, address: string, limits: AddressLimits, now: number, proceed: () => void): void {
    const over = this.#local.take(address, limits, now);
    if (over !== null) {
      this.#refuse(socket, address, over);
      return;
    }
    if (socket.destroyed) {
      this.#local.release(address);
      return;
    }
    socket.once('close', () => this.#local.release(address));
    proceed();
  }

  #refuse(socket: Socket, address: string, over: AdmissionLimit): void {
    this.#stats.socketsRefused++;
    socket.destroy();
    this.#onRefused(address, over);
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
