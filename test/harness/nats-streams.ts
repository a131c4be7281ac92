/**
 * The JetStream side of a test installation on the shared nats-server of GATEHOUSE_TEST_NATS_URL (test/cluster/ and
 * the GATEHOUSE_TEST_WORKERS runs of the end-to-end suite): a small QoS 1/2 stream, and every stream of the
 * installation deleted when the test is done with it. JetStream reserves a stream's max_bytes on its store when the
 * stream is made: installations left behind fill the server's store with reservations until it refuses new streams.
 */
import { loadNatsClient } from '../../src/cluster/nats-client.ts';

/** A test installation's QoS 1/2 stream size (GATEHOUSE_CLUSTER_STREAM_MAX_MB). */
export const TEST_STREAM_MAX_MB = 64;

/** Deletes the JetStream streams (the message stream, the KV buckets' streams) of one installation. */
export async function deleteInstallationStreams(natsUrl: string, installationId: string): Promise<void> {
  const suffix = installationId.replace(/[^A-Za-z0-9_-]/g, '_');
  const client = await loadNatsClient();
  const nc = await client.connect({ servers: natsUrl });
  try {
    const jsm = await client.jetstreamManager(nc);
    for await (const stream of jsm.streams.list()) {
      if (stream.config.name.includes(suffix)) await jsm.streams.delete(stream.config.name);
    }
  } finally {
    await nc.close();
  }
}
