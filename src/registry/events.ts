/**
 * Change events: how the data plane (and anyone else watching) learns that the registry changed,
 * without the registry knowing who listens. Emitted after the change is committed, synchronously, in
 * order. A listener that throws is logged and does not affect the change or the other listeners.
 * In a cluster the shared ones also go out on the event bus (event-bus.ts), and the other nodes'
 * arrive here with `origin: 'remote'`: a listener can tell a change made through this node's API
 * (whose caller already asked the runtime) from one it must apply on its own.
 *
 * A listener whose work goes on after it returns (a gateway started, webhooks read again) returns that work's
 * promise: a change counts as applied once it settled, here and on every other node of a cluster (`applied`). The
 * API answers a change only then, so what it answered is in force on every node: an operator who narrows a gateway's
 * rules is never answered while another node still delivers what they now refuse.
 */
import type { Logger } from '../core/logger.ts';
import { settledWithin } from '../core/settled-within.ts';
import type { RegistryEventBus } from './event-bus.ts';

/** Top-level gateway fields an edit may change; the runtime uses them to decide what to reload. */
export type GatewayChange =
  | 'name' | 'port' | 'dataParsing' | 'authType' | 'thirdParty' | 'x509' | 'ocsp' | 'accessControl' | 'limits' | 'certificates';

export interface DeviceRef {
  gatewayId: string;
  productKey: string;
  deviceName: string;
  /** The one-party username, for credential caches keyed by it (null for auto-created devices). */
  username: string | null;
}

export interface RegistryEventMap {
  /** A new gateway (with `enabled` true); the API then asks the runtime to start it. */
  'gateway.created': { gatewayId: string; productKey: string };
  /** Settings changed; `changed` lists which. Apply live (certificates swap, port moves, auth on next CONNECT). */
  'gateway.updated': { gatewayId: string; productKey: string; changed: GatewayChange[] };
  /** The gateway, its product and its devices are gone: disconnect its clients, free its port. */
  'gateway.deleted': { gatewayId: string; productKey: string };
  /**
   * The operator asked for the listener on / off (`enabled` changed). The API also calls the runtime
   * directly and awaits it, so a runtime that acts on these must do so idempotently.
   */
  'gateway.started': { gatewayId: string };
  'gateway.stopped': { gatewayId: string };
  'device.created': DeviceRef;
  /** Password, SN or disabled flag changed: drop cached credentials of this device. */
  'device.updated': DeviceRef;
  'device.deleted': DeviceRef;
  /** Recorded by the data plane itself (`recordDeviceConnected/Disconnected`), for observers. */
  'device.connected': DeviceRef & { clientAddress: string | null; at: string };
  'device.disconnected': DeviceRef & { at: string };
  /** A verification function's source or limits changed (or it appeared/disappeared): recompile. */
  'function.created': { name: string };
  'function.updated': { name: string };
  'function.deleted': { name: string };
  /** A webhook was created, edited or deleted: the platform reloads its delivery targets. */
  'webhook.changed': { webhookId: string };
  /** Changes of other nodes may have been missed (the cluster bus was cut off): read everything again. */
  'registry.resync': Record<string, never>;
}

export type RegistryEventName = keyof RegistryEventMap;

/** Changes that other nodes of a cluster apply as their own: the configuration, never a node's observations. */
export const SHARED_EVENTS: ReadonlySet<RegistryEventName> = new Set<RegistryEventName>([
  'gateway.created', 'gateway.updated', 'gateway.deleted', 'gateway.started', 'gateway.stopped',
  'device.created', 'device.updated', 'device.deleted',
  'function.created', 'function.updated', 'function.deleted',
  'webhook.changed',
]);
/** Where a change was made: through this node (`local`) or another node of the cluster (`remote`). */
export interface EventMeta {
  readonly origin: 'local' | 'remote';
}
/** May return the promise of the work it started, if any goes on after it returns (what `applied` waits for); other values are ignored. */
export type RegistryListener<K extends RegistryEventName> = (payload: RegistryEventMap[K], meta: EventMeta) => unknown;

/**
 * Shared changes that the node making one waits for the others to apply (event-bus.ts `publish`): all but a device's
 * creation, which no node keeps anything of (a CONNECT reads the device from the database).
 */
