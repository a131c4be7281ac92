/**
 * The platform's port to the other nodes of a cluster (issue 16 item 7): what a node's API shows and does
 * for devices connected to other nodes. Each node taps, stores and sends to webhooks only what its own
 * devices publish (a message is stored once, and a webhook called once, by the node that received it);
 * through this port it shares those events with the other nodes' `/stream`s (only while one is open there),
 * and it asks the other nodes for what only the node holding a device's connection can do (downlink, its
 * sessions, "disconnect now").
 * `src/cluster/platform-peers.ts` is the NATS implementation; a single process has none and pays nothing.
 */
import type { DirectDelivery } from '../broker/index.ts';
import type { MessageRecord } from '../registry/index.ts';
import type { DeviceSessionView } from './device-sessions.ts';
import type { EventFilter, PlatformEvent } from './events.ts';

/** A platform event as it crosses nodes: a message as its record (its payload as bytes), the others as they are. */
export type SharedEvent =
  | { kind: 'message'; record: MessageRecord }
  | { kind: 'event'; event: Exclude<PlatformEvent, { type: 'message' }> };

/** What one node asks the others about a device of a product. */
export type PeerRequest =
  | { kind: 'downlink'; productKey: string; deviceName: string; topic: string; payloadBase64: string; qos: 0 | 1 }
  | { kind: 'sessions'; productKey: string; deviceName: string }
  | { kind: 'disconnect'; productKey: string; deviceName: string }
  /** Write the connection events held for the next batch now: a read through another node's API is about to follow. */
  | { kind: 'flush-connection-events' }
  /** The events kept for /stream resume after `after` that match `filter`: a stream resumes on another node than it ran on. */
  | { kind: 'replay'; after: string; filter: EventFilter };

export type PeerAnswer =
  | { kind: 'downlink'; delivery: DirectDelivery }
  | { kind: 'sessions'; sessions: DeviceSessionView[] }
  | { kind: 'disconnect'; disconnected: number }
  | { kind: 'flush-connection-events' }
  | { kind: 'replay'; events: PlatformEvent[] };

export interface PlatformPeers {
  /** This node's id (webhook outbox rows are claimed under it). */
  readonly nodeId: string;
  /** How long a claim on an outbox row lasts unless renewed: the node's lease (a dead node's rows go to another after it). */
  readonly claimMs: number;
  /**
   * An event of this node's devices, for the streams of the other nodes that hear them now (none: it goes nowhere).
   * Never throws, never waits.
   */
  share(event: SharedEvent): void;
  /**
   * Hears the events the other nodes share, until `stop`. The others share their events only while some node hears
   * them: a node hears only while it has a consumer for them (platform.ts: a `/stream`). `ready` resolves once the
   * other live nodes know (or after a bounded wait): what they share from then on reaches `listener`. One at a time.
   */
  hear(listener: (event: SharedEvent) => void): { ready: Promise<void>; stop(): void };
  /**
   * Asks every other live node and resolves with the answers that came within `maxWaitMs` (none when this
   * node is alone or cut off: the caller answers from its own devices).
   */
  ask(request: PeerRequest, maxWaitMs: number): Promise<PeerAnswer[]>;
  /** Answers the other nodes' requests about this node's devices; returns the function that stops. */
  serve(handler: (request: PeerRequest) => Promise<PeerAnswer>): () => void;
}
