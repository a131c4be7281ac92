/**
 * Runs the gateways the operator wants running, and keeps each in step with the registry: started
 * at boot, started and stopped by the API, reloaded on edits, torn down on delete.
 */
import type { GatewayOcspState, GatewayRuntime as GatewayRuntimePort, GatewayState } from '../registry/ports.ts';
import type { GatewayLimitsUsage } from '../registry/gateway-limits.ts';
import type { GatewayRuntimeConfig, GatewayStatus } from '../registry/types.ts';
import { ocspStateWarnings } from '../registry/index.ts';
import type { ScriptRunner } from '../sandbox/index.ts';
import { GatewayInstance, type GatewayInstanceDeps } from './instance.ts';
import { FunctionScripts } from './auth/function/index.ts';

/** What a runtime needs: what every gateway instance needs, plus the process's one sandbox. */
export type GatewayRuntimeOptions = Omit<GatewayInstanceDeps, 'functionScripts'> & {
  /** The process's one sandbox: verification functions compile in it. */
  runner: ScriptRunner;
};

/** What happened to a running instance; observers (the platform) attach to its broker on 'started'. */
export type InstanceChange = 'started' | 'reconfigured' | 'stopped';
export type InstanceObserver = (change: InstanceChange, instance: GatewayInstance) => void;

export class GatewayRuntime implements GatewayRuntimePort {
  readonly #instances = new Map<string, GatewayInstance>();
  readonly #errors = new Map<string, string>();
  /** Operations on one gateway run one after another (an edit during a start waits for it). */
  readonly #queues = new Map<string, Promise<unknown>>();
  readonly #options: GatewayRuntimeOptions & { functionScripts: FunctionScripts };
  readonly #unsubscribe: (() => void)[] = [];
  readonly #observers = new Set<InstanceObserver>();

