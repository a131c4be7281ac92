/**
 * Composition root. Until the gateway control plane lands, `npm start` runs the bare engine on
 * port 1883 (GATEHOUSE_MQTT_PORT) — the same as `gatehouse broker`.
 */
import { Broker, listen } from './broker/index.ts';
import { createLogger } from './core/logger.ts';

const logger = createLogger();
const port = Number(process.env.GATEHOUSE_MQTT_PORT ?? 1883);
const host = process.env.GATEHOUSE_MQTT_HOST ?? '0.0.0.0';
const broker = new Broker({ logger });
const listener = await listen(broker, { host, port });
logger.info({ host, port: listener.port }, 'broker_listening');

const stop = async (): Promise<void> => {
  await broker.close();
  await listener.close();
  process.exit(0);
};
process.once('SIGINT', () => void stop());
process.once('SIGTERM', () => void stop());
