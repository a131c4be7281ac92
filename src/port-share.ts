/**
 * GATEHOUSE_WORKERS (issue 16): how every worker's gateway listens on the same port. The primary binds each gateway
 * port once and hands each accepted socket to one of the workers running that gateway, in turn; a worker's gateway
 * gets its sockets as 'connection' events of its own TLS server.
 *
 * Why not node:cluster's own round-robin, as the API port uses: when the last worker listening on a port closes it
 * (a gateway stopped, deleted or moved) while the primary is handing that worker a socket, the worker answers "not
 * accepted" and the primary queues the socket on the port's handle it has just closed — a socket held open forever,
 * its ClientHello unread (lib/internal/cluster/round_robin_handle.js, the same on Node 20 and 26; found with the
 * end-to-end suite under workers: a connect right after a gateway's DELETE waited with no answer in 6 of 12 tries).
 * Here the socket is the worker's once sent, and a worker that no longer runs the gateway closes it at once.
 */
import net from 'node:net';
import type { GatewayPorts } from './gateway/listen-port.ts';

/** A worker waits this long for the primary to bind a port, then the start fails (ETIMEDOUT) rather than wait. */
export const LISTEN_ANSWER_TIMEOUT_MS = 10_000;
/**
 * Sockets the primary may have handed one worker that its channel has not yet taken (Node sends one socket at a time
 * and waits for the worker's event loop to take it, so a worker busy with handshakes falls behind). Past it the next
 * worker of the gateway gets the socket, and when every one is that far behind the socket is closed: a worker that
 * stopped reading must not have the primary hold sockets without a bound. A reconnect storm stays well inside it
 * (at 256 a storm of 10,000 devices, 500 connecting at once, had 945 of them closed and retried).
 */
export const MAX_HANDOFFS_IN_FLIGHT = 4_096;

interface ListenAsk { gatehouse: 'port_listen'; id: number; gateway: string; host: string; port: number }
interface CloseNote { gatehouse: 'port_close'; gateway: string; host: string; port: number }
interface ListenAnswer { gatehouse: 'port_answer'; id: number; error: { code: string; message: string } | null }
interface Handoff { gatehouse: 'port_socket'; gateway: string; port: number }

type WorkerToPrimary = ListenAsk | CloseNote;

const isText = (s: unknown): s is string => typeof s === 'string' && s.length > 0 && s.length <= 256;
const isPort = (n: unknown): n is number => Number.isSafeInteger(n) && (n as number) >= 0 && (n as number) <= 65_535;

/** A worker's listen or close, checked field by field (the primary trusts no shape). */
export function isPortRequest(message: unknown): message is WorkerToPrimary {
  if (typeof message !== 'object' || message === null) return false;
  const m = message as Partial<Record<keyof ListenAsk, unknown>>;
  if (!isText(m.gateway) || !isText(m.host) || !isPort(m.port)) return false;
  return m.gatehouse === 'port_close' || (m.gatehouse === 'port_listen' && Number.isSafeInteger(m.id));
}

/** Where the primary sends answers and sockets (a node:cluster Worker). */
export interface PortPeer {
  send(message: ListenAnswer | Handoff, socket?: net.Socket, options?: { keepOpen?: boolean }, callback?: (err: Error | null) => void): unknown;
  isConnected(): boolean;
}

interface SharedPort {
  readonly gateway: string;
  /** The port as the workers asked for it (their key for the sockets it brings). */
  readonly port: number;
  readonly server: net.Server;
  bound: boolean;
  /** The workers running the gateway here, in the order they take sockets. */
  readonly members: PortPeer[];
  /** Asks answered once the bind settles. */
  readonly waiting: { peer: PortPeer; id: number }[];
  next: number;
}

const keyOf = (host: string, port: number): string => `${host}|${port}`;

/** What the primary logs of its ports. */
export type PortEvent = 'gateway_socket_refused' | 'gateway_port_error';

/** The primary's side: one bound socket per gateway port, its accepted sockets handed to the workers in turn. */
export class PrimaryPorts {
  readonly #ports = new Map<string, SharedPort>();
  readonly #inFlight = new Map<PortPeer, number>();
  readonly #report: (event: PortEvent, reason: string) => void;
  readonly #maxInFlight: number;