  constructor(options: GatewayRuntimeOptions) {
    // One set of compiled verification functions for all gateways: a function is compiled once.
    this.#options = { ...options, functionScripts: new FunctionScripts(options.directory, options.logger, options.runner) };
    const events = options.directory.events;
    this.#unsubscribe.push(
      // Created, started or stopped through this node's API: the API asks this runtime itself and awaits
      // it. Through another node's: this node applies it as its own (issue 16, a shared control plane).
      // Each returns the work it started: the API answers a change once it is applied on every node (events.ts).
      events.on('gateway.created', ({ gatewayId }, { origin }) => (origin === 'remote' ? this.startGateway(gatewayId) : undefined)),
      events.on('gateway.started', ({ gatewayId }, { origin }) => (origin === 'remote' ? this.startGateway(gatewayId) : undefined)),
      events.on('gateway.stopped', ({ gatewayId }, { origin }) => (origin === 'remote' ? this.stopGateway(gatewayId) : undefined)),
      events.on('registry.resync', () => this.reconcile()),
      events.on('gateway.updated', ({ gatewayId }) => this.reloadGateway(gatewayId)),
      events.on('gateway.deleted', ({ gatewayId }) => this.removeGateway(gatewayId)),
      events.on('device.updated', (d) => this.deviceChanged(d.gatewayId, d.username, d.deviceName, 'updated')),
      events.on('device.deleted', (d) => this.deviceChanged(d.gatewayId, d.username, d.deviceName, 'deleted')),
    );
  }

  instance(gatewayId: string): GatewayInstance | undefined {
    return this.#instances.get(gatewayId);
  }

  instances(): IterableIterator<GatewayInstance> {
    return this.#instances.values();
  }

  /**
   * Hears instances start, take an edited configuration and stop (the platform taps their traffic).
   * Called for the instances already running, too. Returns the function that stops observing.
   */
  observeInstances(observer: InstanceObserver): () => void {
    this.#observers.add(observer);
    for (const instance of this.#instances.values()) this.#notify(observer, 'started', instance);
    return () => this.#observers.delete(observer);
  }

  #notifyAll(change: InstanceChange, instance: GatewayInstance): void {
    for (const observer of this.#observers) this.#notify(observer, change, instance);
  }

  #notify(observer: InstanceObserver, change: InstanceChange, instance: GatewayInstance): void {
    try {
      observer(change, instance);
    } catch (err) {
      this.#options.logger.error({ err, gatewayId: instance.config.id, change }, 'instance_observer_failed');
    }
  }

  /**
   * Boot: every gateway the operator left enabled starts; devices recorded online through this process
   * are not any more. A cluster node clears only the devices it held: the other nodes' are still online.
   */
  async startAll(): Promise<void> {
    const configs = await this.#options.directory.listGatewayRuntimeConfigs();
    const now = new Date();
    const scope = this.#options.clusterLinks === undefined ? 'all' : 'node';
    await Promise.all(configs.map(async (c) => {
      await this.#options.directory.markGatewayDevicesOffline(c.id, now, scope);
      if (c.enabled) await this.startGateway(c.id);
      else await this.#report(c.id, 'STOPPED', null);
    }));
  }

  /** Starts (or re-applies) a gateway. A failure is reported as ERROR with its reason, not thrown. */
  startGateway(gatewayId: string): Promise<GatewayState> {
    return this.#serial(gatewayId, async () => {
      const config = await this.#options.directory.getGatewayRuntimeConfig(gatewayId);
      const running = this.#instances.get(gatewayId);
      try {
        if (running !== undefined) {
          await running.apply(config);
          this.#notifyAll('reconfigured', running);
        } else {
          const instance = new GatewayInstance(config, this.#options);
          await instance.start();
          this.#instances.set(gatewayId, instance);
          this.#notifyAll('started', instance);
        }
        this.#errors.delete(gatewayId);
        await this.#report(gatewayId, 'RUNNING', null);
      } catch (err) {
        const reason = describeStartError(err, config.port);
        this.#errors.set(gatewayId, reason);
        this.#options.logger.error({ gatewayId, reason }, 'gateway_start_failed');
        await this.#report(gatewayId, 'ERROR', reason);
      }
      return this.gatewayState(gatewayId);
    });
  }

  /**
   * Applies an edit to a running gateway (a stopped one picks it up when started). A gateway in ERROR
   * tries again: the edit may have removed the cause (a free port, a valid certificate), and the banner
   * promises edits apply live.
   */
  async reloadGateway(gatewayId: string): Promise<void> {
    if (this.#instances.has(gatewayId) || this.#errors.has(gatewayId)) await this.startGateway(gatewayId);
  }

  /**
   * Brings every gateway in line with the registry after changes may have been missed (a cluster node
   * whose bus was cut off): started, stopped, re-applied or removed as the stored configuration says,
   * and cached credentials read again. Idempotent, as every operation here is.
   */
  async reconcile(): Promise<void> {
    let configs: GatewayRuntimeConfig[];
    try {
      configs = await this.#options.directory.listGatewayRuntimeConfigs();
    } catch (err) {
      this.#options.logger.error({ err }, 'gateway_reconcile_failed');
      return;
    }
    const stored = new Set(configs.map((c) => c.id));
    const removals = [...this.#instances.keys()].filter((id) => !stored.has(id)).map((id) => this.removeGateway(id));
    await Promise.all([...removals, ...configs.map(async (c) => {
      if (c.enabled) await this.startGateway(c.id);
      else if (this.#instances.has(c.id) || this.#errors.has(c.id)) await this.stopGateway(c.id);
    })]);
    for (const instance of this.#instances.values()) instance.forgetCachedCredentials();
    this.#options.logger.info({ gateways: configs.length }, 'gateways_reconciled');
  }

  /** The gateway's state once the operations queued for it (an edit being applied) have run. */
  settled(gatewayId: string): Promise<GatewayState> {
    return this.#serial(gatewayId, () => Promise.resolve(this.gatewayState(gatewayId)));
  }

  stopGateway(gatewayId: string): Promise<GatewayState> {
    return this.#serial(gatewayId, async () => {
      await this.#teardown(gatewayId);
      await this.#options.directory.markGatewayDevicesOffline(gatewayId, new Date());
      await this.#report(gatewayId, 'STOPPED', null);
      return this.gatewayState(gatewayId);
    });
  }

  /** The gateway is gone: disconnect its devices, free its port, forget its durable MQTT state. */
  removeGateway(gatewayId: string): Promise<void> {
    return this.#serial(gatewayId, async () => {
      await this.#teardown(gatewayId);
      await this.#options.stateStores?.forget(gatewayId);
    });
  }

  deviceChanged(gatewayId: string, username: string | null, deviceName: string, change: 'updated' | 'deleted'): void {
    this.#instances.get(gatewayId)?.deviceChanged(username, deviceName, change);
  }

  /** The certificate checks of every running gateway with X.509 or OCSP on, by id (a worker's part of the machine's, workers.ts). */
  ocspStates(): Record<string, GatewayOcspState> {
    const states: Record<string, GatewayOcspState> = {};
    for (const [id, instance] of this.#instances) {
      const ocsp = instance.ocspState;
      if (ocsp !== undefined) states[id] = ocsp;
    }
    return states;
  }

  /** The use of every running gateway's limits, by id (a worker's part of the machine's, workers.ts). */
  limitsUsages(): Record<string, GatewayLimitsUsage> {
    const usages: Record<string, GatewayLimitsUsage> = {};
    for (const [id, instance] of this.#instances) usages[id] = instance.limitsUsage();
    return usages;
  }

  gatewayState(gatewayId: string): GatewayState {
    const instance = this.#instances.get(gatewayId);
    const error = this.#errors.get(gatewayId);
    if (instance !== undefined) {
      const ocsp = instance.ocspState;
      // An edit that failed to apply (the new port is taken) leaves the listener where it was: not what was asked.
      const live = { connectedClients: instance.connectedClients, limitsUsage: instance.limitsUsage() };
      const state: GatewayState = error === undefined
        ? { status: 'RUNNING', reason: null, ...live }
        : { status: 'ERROR', reason: `${error}; still listening on port ${instance.port}`, ...live };
      if (ocsp === undefined) return state;
      const warnings = ocspStateWarnings(ocsp);
      return warnings.length === 0 ? { ...state, ocsp } : { ...state, ocsp, warnings };
    }
    return { status: error === undefined ? 'STOPPED' : 'ERROR', reason: error ?? null, connectedClients: 0 };
  }

  async close(): Promise<void> {
    for (const off of this.#unsubscribe) off();
    await Promise.all([...this.#instances.keys()].map((id) => this.#serial(id, () => this.#teardown(id))));
    this.#options.functionScripts.close();
  }

  async #teardown(gatewayId: string): Promise<void> {
    const instance = this.#instances.get(gatewayId);
    this.#instances.delete(gatewayId);
    this.#errors.delete(gatewayId);
    if (instance !== undefined) {
      await instance.stop();
      this.#notifyAll('stopped', instance);
    }
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

/**
 * Client OCSP on while device certificates name no responder: each such device is refused as "server
 * unavailable" (or let in unchecked, by policy) and nothing else said why [issue 14].
 */
function describeStartError(err: unknown, port: number): string {
  const e = err as NodeJS.ErrnoException;
  if (e.code === 'EADDRINUSE') return `port ${port} is already in use`;
  if (e.code === 'EACCES') return `no permission to listen on port ${port}`;
  // TLS context errors (bad key or certificate) surface from createServer / setSecureContext.
  return `cannot start listener: ${e.message}`;
}
