/**
 * A gateway's CONNECT throttle across the cluster (issue 16): brute-force protection holds for a source wherever its
 * attempts land. Each source address has one home among the live node processes (rendezvous hashing of the address
 * over their instances: every node picks the same one from the same leases), and the home's throttle
 * (gateway/auth/throttle.ts) judges every attempt from that address, on any node: one at a time per username and
 * address, the delay its failures earned, the bounded queue that refuses the surplus at once (0x9F), the bound per
 * address. A CONNECT on another node asks the home for its turn (a NATS request, answered when the turn comes or
 * refused) and tells it the outcome (one message), then runs its own chain: the hash, the function, the HTTPS call
 * stay where the device is.
 *
 * Why a home per address rather than failures broadcast to every node: the throttle is more than a failure count.
 * One attempt at a time per (username, address) and a bounded queue of waiting guesses hold only where all of a
 * source's attempts meet; with counts shared but queues per node, N nodes would each run a guess at once and each
 * keep a queue (N times the guesses the limit lets through: 40 parallel guesses over 2 workers cost 12 hashes, not 8).
 * The cost falls on the CONNECTs of a cluster node whose address is homed elsewhere: one request and one message,
 * small and bounded (the username travels as its SHA-256, so each is under 200 bytes); a single process has no home
 * to ask and pays nothing (the gateway uses its ConnectThrottle directly).
 *
 * Deaths: a home that is gone answers "no responders" at once, and the attempt is judged here until the leases say
 * who the home is now (that source starts afresh there: at most a lease of failures forgotten, never an accept). A
 * node that asked and died holds its turns until TURN_LAPSE_MS. NATS away: the CONNECT was refused before
 * (checkClusterReachable, 0x88); a request that fails otherwise makes it fail the same way (never an accept).
 */
import { createHash } from 'node:crypto';
import type { Msg, Subscription } from '@nats-io/transport-node';
import type { Logger } from '../core/logger.ts';
import type { ClusterConnection } from './connection.ts';

/** The gateway's throttle, as gateway/auth/throttle.ts's ConnectThrottle answers (typed here: cluster/ imports no gateway). */
export interface AttemptTurn {
  finish(outcome: 'success' | 'failure' | 'other'): void;
}
export interface AttemptGate {
  enter(username: string | undefined, address: string | undefined, arrivedAt?: number): Promise<AttemptTurn | null>;
}

/** How long an attempt waits for its home's answer: its queue and earned delays (up to 5 s each) come first. */
const REQUEST_TIMEOUT_MS = 60_000;
/** A turn given to another node and not finished (that node died) is given back after this. */
const TURN_LAPSE_MS = 90_000;
/** Turns held for other nodes at once, at most (beyond it their attempts are refused as throttled). */
const MAX_HELD_TURNS = 10_000;

interface TurnRequest {
  g: string;
  /** When the CONNECT reached the asking node (epoch ms): judged as of then (a queue cut meanwhile cuts it too). */
  at: number;
  /** SHA-256 of the username, base64url. */
  u?: string;
  a?: string;
}

interface TurnAnswer {
  /** The turn's number at the home (to finish it). */
  t?: number;
  /** The home runs no such gateway: judge here. */
  absent?: true;
}

interface TurnDone {
  t: number;
  o: 'success' | 'failure' | 'other';
}

export class ClusterThrottles {
  readonly #conn: ClusterConnection;
  readonly #instance: string;
  readonly #live: () => readonly string[];
  readonly #logger: Logger;
  readonly #gates = new Map<string, AttemptGate>();
  readonly #held = new Map<number, { turn: AttemptTurn; timer: NodeJS.Timeout }>();
  readonly #subscriptions: Subscription[];
  #next = 0;

