/**
 * The registry's event bus port: how a change committed through one node's API reaches the other
 * nodes of a cluster. The registry publishes each committed change once, and hears the changes the
 * other nodes made; it knows nothing of what carries them (src/cluster/ holds the NATS bus). A single
 * process has no bus and pays nothing.
 */
import type { RegistryEventMap, RegistryEventName } from './events.ts';

/** What a bus hands to the registry of its node. */
export interface RemoteEventReceiver {
  /**
   * A change another node committed (a name outside events.ts's SHARED_EVENTS is ignored); the promise of the work
   * it started here, if any goes on (the bus tells the node that made the change once it settled).
   */
  event(name: string, payload: unknown): Promise<void> | undefined;
  /** Changes may have been missed (the bus was cut off): everything derived from the registry is read again. */
  resync(): void;
}

export interface RegistryEventBus {
  /**
   * Sends a committed change to the other nodes; never throws (a cut-off bus resyncs later). With `confirm`, resolves
   * once every other live node applied it, or once the bus stopped waiting (a node that did not answer in time is
   * logged); without, at once. Never rejects.
   */
  publish<K extends RegistryEventName>(name: K, payload: RegistryEventMap[K], confirm: boolean): Promise<void> | undefined;
  /** Starts hearing the other nodes' changes; returns the function that stops. */
  subscribe(receiver: RemoteEventReceiver): () => void;
}
