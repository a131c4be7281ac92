/**
 * A cluster link for engine tests (the seam is src/broker/cluster-link.ts): everything a single node's, except what
 * the test completes by hand — stores into the cluster's stream, and optionally session claims.
 */
import type { ClusterLink, LinkEndpoint, Message, SessionClaim } from '../../src/broker/index.ts';

export interface PendingStore { message: Message; done(stored: boolean): void }

/** A session claim the test answers by hand (`claimsByHand`). */
export interface PendingClaim { clientId: string; done(claim: SessionClaim | 'owned' | 'lost'): void }

/**
 * A link of one node: stores wait for the test; a stored message comes back to the engine as the stream's copy would.
 * With `claimsByHand`, so do session claims (the last step of a cluster node's CONNECT); otherwise each is granted.
 */
export function handStoredLink(options: { claimsByHand?: boolean } = {}): { link: ClusterLink; stores: PendingStore[]; claims: PendingClaim[] } {
  const stores: PendingStore[] = [];
  const claims: PendingClaim[] = [];
  let endpoint: LinkEndpoint | undefined;
  let seq = 0;
  const link: ClusterLink = {
    connections: { limit: () => undefined, elsewhere: () => 0, refresh: () => Promise.resolve(), take: () => true, give: () => undefined, refused: () => undefined, usage: () => ({ current: 0, hits: 0 }) },
    sessionCounts: { limit: () => undefined, take: () => Promise.resolve(true), settle: () => undefined, changed: () => undefined, count: () => 0, most: () => 0 },
    sessionRecorded: () => Promise.resolve(false),
    connectedElsewhere: () => Promise.resolve(false),
    bind: (e) => {
      endpoint = e;
    },
    forward: () => undefined,
    store: (message) => new Promise<boolean>((resolve) => {
      stores.push({
        message,
        done: (stored) => {
          if (stored) endpoint?.receive(message, ++seq);
          resolve(stored);
        },
      });
    }),
    interest: () => undefined,
    sharedInterest: () => undefined,
    forwardShared: () => undefined,
    settled: () => undefined,
    retain: () => Promise.resolve(),
    retainedSettled: () => undefined,
    claimSession: (clientId) => (options.claimsByHand !== true
      ? Promise.resolve({ local: true, displacedWill: null })
      : new Promise((resolve) => claims.push({ clientId, done: resolve }))),
    connectionEnded: () => Promise.resolve(true),
    takeWill: () => Promise.resolve(false),
    reachable: () => true,
    sessionChanged: () => undefined,
    readFlows: (flows) => Promise.resolve(flows),
    qos2Receiving: () => undefined,
    qos2Received: () => undefined,
    qos2Released: () => undefined,
    delivered: () => undefined,
    replay: (_clientId, _moved, _hand, caughtUp) => caughtUp(),
    saveSessions: () => Promise.resolve(),
    close: () => undefined,
  };
  return { link, stores, claims };
}
