/**
 * Aedes 1.2.0 as a benchmark peer: in-memory persistence (its default), one plain and one TLS listener on
 * 127.0.0.1. Same command-line shape as `gatehouse broker`.
 *
 *   node --import tsx bench/peers/aedes-server.ts --port 1883 --tls-port 8883 --tls-cert server.pem --tls-key server.key
 */
import net from 'node:net';
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { Aedes } from 'aedes';

const { values } = parseArgs({
  options: {
    port: { type: 'string' },
    'tls-port': { type: 'string' },
    'tls-cert': { type: 'string' },
    'tls-key': { type: 'string' },
  },
});

const broker = await Aedes.createBroker();
// Client errors (resets when the generator tears connections down) are normal during a benchmark.
broker.on('clientError', () => undefined);
broker.on('connectionError', () => undefined);

const servers: net.Server[] = [];
if (values.port !== undefined) {
  servers.push(net.createServer(broker.handle).listen(Number(values.port), '127.0.0.1'));
}
if (values['tls-port'] !== undefined) {
  if (values['tls-cert'] === undefined || values['tls-key'] === undefined) throw new Error('--tls-port needs --tls-cert and --tls-key');
  const options = { cert: readFileSync(values['tls-cert']), key: readFileSync(values['tls-key']) };
  servers.push(tls.createServer(options, broker.handle).listen(Number(values['tls-port']), '127.0.0.1'));
}

const stop = (): void => {
  for (const server of servers) server.close();
  broker.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 1000).unref();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
