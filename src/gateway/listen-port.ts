/**
 * How a gateway's TLS listener takes its port. A single process (and a cluster node alone on its machine) listens
 * itself; a GATEHOUSE_WORKERS worker listens through the primary (src/port-share.ts).
 */
import type net from 'node:net';

/** How a gateway's TLS server takes its port and gives it back. */
export interface GatewayPorts {
  /** Listens for `gatewayId` on host:port; rejects with the bind error (`code`: EADDRINUSE, EACCES …). */
  listen(server: net.Server, gatewayId: string, port: number, host: string): Promise<void>;
  /** Stops taking new sockets on the server's port; connected sockets stay. */
  close(server: net.Server): Promise<void>;
}

/** A single process, or a cluster node on a machine of its own: the server listens itself. */
export const directPorts: GatewayPorts = {
  listen: (server, _gatewayId, port, host) => new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  }),
  close: (server) => new Promise<void>((resolve) => server.close(() => resolve())),
};
