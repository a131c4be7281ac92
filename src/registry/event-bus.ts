/**
 * The registry's event bus port: how a change committed through one node's API reaches the other
 * nodes of a cluster. The registry publishes each committed change once, and hears the changes the
 * other nodes made; it knows nothing of what carries them (src/cluster/ holds the NATS bus). A single
 * process has no bus and pays nothing.
 */
import type { RegistryEventMap, RegistryEventName } from './events.ts';

/** What a bus hands to the registry of its node. */
export interface RemoteEventReceiver {
  /** A change another node committed (a name outside events.ts's SHARED_EVENTS is ignored). */
  event(name: string, payload: unknown): void;
  /** Changes may have been missed (the bus was cut off): everything derived from the registry is read again. */
  resync(): void;
}

export interface RegistryEventBus {
  /** Sends a committed change to the other nodes; never throws, never waits (a cut-off bus resyncs later). */
  publish<K extends RegistryEventName>(name: K, payload: RegistryEventMap[K]): void;
  /** Starts hearing the other nodes' changes; returns the function that stops. */
  subscribe(receiver: RemoteEventReceiver): () => void;
}
