/** Runs the real engine in-process for a test, on ephemeral 127.0.0.1 ports. */
import { Broker, listen, type Listener } from '../../src/broker/index.ts';
import type { TestBroker, TestBrokerOptions } from './broker.ts';

export async function startEngine(options: TestBrokerOptions): Promise<TestBroker> {
  const { tls, ...brokerOptions } = options;
  const engine = new Broker({ options: brokerOptions });
  const listeners: Listener[] = [await listen(engine, { host: '127.0.0.1', port: 0 })];
  let tlsPort: number | undefined;
  let caPem: string | undefined;
  if (tls === true) {
    const { getPki } = await import('./pki.ts');
    const pki = await getPki();
    const l = await listen(engine, { host: '127.0.0.1', port: 0, tls: { cert: pki.server.chainPem, key: pki.server.keyPem } });
    listeners.push(l);
    tlsPort = l.port;
    caPem = pki.root.certPem;
  }
  return {
    host: '127.0.0.1',
    port: listeners[0]!.port,
    tlsPort,
    caPem,
    engine,
    async close() {
      await engine.close();
      await Promise.all(listeners.map((l) => l.close()));
    },
  };
}
