/** `gatehouse broker`: the bare engine on plain TCP (and TLS), anonymous, for development and conformance work. */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { Broker, listen, type BrokerOptions, type Listener } from '../broker/index.ts';
import { createLogger } from '../core/logger.ts';

function positiveInt(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 0) throw new Error(`${name} must be a non-negative integer, got "${value}"`);
    return n;
  };
}

export function registerBrokerCommand(program: Command): void {
  program
    .command('broker')
    .description('run the bare MQTT engine (anonymous) for development and conformance work')
    .option('--host <address>', 'address to bind', '0.0.0.0')
    .option('--port <port>', 'plain TCP port (0 to disable when --tls-port is set)', positiveInt('--port'), 1883)
    .option('--tls-port <port>', 'TLS port', positiveInt('--tls-port'))
    .option('--tls-cert <file>', 'PEM certificate chain (leaf first)')
    .option('--tls-key <file>', 'PEM private key')
    .option('--max-keepalive <seconds>', 'largest keep alive; v5 clients asking for more get Server Keep Alive', positiveInt('--max-keepalive'))
    .option('--receive-maximum <n>', 'inbound QoS 1/2 window advertised to clients', positiveInt('--receive-maximum'))
    .option('--max-inflight <n>', 'outbound QoS 1/2 window per client', positiveInt('--max-inflight'))
    .option('--max-packet-size <bytes>', 'largest packet accepted', positiveInt('--max-packet-size'))
    .option('--max-queued <n>', 'messages queued per offline or busy session', positiveInt('--max-queued'))
    .option('--log-level <level>', 'pino log level', process.env.GATEHOUSE_LOG_LEVEL ?? 'info')
    .action(async (flags: {
      host: string; port: number; tlsPort?: number; tlsCert?: string; tlsKey?: string; maxKeepalive?: number;
      receiveMaximum?: number; maxInflight?: number; maxPacketSize?: number; maxQueued?: number; logLevel: string;
    }) => {
      const logger = createLogger(flags.logLevel);
      const options: Partial<BrokerOptions> = {};
      if (flags.maxKeepalive !== undefined) options.maxKeepalive = flags.maxKeepalive;
      if (flags.receiveMaximum !== undefined) options.receiveMaximum = flags.receiveMaximum;
      if (flags.maxInflight !== undefined) options.maxInflight = flags.maxInflight;
      if (flags.maxPacketSize !== undefined) options.maxPacketSize = flags.maxPacketSize;
      if (flags.maxQueued !== undefined) options.maxQueued = flags.maxQueued;
      if ((flags.tlsCert === undefined) !== (flags.tlsKey === undefined)) throw new Error('--tls-cert and --tls-key go together');
      const broker = new Broker({ options, logger });
      const listeners: Listener[] = [];
      if (flags.port > 0) listeners.push(await listen(broker, { host: flags.host, port: flags.port }));
      if (flags.tlsCert !== undefined && flags.tlsKey !== undefined) {
        listeners.push(await listen(broker, {
          host: flags.host,
          port: flags.tlsPort ?? 8883,
          tls: { cert: readFileSync(flags.tlsCert), key: readFileSync(flags.tlsKey) },
        }));
      }
      for (const l of listeners) logger.info({ port: l.port, tls: l.server instanceof (await import('node:tls')).Server }, 'broker_listening');
      const stop = async (): Promise<void> => {
        logger.info('broker_stopping');
        await broker.close();
        await Promise.all(listeners.map((l) => l.close()));
        process.exit(0);
      };
      process.once('SIGINT', () => void stop());
      process.once('SIGTERM', () => void stop());
    });
}
