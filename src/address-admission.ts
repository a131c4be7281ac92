/**
 * GATEHOUSE_WORKERS (issue 16, issue 12): the per-address socket limits of admission count the machine, not one
 * worker. The primary keeps one AddressTable per gateway for every worker's sockets; a worker's engine asks it for
 * each accepted socket (`admission_ask`, with the gateway's current limits: an edit applies at once) and tells it of
 * each close (`admission_release`). The primary counts each worker's open sockets apart, so a dead worker's are
 * dropped when it exits. Separate machines still count apart: the limits are per node.
 */
import { AddressTable, type AddressLimits, type AdmissionLimit, type SharedAdmission } from './broker/index.ts';

/**
 * A worker waits this long for the primary's answer, then judges with its own counts (what a single process
 * does). Failing open rather than refusing: a primary too busy to answer must not turn every device away, and a
 * socket held meanwhile stays bounded (this deadline, then the handshake's); the fallback is the per-worker count
 * the limits had before they were the machine's, so an address still meets a limit.
 */
export const ASK_TIMEOUT_MS = 1_000;
/**
 * Asks a worker may have waiting at once. Past it a new socket is judged with the worker's own counts at once, as
 * an unanswered ask is: the bound is shared by every address, so refusing would let one address's flood shut out
 * everyone else, while the local judgement still holds each address to a limit.
 */
export const MAX_PENDING_ASKS = 1_024;

interface AdmissionAsk {
  gatehouse: 'admission_ask';
  id: number;
  gateway: string;
  address: string;
  maxConnectionsPerAddress: number;
  connectionRatePerAddress: number;
}

interface AdmissionAnswer {
  gatehouse: 'admission_answer';
  id: number;
  gateway: string;
  address: string;
  over: AdmissionLimit | null;
}

interface AdmissionRelease {
  gatehouse: 'admission_release';
  gateway: string;
  address: string;
}

type WorkerToPrimary = AdmissionAsk | AdmissionRelease;

const isLimit = (n: unknown): n is number => typeof n === 'number' && Number.isFinite(n) && n >= 0;
const isText = (s: unknown): s is string => typeof s === 'string' && s.length > 0 && s.length <= 256;

/** A worker's ask or release, checked field by field (the primary trusts no shape). */
export function isAdmissionRequest(message: unknown): message is WorkerToPrimary {
  if (typeof message !== 'object' || message === null) return false;
  const m = message as Partial<Record<keyof AdmissionAsk, unknown>>;
  if (m.gatehouse === 'admission_release') return isText(m.gateway) && isText(m.address);
  return m.gatehouse === 'admission_ask' && Number.isSafeInteger(m.id) && isText(m.gateway) && isText(m.address)
    && isLimit(m.maxConnectionsPerAddress) && isLimit(m.connectionRatePerAddress);
}

function isAdmissionAnswer(message: unknown): message is AdmissionAnswer {
  if (typeof message !== 'object' || message === null) return false;
  const m = message as Partial<Record<keyof AdmissionAnswer, unknown>>;
  return m.gatehouse === 'admission_answer' && Number.isSafeInteger(m.id) && isText(m.gateway) && isText(m.address)
    && (m.over === null || m.over === 'maxConnectionsPerAddress' || m.over === 'connectionRatePerAddress');
}

/** Where the primary sends a worker's answers (a node:cluster Worker). */
export interface AdmissionPeer {
  send(message: AdmissionAnswer): unknown;
  isConnected(): boolean;
}

interface Held {
  gateway: string;
  address: string;
  open: number;
}

/** The primary's side: every worker's sockets per gateway and address, judged as one. */
export class MachineAdmission {
  readonly #tables = new Map<string, AddressTable>();
  /** Per worker: its open sockets per gateway and address (key `gateway address`), dropped when it exits. */
  readonly #byWorker = new Map<AdmissionPeer, Map<string, Held>>();

  handle(from: AdmissionPeer, message: WorkerToPrimary, now = Date.now()): void {
    const key = `${message.gateway} ${message.address}`;
    let mine = this.#byWorker.get(from);
    if (message.gatehouse === 'admission_release') {
      const held = mine?.get(key);
      if (held === undefined) return; // not this worker's: nothing to release
      this.#tables.get(message.gateway)?.release(message.address);
      if (--held.open === 0) mine!.delete(key);
      return;
    }
    let table = this.#tables.get(message.gateway);
    if (table === undefined) this.#tables.set(message.gateway, table = new AddressTable());
    const over = table.take(message.address, message, now);
    if (over === null) {
      if (mine === undefined) this.#byWorker.set(from, mine = new Map<string, Held>());
      const held = mine.get(key);
      if (held === undefined) mine.set(key, { gateway: message.gateway, address: message.address, open: 1 });
      else held.open++;
    }
    if (from.isConnected()) from.send({ gatehouse: 'admission_answer', id: message.id, gateway: message.gateway, address: message.address, over });
  }

  /** A worker exited: its sockets closed with it. */
  forget(worker: AdmissionPeer): void {
    for (const held of this.#byWorker.get(worker)?.values() ?? []) this.#tables.get(held.gateway)?.release(held.address, held.open);
    this.#byWorker.delete(worker);
  }

  /** The most sockets open on the machine from any one address for `gateway` (its use of maxConnectionsPerAddress). */
  mostOpen(gateway: string): number {
    return this.#tables.get(gateway)?.mostOpen ?? 0;
  }

  /** Sockets from `address` open on the machine for `gateway` (tests). */
  openFrom(gateway: string, address: string): number {
    return this.#tables.get(gateway)?.openFrom(address) ?? 0;
  }
}

/** What a worker's engines get: one port per gateway to the machine's tables. */
export interface SharedAdmissionFactory {
  open(gatewayId: string): SharedAdmission;
}

/** A worker's side, one per process: the asks of all its gateways over node:cluster's channel. */
export function workerAdmission(): SharedAdmissionFactory {
  let next = 0;
  const waiting = new Map<number, { resolve: (over: AdmissionLimit | null | 'unanswered') => void; timer: NodeJS.Timeout }>();
  const send = (message: WorkerToPrimary): boolean => process.connected && process.send !== undefined && process.send(message);
  process.on('message', (message: unknown) => {
    if (!isAdmissionAnswer(message)) return;
    const asked = waiting.get(message.id);
    if (asked !== undefined) {
      waiting.delete(message.id);
      clearTimeout(asked.timer);
      asked.resolve(message.over);
    } else if (message.over === null) {
      // Too late: the socket was judged here, so what the primary counted for it is given back.
      send({ gatehouse: 'admission_release', gateway: message.gateway, address: message.address });
    }
  });
  return {
    open: (gateway) => ({
      ask: (address: string, limits: AddressLimits) => new Promise((resolve) => {
        if (waiting.size >= MAX_PENDING_ASKS || !process.connected) {
          resolve('unanswered');
          return;
        }
        const id = next++;
        const timer = setTimeout(() => {
          waiting.delete(id);
          resolve('unanswered');
        }, ASK_TIMEOUT_MS);
        timer.unref();
        waiting.set(id, { resolve, timer });
        const { maxConnectionsPerAddress, connectionRatePerAddress } = limits;
        send({ gatehouse: 'admission_ask', id, gateway, address, maxConnectionsPerAddress, connectionRatePerAddress });
      }),
      release: (address: string) => void send({ gatehouse: 'admission_release', gateway, address }),
    }),
  };
}
