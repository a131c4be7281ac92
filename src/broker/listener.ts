/** A plain TCP or TLS server that hands accepted sockets to an engine. */
import net from 'node:net';
import tls from 'node:tls';
import type { Broker } from './broker.ts';

export interface ListenOptions {
  host?: string;
  port: number;
  /** TLS server options (key, cert, ca, requestCert …); plain TCP when absent. */
  tls?: tls.TlsOptions;
}

export interface Listener {
  readonly server: net.Server;
  readonly port: number;
  close(): Promise<void>;
}

export async function listen(broker: Broker, options: ListenOptions): Promise<Listener> {
  const server = options.tls === undefined
    ? net.createServer({ noDelay: true }, (socket) => {
      broker.admission.admit(socket, () => broker.handle(socket));
    })
    : tls.createServer({ handshakeTimeout: broker.options.handshakeTimeoutMs, ...options.tls }, (socket) => broker.handle(socket));
  if (options.tls !== undefined) {
    guardTlsServer(server as tls.Server, broker, (err, socket) => {
      broker.logger.debug({ err: err.message, remoteAddress: socket.remoteAddress }, 'tls_handshake_failed');
    });
  }
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host ?? '0.0.0.0', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : options.port;
  return {
    server,
    port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/**
 * What every TLS listener in front of an engine needs: per-address admission of raw sockets before the
 * handshake, and a failed or timed-out handshake ending with the socket destroyed. With a
 * 'tlsClientError' listener, Node leaves the socket open: it is ours to destroy. Call it on a server just
 * created: a 'connection' listener added afterwards would see sockets before admission.
 */
export function guardTlsServer(server: tls.Server, broker: Broker, onHandshakeError: (err: Error & { code?: string }, socket: tls.TLSSocket) => void): void {
  // tls.Server's own listener wraps the socket and starts the handshake at once; under GATEHOUSE_WORKERS admission
  // answers later (the primary is asked), so that listener runs only for an admitted socket.
  const handshake = server.listeners('connection');
  server.removeAllListeners('connection');
  server.on('connection', (raw: net.Socket) => {
    broker.admission.admit(raw, () => {
      for (const listener of handshake) Reflect.apply(listener, server, [raw]);
    });
  });
  server.on('tlsClientError', (err: Error & { code?: string }, socket: tls.TLSSocket) => {
    socket.destroy();
    if (err.code === 'ERR_TLS_HANDSHAKE_TIMEOUT') broker.stats.socketsRefused++;
    onHandshakeError(err, socket);
  });
}
