/** Shared set-up of the platform e2e tests: a Gatehouse, a gateway with one-party devices, MQTT.js clients. */
import assert from 'node:assert/strict';
import mqtt from 'mqtt';
import type { SharedPki } from '../harness/pki.ts';
import { freePort, type TestGatehouse } from '../harness/gatehouse.ts';
import { connackOf } from '../harness/mqtt-connack.ts';

export interface GatewayJson { id: string; name: string; port: number; productKey: string; status: string }

export async function createGateway(gh: TestGatehouse, pki: SharedPki, name: string, extra: Record<string, unknown> = {}): Promise<GatewayJson> {
  const port = await freePort();
  const created = await gh.api<GatewayJson>('POST', '/gateways', {
    name, port, authType: 'ONE_PARTY',
    certificates: { serverCertificateChain: pki.server.chainPem, serverPrivateKey: pki.server.keyPem },
    ...extra,
  });
  assert.equal(created.status, 201, JSON.stringify(created.json));
  return created.json;
}

/** Devices `<name>` with password `pw-<name>`. */
export async function addDevices(gh: TestGatehouse, productKey: string, names: string[]): Promise<void> {
  for (const name of names) {
    const r = await gh.api('POST', `/products/${productKey}/devices`, { username: name, password: `pw-${name}` });
    assert.equal(r.status, 201, JSON.stringify(r.json));
  }
}

export class Clients {
  readonly #all: mqtt.MqttClient[] = [];
  readonly #pki: SharedPki;

  constructor(pki: SharedPki) {
    this.#pki = pki;
  }

  connect(port: number, device: string, options: mqtt.IClientOptions = {}): Promise<mqtt.MqttClient> {
    const client = mqtt.connect({
      host: '127.0.0.1', port, protocol: 'mqtts', ca: this.#pki.root.certPem, servername: 'localhost', reconnectPeriod: 0,
      connectTimeout: 5000, protocolVersion: 5, clientId: `c-${device}`, username: device, password: `pw-${device}`, ...options,
    });
    this.#all.push(client);
    return connackOf(client).then(() => client);
  }

  closeAll(): void {
    for (const c of this.#all) c.end(true);
  }
}

/**
 * Polls `probe` until it gives a value. The deadline is long enough for a machine under load (each probe may connect
 * and query); the test's own timeout bounds the wait too.
 */
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, ms = 15_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** The next message on a topic (filter) that a client subscribed to. */
export function nextMessage(client: mqtt.MqttClient, topic: string, ms = 5000): Promise<{ payload: Buffer; qos: number }> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      client.off('message', onMessage);
      reject(new Error(`no message on ${topic}`));
    }, ms);
    const onMessage = (t: string, payload: Buffer, packet: mqtt.IPublishPacket): void => {
      if (t !== topic) return;
      clearTimeout(timer);
      client.off('message', onMessage);
      resolve({ payload, qos: packet.qos });
    };
    client.on('message', onMessage);
  });
}

export interface MessageJson {
  id: string; gatewayId: string; productKey: string; deviceName: string; topic: string; qos: number; payload: string;
  parsed: Record<string, unknown> | null; parseError: string | null; receivedAt: string;
}

export interface SseEvent { id: string; event: string; data: Record<string, unknown> }

/** A real HTTP client reading server-sent events; resolves once the response headers are in. */
export async function openStream(url: string, headers: Record<string, string>): Promise<{
  take(count: number, ms?: number): Promise<SseEvent[]>;
  close(): void;
}> {
  const controller = new AbortController();
  const res = await fetch(url, { headers, signal: controller.signal });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  const decoder = new TextDecoder();
  const events: SseEvent[] = [];
  let text = '';
  const parse = (): void => {
    let end: number;
    while ((end = text.indexOf('\n\n')) >= 0) {
      const block = text.slice(0, end);
      text = text.slice(end + 2);
      const fields: Record<string, string> = {};
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) continue;
        const i = line.indexOf(': ');
        if (i > 0) fields[line.slice(0, i)] = line.slice(i + 2);
      }
      if (fields.data !== undefined) {
        events.push({ id: fields.id ?? '', event: fields.event ?? 'message', data: JSON.parse(fields.data) as Record<string, unknown> });
      }
    }
  };
  return {
    async take(count: number, ms = 5000): Promise<SseEvent[]> {
      const deadline = Date.now() + ms;
      while (events.length < count) {
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`only ${events.length} of ${count} events arrived`);
        let timer: NodeJS.Timeout | undefined;
        const chunk = await Promise.race([
          reader.read(),
          new Promise<'timeout'>((r) => { timer = setTimeout(() => r('timeout'), left); }),
        ]);
        clearTimeout(timer);
        if (chunk === 'timeout') continue;
        if (chunk.done) throw new Error('the stream ended');
        text += decoder.decode(chunk.value, { stream: true });
        parse();
      }
      return events.splice(0, count);
    },
    close(): void {
      controller.abort();
    },
  };
}