  /**
   * `report`: for the log, a socket closed in the primary (no worker could take it) or a bound port's accept error.
   * `maxInFlight`: MAX_HANDOFFS_IN_FLIGHT (tests lower it).
   */
  constructor(report: (event: PortEvent, reason: string) => void = () => undefined, maxInFlight = MAX_HANDOFFS_IN_FLIGHT) {
    this.#report = report;
    this.#maxInFlight = maxInFlight;
  }

  handle(from: PortPeer, message: WorkerToPrimary): void {
    const key = keyOf(message.host, message.port);
    const shared = this.#ports.get(key);
    if (message.gatehouse === 'port_close') {
      if (shared === undefined || shared.gateway !== message.gateway) return;
      this.#leave(key, shared, from);
      return;
    }
    if (shared !== undefined) {
      // Another gateway on the port, or this worker twice: what a second bind of the port would say.
      if (shared.gateway !== message.gateway || shared.members.includes(from)) {
        this.#answer(from, message.id, { code: 'EADDRINUSE', message: `listen EADDRINUSE: address already in use ${message.host}:${message.port}` });
        return;
      }
      shared.members.push(from);
      if (shared.bound) this.#answer(from, message.id, null);
      else shared.waiting.push({ peer: from, id: message.id });
      return;
    }
    this.#bind(key, message, from);
  }