  /** `live`: the instances of the live node processes, as the leases last said (this one included or not). */
  constructor(conn: ClusterConnection, instance: string, live: () => readonly string[], logger: Logger) {
    this.#conn = conn;
    this.#instance = instance;
    this.#live = live;
    this.#logger = logger;
    this.#subscriptions = [
      conn.nc.subscribe(`${conn.prefix}.throttle.${instance}`, { callback: (err, msg) => this.#onRequest(err, msg) }),
      conn.nc.subscribe(`${conn.prefix}.throttle-done.${instance}`, { callback: (err, msg) => this.#onDone(err, msg) }),
    ];
  }

  /** The gateway's throttle for the cluster: `local` is its own, which judges the addresses homed here. */
  open(gatewayId: string, local: AttemptGate): AttemptGate & { close(): void } {
    this.#gates.set(gatewayId, local);
    return {
      // The username as its digest for every attempt, homed here or not: the home's keys are the same either way.
      enter: (username, address, arrivedAt) => this.#enter(gatewayId, local, username === undefined ? undefined : digest(username), address, arrivedAt ?? Date.now()),
      close: () => {
        if (this.#gates.get(gatewayId) === local) this.#gates.delete(gatewayId);
      },
    };
  }

  /** The live instance whose score for the address is highest (rendezvous hashing): the same on every node. */
  home(address: string): string {
    let best = this.#instance;
    let bestScore = score(best, address);
    for (const instance of this.#live()) {
      if (instance === best) continue;
      const s = score(instance, address);
      if (s > bestScore || (s === bestScore && instance > best)) {
        best = instance;
        bestScore = s;
      }
    }
    return best;
  }

  async #enter(gatewayId: string, local: AttemptGate, user: string | undefined, address: string | undefined, arrivedAt: number): Promise<AttemptTurn | null> {
    const home = this.home(address ?? '');
    if (home === this.#instance) return local.enter(user, address);
    let answer: TurnAnswer;
    try {
      const request: TurnRequest = { g: gatewayId, at: arrivedAt, ...(user === undefined ? {} : { u: user }), ...(address === undefined ? {} : { a: address }) };
      const reply = await this.#conn.nc.request(`${this.#conn.prefix}.throttle.${home}`, JSON.stringify(request), { timeout: REQUEST_TIMEOUT_MS });
      answer = reply.json<TurnAnswer>();
    } catch (err) {
      // The home is gone (the leases have not said so yet): judged here meanwhile.
      if ((err as { isNoResponders?: () => boolean }).isNoResponders?.() === true) return local.enter(user, address);
      throw err;
    }
    if (answer.absent === true) return local.enter(user, address);
    const turn = answer.t;
    if (turn === undefined) return null;
    let done = false;
    return {
      finish: (outcome) => {
        if (done) return;
        done = true;
        try {
          this.#conn.nc.publish(`${this.#conn.prefix}.throttle-done.${home}`, JSON.stringify({ t: turn, o: outcome } satisfies TurnDone));
        } catch (err) {
          this.#logger.debug({ err }, 'cluster_throttle_done_unsent'); // the home gives the turn back after TURN_LAPSE_MS
        }
      },
    };
  }

  #onRequest(err: Error | null, msg: Msg): void {
    if (err !== null) {
      this.#logger.error({ err }, 'cluster_throttle_requests_failed');
      return;
    }
    let request: TurnRequest;
    try {
      request = msg.json<TurnRequest>();
    } catch {
      return;
    }
    const gate = this.#gates.get(request.g);
    if (gate === undefined) {
      msg.respond(JSON.stringify({ absent: true } satisfies TurnAnswer));
      return;
    }
    if (this.#held.size >= MAX_HELD_TURNS) {
      msg.respond(JSON.stringify({} satisfies TurnAnswer));
      return;
    }
    gate.enter(request.u, request.a, typeof request.at === 'number' ? request.at : undefined).then((turn) => {
      if (turn === null) {
        msg.respond(JSON.stringify({} satisfies TurnAnswer));
        return;
      }
      const t = ++this.#next;
      const timer = setTimeout(() => this.#finish(t, 'other'), TURN_LAPSE_MS);
      timer.unref();
      this.#held.set(t, { turn, timer });
      if (!msg.respond(JSON.stringify({ t } satisfies TurnAnswer))) this.#finish(t, 'other');
    }, (error: unknown) => this.#logger.warn({ err: error }, 'cluster_throttle_turn_failed'));
  }

  #onDone(err: Error | null, msg: Msg): void {
    if (err !== null) return;
    try {
      const done = msg.json<TurnDone>();
      this.#finish(done.t, done.o === 'success' || done.o === 'failure' ? done.o : 'other');
    } catch {
      // not ours: dropped
    }
  }

  #finish(t: number, outcome: TurnDone['o']): void {
    const held = this.#held.get(t);
    if (held === undefined) return;
    this.#held.delete(t);
    clearTimeout(held.timer);
    held.turn.finish(outcome);
  }

  /** The node stops: turns held for others are given back. */
  close(): void {
    for (const subscription of this.#subscriptions) subscription.unsubscribe();
    for (const t of [...this.#held.keys()]) this.#finish(t, 'other');
  }
}

function digest(username: string): string {
  return createHash('sha256').update(username).digest('base64url');
}

function score(instance: string, address: string): number {
  return createHash('sha256').update(instance).update('\u0000').update(address).digest().readUIntBE(0, 6);
}
