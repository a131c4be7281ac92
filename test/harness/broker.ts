/**
 * Starts an MQTT engine for a test on 127.0.0.1 with an ephemeral port.
 *
 * `GATEHOUSE_TEST_REFERENCE=mosquitto` runs the same suite against Debian's mosquitto instead, to check
 * that a conformance test expects what a reference broker does (options it cannot express are ignored).
 */
import type { BrokerOptions } from '../../src/broker/index.ts';

export interface TestBrokerOptions extends Partial<BrokerOptions> {
  /** Also (or only) listen with TLS, using the test server certificate from `test/harness/pki.ts`. */
  tls?: boolean;
}

export interface TestBroker {
  host: '127.0.0.1';
  /** Plain TCP port. */
  port: number;
  /** TLS port when `tls: true`. */
  tlsPort?: number;
  /** PEM of the CA that signed the TLS server certificate (when `tls: true`). */
  caPem?: string;
  /** The engine itself (undefined for the reference broker). */
  engine?: import('../../src/broker/index.ts').Broker;
  close(): Promise<void>;
}

export async function startTestBroker(options: TestBrokerOptions = {}): Promise<TestBroker> {
  if (process.env.GATEHOUSE_TEST_REFERENCE === 'mosquitto') {
    const { startReferenceBroker } = await import('./reference-broker.ts');
    return startReferenceBroker(options);
  }
  const { startEngine } = await import('./engine.ts');
  return startEngine(options);
}