  /** A worker exited: it takes no more sockets, and a port nobody runs any more is closed. */
  forget(peer: PortPeer): void {
    this.#inFlight.delete(peer);
    for (const [key, shared] of [...this.#ports]) if (shared.members.includes(peer)) this.#leave(key, shared, peer);
  }

  /** The gateway ports bound now, with how many workers take each one's sockets (tests). */
  boundPorts(): { port: number; workers: number }[] {
    return [...this.#ports.values()].filter((s) => s.bound).map((s) => ({ port: s.port, workers: s.members.length }));
  }

  #bind(key: string, ask: ListenAsk, from: PortPeer): void {
    // Paused: the primary never reads a byte; the worker's TLS server does.
    const server = net.createServer({ pauseOnConnect: true });
    const shared: SharedPort = { gateway: ask.gateway, port: ask.port, server, bound: false, members: [from], waiting: [{ peer: from, id: ask.id }], next: 0 };
    this.#ports.set(key, shared);
    const bindFailed = (err: NodeJS.ErrnoException): void => {
      if (this.#ports.get(key) === shared) this.#ports.delete(key);
      for (const { peer, id } of shared.waiting.splice(0)) this.#answer(peer, id, { code: err.code ?? 'EINVAL', message: err.message });
    };
    server.once('error', bindFailed);
    server.on('connection', (socket: net.Socket) => this.#handOff(shared, socket));
    server.listen(ask.port, ask.host, () => {
      // From now on an error is an accept's (EMFILE …): logged, the port stays.
      server.off('error', bindFailed);
      server.on('error', (err) => this.#report('gateway_port_error', err.message));
      shared.bound = true;
      // Every worker left while the port was being bound: nobody takes its sockets.
      if (shared.members.length === 0) {
        this.#close(key, shared);
        return;
      }
      for (const { peer, id } of shared.waiting.splice(0)) this.#answer(peer, id, null);
    });
  }

  #leave(key: string, shared: SharedPort, peer: PortPeer): void {
    const at = shared.members.indexOf(peer);
    if (at >= 0) shared.members.splice(at, 1);
    const waiting = shared.waiting.findIndex((w) => w.peer === peer);
    if (waiting >= 0) shared.waiting.splice(waiting, 1);
    if (shared.members.length === 0 && shared.bound) this.#close(key, shared);
  }

  #close(key: string, shared: SharedPort): void {
    if (this.#ports.get(key) === shared) this.#ports.delete(key);
    // Sockets already handed off are the workers'; the listening socket closes now (its callback would wait for them).
    shared.server.close();
  }

  #handOff(shared: SharedPort, socket: net.Socket): void {
    socket.on('error', () => undefined); // a reset before the handoff: nothing to do, it is destroyed below
    const { members } = shared;
    for (let tried = 0; tried < members.length; tried++) {
      const peer = members[shared.next++ % members.length]!;
      const inFlight = this.#inFlight.get(peer) ?? 0;
      if (!peer.isConnected() || inFlight >= this.#maxInFlight) continue;
      this.#inFlight.set(peer, inFlight + 1);
      peer.send({ gatehouse: 'port_socket', gateway: shared.gateway, port: shared.port }, socket, { keepOpen: false }, (err) => {
        const left = (this.#inFlight.get(peer) ?? 1) - 1;
        if (this.#inFlight.has(peer)) this.#inFlight.set(peer, left);
        if (err !== null) socket.destroy();
      });
      return;
    }
    socket.destroy();
    this.#report('gateway_socket_refused', members.length === 0 ? 'no worker runs the gateway' : 'every worker of the gateway is behind on its sockets');
  }

  #answer(peer: PortPeer, id: number, error: ListenAnswer['error']): void {
    if (peer.isConnected()) peer.send({ gatehouse: 'port_answer', id, error });
  }
}

function isAnswer(message: unknown): message is ListenAnswer {
  if (typeof message !== 'object' || message === null) return false;
  const m = message as Partial<Record<keyof ListenAnswer, unknown>>;
  return m.gatehouse === 'port_answer' && Number.isSafeInteger(m.id) && typeof m.error === 'object';
}

function isHandoff(message: unknown): message is Handoff {
  if (typeof message !== 'object' || message === null) return false;
  const m = message as Partial<Record<keyof Handoff, unknown>>;
  return m.gatehouse === 'port_socket' && isText(m.gateway) && isPort(m.port);
}

/** A worker's side, one per process: its gateways' servers listen through the primary. */
export function workerPorts(): GatewayPorts {
  let next = 0;
  const asks = new Map<number, { resolve: () => void; reject: (err: Error) => void; timer: NodeJS.Timeout }>();
  /** The server taking each port's sockets here, keyed by gateway and port as the primary sends them. */
  const servers = new Map<string, net.Server>();
  const placed = new Map<net.Server, { gateway: string; host: string; port: number; key: string }>();
  const send = (message: WorkerToPrimary): boolean => process.connected && process.send !== undefined && process.send(message);
  process.on('message', (message: unknown, socket?: unknown) => {
    if (isAnswer(message)) {
      const ask = asks.get(message.id);
      if (ask === undefined) return;
      asks.delete(message.id);
      clearTimeout(ask.timer);
      if (message.error === null) ask.resolve();
      else ask.reject(Object.assign(new Error(message.error.message), { code: message.error.code, syscall: 'listen' }));
      return;
    }
    if (!isHandoff(message) || !(socket instanceof net.Socket)) return;
    const server = servers.get(`${message.gateway} ${message.port}`);
    // Sent as the gateway stopped or moved here: this worker no longer takes its sockets, so it closes this one.
    if (server === undefined) socket.destroy();
    else server.emit('connection', socket);
  });
  return {
    listen: (server, gateway, port, host) => new Promise<void>((resolve, reject) => {
      if (!process.connected) {
        reject(Object.assign(new Error('the primary process is gone'), { code: 'ECONNRESET', syscall: 'listen' }));
        return;
      }
      const id = next++;
      const key = `${gateway} ${port}`;
      const timer = setTimeout(() => {
        asks.delete(id);
        send({ gatehouse: 'port_close', gateway, host, port });
        reject(Object.assign(new Error(`the primary did not bind ${host}:${port} within ${LISTEN_ANSWER_TIMEOUT_MS} ms`), { code: 'ETIMEDOUT', syscall: 'listen' }));
      }, LISTEN_ANSWER_TIMEOUT_MS);
      asks.set(id, {
        resolve: () => {
          servers.set(key, server);
          placed.set(server, { gateway, host, port, key });
          resolve();
        },
        reject,
        timer,
      });
      send({ gatehouse: 'port_listen', id, gateway, host, port });
    }),
    close: (server) => {
      const at = placed.get(server);
      if (at !== undefined) {
        placed.delete(server);
        if (servers.get(at.key) === server) servers.delete(at.key);
        send({ gatehouse: 'port_close', gateway: at.gateway, host: at.host, port: at.port });
      }
      return Promise.resolve();
    },
  };
}
