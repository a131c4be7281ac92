/** Helpers shared by the third-party verification tests: MQTT connects that report the CONNACK code, and metrics. */
import mqtt from 'mqtt';
import { TEST_ADMIN_TOKEN, type TestGatehouse } from './gatehouse.ts';
import type { Pki } from './pki.ts';

export interface ConnectOutcome {
  /** 0 when accepted; else the CONNACK return / reason code (v3: 3 = server unavailable; v5: 0x88). */
  code: number;
  client?: mqtt.MqttClient;
}

/** Connects over TLS and resolves with the CONNACK code (the client is kept open when accepted). */
export function connectOutcome(pki: Pick<Pki, 'root'>, port: number, options: mqtt.IClientOptions): Promise<ConnectOutcome> {
  const client = mqtt.connect({
    host: '127.0.0.1', port, protocol: 'mqtts', ca: pki.root.certPem, servername: 'localhost',
    reconnectPeriod: 0, connectTimeout: 15_000, protocolVersion: 5, ...options,
  });
  return new Promise((resolve, reject) => {
    client.once('connect', () => resolve({ code: 0, client }));
    client.once('error', (err: Error & { code?: number | string }) => {
      client.end(true);
      if (typeof err.code === 'number') resolve({ code: err.code });
      else reject(err);
    });
  });
}

/** The value of one Prometheus sample, e.g. `metricValue(text, 'x_total', { gateway: 'gw', result: 'accept' })`; undefined when absent. */
export function metricValue(text: string, name: string, labels: Record<string, string>): number | undefined {
  return metricValues(text, name, labels)[0];
}

/** Every series of `name` carrying `labels` (GATEHOUSE_TEST_WORKERS: a worker's own state is a series each, `node_id`). */
export function metricValues(text: string, name: string, labels: Record<string, string>): number[] {
  const values: number[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const close = line.lastIndexOf('}');
    const sample = new Map([...line.slice(name.length + 1, close).matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
    if (Object.entries(labels).every(([k, v]) => sample.get(k) === v)) values.push(Number(line.slice(close + 1).trim()));
  }
  return values;
}

export async function scrapeMetrics(gh: TestGatehouse): Promise<string> {
  const res = await fetch(`${gh.gatehouse.url}/api/v1/metrics`, { headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}` } });
  return res.text();
}

/** Polls until `probe` returns a value. */
export async function waitFor<T>(probe: () => Promise<T | undefined>, ms = 5000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}
