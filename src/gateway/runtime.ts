/**
 * Runs the gateways the operator wants running, and keeps each in step with the registry: started
 * at boot, started and stopped by the API, reloaded on edits, torn down on delete.
 */
import type { Logger } from '../core/logger.ts';
import type { BrokerOptions } from '../broker/index.ts';
import type { GatewayStatus } from '../registry/types.ts';
import type { GatewayDirectory } from './ports.ts';
import { GatewayInstance } from './instance.ts';

export interface GatewayState {
  status: GatewayStatus;
  reason: string | null;
  connectedClients: number;
  port: number | null;
}

export interface GatewayRuntimeOptions {
  directory: GatewayDirectory;
  logger: Logger;
  /** Address gateway listeners bind (GATEHOUSE_MQTT_HOST). */
  host: string;
  brokerOptions?: Partial<BrokerOptions>;
}

export class GatewayRuntime {
  readonly #instances = new Map<string, GatewayInstance>();
  readonly #errors = new Map<string, string>();
  /** Operations per gateway run one after another (an edit during a start waits for it). */
  readonly #queues = new Map<string, Promise<unknown>>();
  readonly #options: GatewayRuntimeOptions;

  constructor(options: GatewayRuntimeOptions) {
    this.#options = options;
  }

  instance(gatewayId: string): GatewayInstance | undefined {
    return this.#instances.get(gatewayId);
  }

  async startAll(): Promise<void> {
    const ids = await this.#options.directory.listEnabledGatewayIds();
    await Promise.all(ids.map((id) => this.startGateway(id).catch(() => undefined)));
  }

  /** Starts (or re-applies) a gateway. Failure leaves it in ERROR with the reason, and rethrows. */
  startGateway(gatewayId: string): Promise<void> {
    return this.#serial(gatewayId, async () => {
      const config = await this.#options.directory.getGatewayRuntimeConfig(gatewayId);
      if (config === null) throw new Error(`gateway ${gatewayId} not found`);
      const running = this.#instances.get(gatewayId);
      try {
        if (running !== undefined) {
          await running.apply(config);
        } else {
          const instance = new GatewayInstance(config, this.#options);
          await instance.start();
          this.#instances.set(gatewayId, instance);
        }
        this.#errors.delete(gatewayId);
        await this.#report(gatewayId, 'RUNNING', null);
      } catch (err) {
        const reason = describeStartError(err, config.port);
        this.#errors.set(gatewayId, reason);
        this.#options.logger.error({ gatewayId, reason }, 'gateway_start_failed');
        await this.#report(gatewayId, 'ERROR', reason);
        throw new Error(reason, { cause: err });
      }
    });
  }

  /** Applies an edit to a running gateway (a stopped one picks it up when started). */
  reloadGateway(gatewayId: string): Promise<void> {
    if (!this.#instances.has(gatewayId)) return Promise.resolve();
    return this.startGateway(gatewayId);
  }

  stopGateway(gatewayId: string, status: GatewayStatus | null = 'STOPPED'): Promise<void> {
    return this.#serial(gatewayId, async () => {
      const instance = this.#instances.get(gatewayId);
      this.#instances.delete(gatewayId);
      this.#errors.delete(gatewayId);
      if (instance !== undefined) await instance.stop();
      if (status !== null) await this.#report(gatewayId, status, null);
    });
  }

  /** The gateway is gone: disconnect its devices and free its port (no status to record). */
  removeGateway(gatewayId: string): Promise<void> {
    return this.stopGateway(gatewayId, null);
  }

  deviceChanged(gatewayId: string, username: string | null, deviceName: string, disconnect: boolean): void {
    this.#instances.get(gatewayId)?.deviceChanged(username, deviceName, disconnect);
  }

  gatewayState(gatewayId: string): GatewayState {
    const instance = this.#instances.get(gatewayId);
    if (instance !== undefined) return { status: 'RUNNING', reason: null, connectedClients: instance.connectedClients, port: instance.port };
    const error = this.#errors.get(gatewayId);
    return { status: error === undefined ? 'STOPPED' : 'ERROR', reason: error ?? null, connectedClients: 0, port: null };
  }

  async close(): Promise<void> {
    await Promise.all([...this.#instances.keys()].map((id) => this.stopGateway(id, null)));
  }

  async #report(gatewayId: string, status: GatewayStatus, reason: string | null): Promise<void> {
    try {
      await this.#options.directory.setGatewayStatus(gatewayId, status, reason);
    } catch (err) {
      this.#options.logger.error({ err, gatewayId }, 'gateway_status_update_failed');
    }
  }

  #serial<T>(gatewayId: string, op: () => Promise<T>): Promise<T> {
    const prev = this.#queues.get(gatewayId) ?? Promise.resolve();
    const next = prev.then(op, op);
    const settled = next.catch(() => undefined);
    this.#queues.set(gatewayId, settled);
    void settled.then(() => {
      if (this.#queues.get(gatewayId) === settled) this.#queues.delete(gatewayId);
    });
    return next;
  }
}

function describeStartError(err: unknown, port: number): string {
  const e = err as NodeJS.ErrnoException;
  if (e.code === 'EADDRINUSE') return `port ${port} is already in use`;
  if (e.code === 'EACCES') return `no permission to listen on port ${port}`;
  // TLS context errors (bad key or certificate) surface from createServer / setSecureContext.
  return `cannot start listener: ${e.message}`;
}
