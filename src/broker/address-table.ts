/**
 * The counting behind per-address admission, with no socket in it: open sockets and a token bucket of new ones per
 * source address, the table kept bounded. The engine's Admission judges with one (a single process); under
 * GATEHOUSE_WORKERS the primary keeps one per gateway for the whole machine (src/address-admission.ts).
 */
import type { AdmissionLimit } from './hooks.ts';

/** The two per-address limits; 0 = no limit. */
export interface AddressLimits {
  /** Open sockets from one source address. */
  maxConnectionsPerAddress: number;
  /** New sockets per second from one source address (bursts of twice as many). */
  connectionRatePerAddress: number;
}

/** Addresses kept while they have no open socket, before the table is pruned. */
export const PRUNE_ABOVE = 4096;

interface AddressState {
  open: number;
  tokens: number;
  refilledAt: number;
  /** The rate its bucket last filled at (pruning asks whether it is full again). */
  rate: number;
}

export class AddressTable {
  readonly #byAddress = new Map<string, AddressState>();

  /**
   * A new socket from `address`: the limit it is over (nothing counted), or null, when it is counted as open (a
   * token of the rate taken): `release` it once it closes. Limits are the caller's current ones (they change live).
   */
  take(address: string, limits: AddressLimits, now: number): AdmissionLimit | null {
    const { maxConnectionsPerAddress: maxOpen, connectionRatePerAddress: rate } = limits;
    const state = this.#stateOf(address, now);
    if (rate > 0) {
      state.tokens = Math.min(rate * 2, state.tokens + ((now - state.refilledAt) * rate) / 1000);
      state.refilledAt = now;
    }
    state.rate = rate;
    if (maxOpen > 0 && state.open >= maxOpen) return 'maxConnectionsPerAddress';
    if (rate > 0 && state.tokens < 1) return 'connectionRatePerAddress';
    if (rate > 0) state.tokens -= 1;
    state.open++;
    return null;
  }

  /** A socket from `address` judged elsewhere (by the machine's table) and open here: counted, not judged. */
  add(address: string, now: number): void {
    this.#stateOf(address, now).open++;
  }

  /** `count` sockets from `address` closed. */
  release(address: string, count = 1): void {
    const state = this.#byAddress.get(address);
    if (state !== undefined) state.open = Math.max(0, state.open - count);
  }

  openFrom(address: string): number {
    return this.#byAddress.get(address)?.open ?? 0;
  }

  /** The most sockets open from any one address now. */
  get mostOpen(): number {
    let most = 0;
    for (const state of this.#byAddress.values()) if (state.open > most) most = state.open;
    return most;
  }

  /** Addresses in the table (tests: the bound). */
  get size(): number {
    return this.#byAddress.size;
  }

  #stateOf(address: string, now: number): AddressState {
    let state = this.#byAddress.get(address);
    if (state === undefined) {
      if (this.#byAddress.size >= PRUNE_ABOVE) this.#prune(now);
      // A full bucket at whatever rate applies when it is first used (`take` caps it at twice the rate).
      state = { open: 0, tokens: Number.POSITIVE_INFINITY, refilledAt: now, rate: 0 };
      this.#byAddress.set(address, state);
    }
    return state;
  }

  /**
   * Drops addresses with no open socket whose rate bucket has refilled (at the rate of their last `take`): the table
   * stays bounded.
   */
  #prune(now: number): void {
    for (const [address, state] of this.#byAddress) {
      const full = state.rate === 0 || state.tokens + ((now - state.refilledAt) * state.rate) / 1000 >= state.rate * 2;
      if (state.open === 0 && full) this.#byAddress.delete(address);
    }
  }
}
