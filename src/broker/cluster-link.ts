/**
 * The engine's seam to other nodes of a cluster, beside its persistence: after local routing a
 * message goes to the other nodes that have subscribers in this engine's topic space, and their
 * messages come back in through `Broker` as if published here (minus the publisher-side work: no
 * `message_published`, no retained store, never forwarded again). The engine says whether it has
 * subscriptions at all, so a node receives a topic space's traffic only while someone here listens.
 * The engine knows nothing of what carries the messages (src/cluster/ holds the NATS link); without
 * a cluster there is no link and the publish path pays one null check.
 *
 * Retained messages live in the cluster's store (issue 16 item 4): each engine keeps the whole set of its
 * topic space in its own store, as before, and follows the cluster's.
 *
 * A node that cannot reach the others fails closed (issue 16 item 8): while `reachable()` is false the
 * engine refuses new CONNECTs (0x88, v3.1.1 3) and acknowledges no QoS 1/2 PUBLISH; a node cut off
 * longer than its lease is dead to the others, and the link's `cutOff` ends every connection here.
 */
import type { Message } from './message.ts';

/** What the engine hands its link. */
export interface LinkEndpoint {
  /** A message published on another node: for this node's subscribers. */
  receive(message: Message): void;
  /**
   * A topic's retained message as the cluster's store holds it (set or cleared, empty payload, on any node,
   * this one included, or before this engine started): this engine's store follows it.
   */
  retained(message: Message): void;
  /**
   * This node has been cut off from the cluster longer than its lease: the other nodes count it dead
   * (they may take its sessions over), so its clients must go and reconnect to a node that is alive.
   */
  cutOff(): void;
}

export interface ClusterLink {
  /** Called once by the engine, when it has restored its own state (`Broker.restore`). */
  bind(endpoint: LinkEndpoint): void;
  /** A message published on this node, already routed here: for the other nodes' subscribers. */
  forward(message: Message): void;
  /** Whether this engine has subscriptions (true at the first, false when the last one goes). */
  interest(present: boolean): void;
  /**
   * Resolves once the interest last declared is in force across the cluster, or undefined when it is
   * already: a SUBACK waits for it, so a message published anywhere after the SUBACK reaches the subscriber.
   */
  settled(): Promise<void> | undefined;
  /**
   * A retained message set or cleared here, already in this engine's store: for the cluster's store, which
   * the other nodes (and those that start later) follow. Resolves once that store holds it: the PUBACK
   * waits for it, so a subscriber anywhere after the PUBACK gets it.
   */
  retain(message: Message): Promise<void>;
  /**
   * Resolves once this engine's store holds every retained message the cluster's store held when called
   * (undefined: it already does): retained messages for a new subscription are read after it.
   */
  retainedSettled(): Promise<void> | undefined;
  /** Whether the other nodes can be reached now (false: this node is cut off, and fails closed). */
  reachable(): boolean;
  /** The engine stops: no more messages either way. */
  close(): void;
}
