/**
 * Change events: how the data plane (and anyone else watching) learns that the registry changed,
 * without the registry knowing who listens. Emitted after the change is committed, synchronously, in
 * order. A listener that throws is logged and does not affect the change or the other listeners.
 */
import type { Logger } from '../core/logger.ts';

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
}

export type RegistryEventName = keyof RegistryEventMap;
export type RegistryListener<K extends RegistryEventName> = (payload: RegistryEventMap[K]) => void;

/** The subscribe half, which is all that consumers get. */
export interface RegistryEventSource {
  /** Returns the function that unsubscribes. */
  on<K extends RegistryEventName>(name: K, listener: RegistryListener<K>): () => void;
}

export class RegistryEvents implements RegistryEventSource {
  readonly #listeners = new Map<RegistryEventName, Set<(payload: never) => void>>();
  readonly #logger: Logger;

  constructor(logger: Logger) {
    this.#logger = logger;
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
    const set = this.#listeners.get(name);
    if (!set) return;
    for (const listener of [...set] as RegistryListener<K>[]) {
      try {
        listener(payload);
      } catch (error) {
        this.#logger.error({ err: error, event: name }, 'registry_listener_failed');
      }
    }
  }
}
