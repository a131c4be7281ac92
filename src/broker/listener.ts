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
    ? net.createServer({ noDelay: true }, (socket) => broker.handle(socket))
    : tls.createServer({ ...options.tls }, (socket) => broker.handle(socket));
  if (options.tls !== undefined) {
    server.on('tlsClientError', (err: Error, socket: tls.TLSSocket) => {
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