export const CONFIRMED_EVENTS: ReadonlySet<RegistryEventName> = new Set<RegistryEventName>(
  [...SHARED_EVENTS].filter((name) => name !== 'device.created'),
);

/** How long `applied` waits at most for this node's own listeners (the bus bounds the other nodes' answers). */
export const LOCAL_APPLY_WAIT_MS = 5_000;

const LOCAL: EventMeta = Object.freeze({ origin: 'local' });
const REMOTE: EventMeta = Object.freeze({ origin: 'remote' });

/** The subscribe half, which is all that consumers get. */
export interface RegistryEventSource {
  /** Returns the function that unsubscribes. */
  on<K extends RegistryEventName>(name: K, listener: RegistryListener<K>): () => void;
}

export class RegistryEvents implements RegistryEventSource {
  readonly #listeners = new Map<RegistryEventName, Set<(payload: never, meta: EventMeta) => unknown>>();
  readonly #logger: Logger;
  #bus: RegistryEventBus | null = null;
  /** Changes emitted here that started work to wait for (`emitted`), and those not yet applied everywhere, by their number. */
  #emitted = 0;
  readonly #applying = new Map<number, Promise<void>>();

  constructor(logger: Logger) {
    this.#logger = logger;
  }

  /** Joins a cluster's bus: shared changes go out, the other nodes' come in. Returns the function that leaves. */
  connect(bus: RegistryEventBus): () => void {
    this.#bus = bus;
    const stop = bus.subscribe({
      event: (name, payload) => {
        if (SHARED_EVENTS.has(name as RegistryEventName)) return this.#dispatch(name as RegistryEventName, payload as never, REMOTE);
        this.#logger.warn({ event: name }, 'registry_remote_event_unknown');
        return undefined;
      },
      resync: () => void this.#dispatch('registry.resync', {}, REMOTE),
    });
    return () => {
      stop();
      if (this.#bus === bus) this.#bus = null;
    };
  }

  on<K extends RegistryEventName>(name: K, listener: RegistryListener<K>): () => void {
    let set = this.#listeners.get(name);
    if (!set) this.#listeners.set(name, (set = new Set()));
    set.add(listener);
    return () => {
      set.delete(listener);
    };
  }

  emit<K extends RegistryEventName>(name: K, payload: RegistryEventMap[K]): void {
    const here = this.#dispatch(name, payload, LOCAL);
    const elsewhere = this.#bus !== null && SHARED_EVENTS.has(name) ? this.#bus.publish(name, payload, CONFIRMED_EVENTS.has(name)) : undefined;
    const work = [here === undefined ? undefined : settledWithin(here, LOCAL_APPLY_WAIT_MS), elsewhere].filter((p) => p !== undefined);
    if (work.length === 0) return;
    const number = ++this.#emitted;
    const applying = Promise.all(work).then(() => undefined);
    this.#applying.set(number, applying);
    void applying.finally(() => this.#applying.delete(number));
  }

  /** How many changes emitted here so far started work to wait for: `applied(since)` waits for those after it. */
  get emitted(): number {
    return this.#emitted;
  }

  /**
   * Resolves once the changes emitted after `since` are applied by this node's listeners and by every other live node
   * of a cluster (each wait bounded: LOCAL_APPLY_WAIT_MS here, the bus's own for the others); undefined: they are.
   */
  applied(since: number): Promise<void> | undefined {
    const waits: Promise<void>[] = [];
    for (const [number, applying] of this.#applying) if (number > since) waits.push(applying);
    return waits.length === 0 ? undefined : Promise.all(waits).then(() => undefined);
  }

  /** Runs the listeners; the promise of the work they started (settled, never rejected), if any. */
  #dispatch<K extends RegistryEventName>(name: K, payload: RegistryEventMap[K], meta: EventMeta): Promise<void> | undefined {
    const set = this.#listeners.get(name);
    if (!set) return undefined;
    const work: Promise<unknown>[] = [];
    for (const listener of [...set] as RegistryListener<K>[]) {
      try {
        const started = listener(payload, meta);
        if (started instanceof Promise) work.push(started);
      } catch (error) {
        this.#logger.error({ err: error, event: name }, 'registry_listener_failed');
      }
    }
    if (work.length === 0) return undefined;
    return Promise.all(work.map((p) => p.catch((error: unknown) => this.#logger.error({ err: error, event: name }, 'registry_listener_failed'))))
      .then(() => undefined);
  }
}
