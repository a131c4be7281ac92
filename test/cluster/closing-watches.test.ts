/**
 * A node that stops while its KV watches are still being opened (a gateway started and stopped at once, a node
 * stopped during its start) must leave nothing running: nats.js (@nats-io/jetstream 3.3.1) starts an ordered
 * consumer's idle-heartbeat timer before it subscribes, and on a draining or closed connection the subscribe throws
 * and the timer runs for good — a ClosedConnectionError every 10 s and a process that never exits (it held a
 * clean-clone CI run's test file past 15 minutes, issue 16).
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, test } from 'node:test';
import { ClusterConnection, NatsClusterLinks } from '../../src/cluster/index.ts';
import { SessionRecords } from '../../src/cluster/session-records.ts';
import { silentLogger } from '../../src/core/logger.ts';

const natsUrl = process.env.GATEHOUSE_TEST_NATS_URL;

/** Timers that keep this process alive (unref'd ones, such as retry pauses, do not). */
function liveTimers(): number {
  return process.getActiveResourcesInfo().filter((kind) => kind === 'Timeout').length;
}

const endpoint = {
  receive: () => undefined, retained: () => undefined, retainedHeld: () => [], cutOff: () => undefined,
  sessionMoved: () => undefined, publishWill: () => undefined, receivedQos2: () => ({ received: [], storing: [] }), landedQos2: () => undefined,
  sharedElsewhere: () => undefined, receiveShared: () => false, reshare: () => false,
};

/** Starts the link's four watches: retained messages, shared groups, connection counts, session counts. */
function watchAll(link: ReturnType<NatsClusterLinks['open']>): void {
  link.bind(endpoint);
  link.connections.limit(10);
  link.sessionCounts.limit(10, { of: () => 0, all: () => [] });
}

if (natsUrl === undefined) {
  test('closing KV watches', { skip: 'GATEHOUSE_TEST_NATS_URL is not set (.ci/run starts nats-server and sets it)' }, () => {});
} else {
  describe('a node stopping while its KV watches open', { timeout: 120_000 }, () => {
    test('leaves no timer running, whenever during the opening the stop comes', { timeout: 120_000 }, async () => {
      const installationId = randomUUID();
      // The buckets exist before the loop, as on a node whose gateways ran before: each watch is then a few requests.
      const warm = await ClusterConnection.open({ servers: natsUrl, nodeId: 'warm', installationId, logger: silentLogger });
      const warmLinks = new NatsClusterLinks(warm, silentLogger, 10_000, { nodeId: 'warm', instance: randomUUID() }, SessionRecords.opener(warm));
      const warmLink = warmLinks.open('g1');
      watchAll(warmLink);
      await new Promise((resolve) => setTimeout(resolve, 300));
      warmLink.close();
      warmLinks.close();
      await warm.close();

      const before = liveTimers();
      let leaked = 0;
      // Stops at 0 to 12 ms after the watches start: a spread over the requests of the opening.
      for (let round = 0; round < 26; round++) {
        const conn = await ClusterConnection.open({ servers: natsUrl, nodeId: `n${round}`, installationId, logger: silentLogger });
        const links = new NatsClusterLinks(conn, silentLogger, 10_000, { nodeId: `n${round}`, instance: randomUUID() }, SessionRecords.opener(conn));
        const link = links.open('g1');
        watchAll(link);
        if (round % 13 > 0) await new Promise((resolve) => setTimeout(resolve, round % 13));
        link.close();
        links.close();
        await conn.close();
        await new Promise((resolve) => setImmediate(resolve));
        leaked = liveTimers() - before;
        if (leaked > 0) break;
      }
      assert.equal(leaked, 0, 'a heartbeat timer of a watch outlived its connection');
    });
  });
}
