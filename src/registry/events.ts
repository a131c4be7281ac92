/**
 * Change events: how the data plane (and anyone else watching) learns that the registry changed,
 * without the registry knowing who listens. Emitted after the change is committed, synchronously, in
 * order. A listener that throws is logged and does not affect the change or the other listeners.
 * In a cluster the shared ones also go out on the event bus (event-bus.ts), and the other nodes'
 * arrive here with `origin: 'remote'`: a listener can tell a change made through this node's API
 * (whose caller already asked the runtime) from one it must apply on its own.
 */
import type { Logger } from '../core/logger.ts';
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
export type RegistryListener<K extends RegistryEventName> = (payload: RegistryEventMap[K], meta: EventMeta) => void;

const LOCAL: EventMeta = Object.freeze({ origin: 'local' });
const REMOTE: EventMeta = Object.freeze({ origin: 'remote' });

/** The subscribe half, which is all that consumers get. */
export interface RegistryEventSource {
  /** Returns the function that unsubscribes. */
  on<K extends RegistryEventName>(name: K, listener: RegistryListener<K>): () => void;
}

export class RegistryEvents implements RegistryEventSource {
  readonly #listeners = new Map<RegistryEventName, Set<(payload: never, meta: EventMeta) => void>>();
  readonly #logger: Logger;
  #bus: RegistryEventBus | null = null;

  constructor(logger: Logger) {
    this.#logger = logger;
  }

  /** Joins a cluster's bus: shared changes go out, the other nodes' come in. Returns the function that leaves. */
  connect(bus: RegistryEventBus): () => void {
    this.#bus = bus;
    const stop = bus.subscribe({
      event: (name, payload) => {
        if (SHARED_EVENTS.has(name as RegistryEventName)) this.#dispatch(name as RegistryEventName, payload as never, REMOTE);
        else this.#logger.warn({ event: name }, 'registry_remote_event_unknown');
      },
      resync: () => this.#dispatch('registry.resync', {}, REMOTE),
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
    this.#dispatch(name, payload, LOCAL);
    if (this.#bus !== null && SHARED_EVENTS.has(name)) this.#bus.publish(name, payload);
  }

  #dispatch<K extends RegistryEventName>(name: K, payload: RegistryEventMap[K], meta: EventMeta): void {
    const set = this.#listeners.get(name);
    if (!set) return;
    for (const listener of [...set] as RegistryListener<K>[]) {
      try {
        listener(payload, meta);
      } catch (error) {
        this.#logger.error({ err: error, event: name }, 'registry_listener_failed');
      }
    }
  }
}
