/**
 * The registry's event bus on NATS: every committed change of the shared configuration is published
 * once on the installation's registry subject, and every node applies the others' as its own. Core
 * NATS is at most once, so a node that was cut off cannot know what it missed: when its connection
 * comes back it resyncs (the runtime reads every gateway again; caches are dropped), which is what a
 * durable log would give, without one more stream to keep.
 */
import type { Subscription } from '@nats-io/transport-node';
import type { Logger } from '../core/logger.ts';
import type { RegistryEventBus, RegistryEventMap, RegistryEventName, RemoteEventReceiver } from '../registry/index.ts';
import type { ClusterConnection } from './connection.ts';

interface Envelope {
  node: string;
  name: string;
  payload: unknown;
}

export class NatsRegistryBus implements RegistryEventBus {
  readonly #conn: ClusterConnection;
  readonly #logger: Logger;
  readonly #subject: string;

  constructor(conn: ClusterConnection, logger: Logger) {
    this.#conn = conn;
    this.#logger = logger;
    this.#subject = `${conn.prefix}.registry`;
  }

  publish<K extends RegistryEventName>(name: K, payload: RegistryEventMap[K]): void {
    const envelope: Envelope = { node: this.#conn.nodeId, name, payload };
    try {
      this.#conn.nc.publish(this.#subject, JSON.stringify(envelope));
    } catch (err) {
      // Closed or cut off beyond the client's buffer: the other nodes resync when they reconnect.
      this.#logger.warn({ err, event: name }, 'cluster_registry_publish_failed');
    }
  }

  subscribe(receiver: RemoteEventReceiver): () => void {
    const subscription: Subscription = this.#conn.nc.subscribe(this.#subject, {
      callback: (err, msg) => {
        if (err !== null) {
          this.#logger.error({ err }, 'cluster_registry_subscription_failed');
          return;
        }
        let envelope: Envelope;
        try {
          envelope = msg.json<Envelope>();
        } catch (error) {
          this.#logger.warn({ err: error }, 'cluster_registry_event_unreadable');
          return;
        }
        if (envelope.node === this.#conn.nodeId) return; // noEcho already spares us; a twin id must not loop
        receiver.event(envelope.name, envelope.payload);
      },
    });
    let wasCutOff = false;
    const offState = this.#conn.onState((state) => {
      if (state === 'disconnected') wasCutOff = true;
      else if (state === 'connected' && wasCutOff) {
        wasCutOff = false;
        receiver.resync();
      }
    });
    return () => {
      offState();
      subscription.unsubscribe();
    };
  }
}
