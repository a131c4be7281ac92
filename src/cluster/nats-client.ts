/**
 * The NATS client packages, loaded when a cluster node starts and never by a single process: without
 * GATEHOUSE_NATS_URL, Gatehouse pays nothing for the cluster, not even these modules' load. The imports
 * are dynamic on purpose: the bundle (scripts/build.mjs) keeps a package's dynamic import where it is,
 * while a static one would be hoisted to the top of dist/main.mjs and run at every start.
 */
import type { connect, headers } from '@nats-io/transport-node';
import type { jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { Kvm } from '@nats-io/kv';

export interface NatsClient {
  connect: typeof connect;
  headers: typeof headers;
  jetstream: typeof jetstream;
  jetstreamManager: typeof jetstreamManager;
  Kvm: typeof Kvm;
}

let loading: Promise<NatsClient> | undefined;

export function loadNatsClient(): Promise<NatsClient> {
  loading ??= Promise.all([import('@nats-io/transport-node'), import('@nats-io/jetstream'), import('@nats-io/kv')])
    .then(([transport, jetstream, kv]) => ({
      connect: transport.connect, headers: transport.headers, jetstream: jetstream.jetstream, jetstreamManager: jetstream.jetstreamManager, Kvm: kv.Kvm,
    }));
  return loading;
}
