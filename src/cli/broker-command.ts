/** `gatehouse broker`: the bare engine on plain TCP (and TLS), anonymous, for development and conformance work. */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { Broker, DEFAULT_BROKER_OPTIONS, listen, type BrokerOptions, type Listener } from '../broker/index.ts';
import { createLogger } from '../core/logger.ts';
import { TOPIC_LEVELS_CEILING } from '../mqtt/topics.ts';

function positiveInt(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 0) throw new Error(`${name} must be a non-negative integer, got "${value}"`);
    return n;
  };
}

/** Engine limits settable as flags: `--max-queued 500` sets `maxQueued`. Defaults in the help are the engine's. */
const LIMIT_FLAGS: readonly { flag: string; key: keyof BrokerOptions; help: string }[] = [
  { flag: 'max-keepalive', key: 'maxKeepalive', help: 'largest keep alive in seconds (0 = none); v5 clients asking for more get Server Keep Alive' },
  { flag: 'receive-maximum', key: 'receiveMaximum', help: 'inbound QoS 1/2 window advertised to clients' },
  { flag: 'max-inflight', key: 'maxInflight', help: 'outbound QoS 1/2 window per client' },
  { flag: 'max-packet-size', key: 'maxPacketSize', help: 'largest packet accepted, in bytes' },
  { flag: 'max-queued', key: 'maxQueued', help: 'messages queued per offline or busy session' },
  { flag: 'max-queued-bytes', key: 'maxQueuedBytes', help: 'bytes (payloads and topics) queued per session' },
  { flag: 'max-retained', key: 'maxRetained', help: 'retained messages in all' },
  { flag: 'max-retained-bytes', key: 'maxRetainedBytes', help: 'bytes (payloads and topics) of all retained messages' },
  { flag: 'max-subscriptions', key: 'maxSubscriptionsPerClient', help: 'subscriptions per session' },
  { flag: 'max-topic-levels', key: 'maxTopicLevels', help: 'levels in a topic name or filter (at most 1000)' },
  { flag: 'max-topic-length', key: 'maxTopicLength', help: 'bytes in a topic name or filter' },
  { flag: 'max-user-properties', key: 'maxUserProperties', help: 'user properties in one packet (v5)' },
  { flag: 'max-filters-per-packet', key: 'maxFiltersPerPacket', help: 'topic filters in one SUBSCRIBE or UNSUBSCRIBE' },
  { flag: 'max-uncommitted-bytes', key: 'maxUncommittedBytes', help: 'bytes of state waiting for the disk before reads pause (0 = no limit)' },
  { flag: 'max-client-id-length', key: 'maxClientIdLength', help: 'bytes in a client identifier' },
  { flag: 'max-session-expiry', key: 'maxSessionExpiry', help: 'longest session expiry kept, in seconds' },
  { flag: 'connect-timeout', key: 'connectTimeoutMs', help: 'ms from the TCP accept (TLS handshake included) to the CONNECT' },
  { flag: 'handshake-timeout', key: 'handshakeTimeoutMs', help: 'ms for a TLS handshake' },
  { flag: 'max-connections-per-address', key: 'maxConnectionsPerAddress', help: 'open sockets per source address (0 = no limit)' },
  { flag: 'connection-rate-per-address', key: 'connectionRatePerAddress', help: 'new sockets per second per source address (0 = no limit)' },
];

function camel(flag: string): string {
  return flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

export function registerBrokerCommand(program: Command): void {
  const command = program
    .command('broker')
    .description('run the bare MQTT engine (anonymous) for development and conformance work')
    .option('--host <address>', 'address to bind', '0.0.0.0')
    .option('--port <port>', 'plain TCP port (0 to disable when --tls-port is set)', positiveInt('--port'), 1883)
    .option('--tls-port <port>', 'TLS port', positiveInt('--tls-port'))
    .option('--tls-cert <file>', 'PEM certificate chain (leaf first)')
    .option('--tls-key <file>', 'PEM private key')
    .option('--log-level <level>', 'pino log level', process.env.GATEHOUSE_LOG_LEVEL ?? 'info');
  for (const { flag, key, help } of LIMIT_FLAGS) {
    command.option(`--${flag} <n>`, `${help} (default ${String(DEFAULT_BROKER_OPTIONS[key])})`, positiveInt(`--${flag}`));
  }
  command.action(async (flags: Record<string, unknown> & {
    host: string; port: number; tlsPort?: number; tlsCert?: string; tlsKey?: string; logLevel: string;
  }) => {
    const logger = createLogger(flags.logLevel);
    const options: Record<string, number> = {};
    for (const { flag, key } of LIMIT_FLAGS) {
      const value = flags[camel(flag)];
      if (typeof value === 'number') options[key] = value;
    }
    if ((options.maxTopicLevels ?? 0) > TOPIC_LEVELS_CEILING) throw new Error(`--max-topic-levels must be at most ${TOPIC_LEVELS_CEILING}`);
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
