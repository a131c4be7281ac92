/**
 * The engine's seam to other nodes of a cluster, beside its persistence: after local routing a
 * message goes to the other nodes that have subscribers in this engine's topic space, and their
 * messages come back in through `Broker` as if published here (minus the publisher-side work: no
 * `message_published`, no retained store, never forwarded again). The engine says whether it has
 * subscriptions at all, so a node receives a topic space's traffic only while someone here listens.
 * The engine knows nothing of what carries the messages (src/cluster/ holds the NATS link); without
 * a cluster there is no link and the publish path pays one null check.
 */
import type { Message } from './message.ts';

export interface ClusterLink {
  /** Called once by the engine: where messages published on other nodes go. */
  bind(receive: (message: Message) => void): void;
  /** A message published on this node, already routed here: for the other nodes' subscribers. */
  forward(message: Message): void;
  /** Whether this engine has subscriptions (true at the first, false when the last one goes). */
  interest(present: boolean): void;
  /**
   * Resolves once the interest last declared is in force across the cluster, or undefined when it is
   * already: a SUBACK waits for it, so a message published anywhere after the SUBACK reaches the subscriber.
   */
  settled(): Promise<void> | undefined;
  /** The engine stops: no more messages either way. */
  close(): void;
}
