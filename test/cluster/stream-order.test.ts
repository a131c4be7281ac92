/**
 * The cluster's stream stores a node's QoS 1/2 messages in the order they were handed to it, across a NATS crash
 * (issue 16 item 2, item 8; src/cluster/message-stream.ts): publishes pipelined when NATS is killed (-9) are tried
 * again the oldest first, and nothing published while it is away overtakes them. The nodes deliver in the stream's
 * order, so this is the order subscribers see [MQTT-4.6.0-6]. A private nats-server, killed and started again on
 * the same port and store; the stream read back by subject afterwards. And a stream the NATS server has no room for
 * (JetStream reserves its size in full) refuses the publishes waiting for it, naming the setting, rather than
 * holding them for ever.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, test } from 'node:test';
import { ClusterConnection } from '../../src/cluster/index.ts';
import { MessageStream, NoRoomForStream } from '../../src/cluster/message-stream.ts';
import { silentLogger } from '../../src/core/logger.ts';
import { privateNatsServer, type PrivateNatsServer } from '../harness/nats-server.ts';

/** Publishes unanswered at once, as a node with many publishers has. */
const WINDOW = 64;

async function waitFor(what: string, probe: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const natsUrl = process.env.GATEHOUSE_TEST_NATS_URL;

if (natsUrl === undefined) {
  test('the stream keeps the publishing order across a NATS crash', { skip: 'GATEHOUSE_TEST_NATS_URL is not set (.ci/run starts nats-server and sets it)' }, () => {});
} else {
  let nats: PrivateNatsServer | undefined;
  let conn: ClusterConnection | undefined;
  after(async () => {
    await nats?.start(); // the connection closes cleanly with NATS there
    await conn?.close();
    await nats?.dispose();
  }, { timeout: 30_000 });

  test('messages pipelined when nats-server is killed (-9) are stored in publishing order once it is back, each once; nothing acknowledged while it is away', { timeout: 90_000 }, async () => {
    nats = await privateNatsServer();
    await nats.start();
    conn = await ClusterConnection.open({ servers: nats.url, nodeId: 'order', installationId: randomUUID(), logger: silentLogger });
    const stream = new MessageStream(conn, { maxBytes: 64 * 1024 * 1024, maxAgeMs: 600_000 }, silentLogger);
    const gatewayId = 'order-gw';
    const acked = new Map<number, number>(); // message number → when acknowledged
    const refused: string[] = [];
    let next = 0;
    let inFlight = 0;
    let running = true;
    const publishing = (async () => {
      while (running) {
        if (inFlight >= WINDOW) {
          await new Promise((resolve) => setTimeout(resolve, 1));
          continue;
        }
        const n = next++;
        inFlight++;
        stream.publish(gatewayId, Buffer.from(String(n)), `order-${n}`).then(() => acked.set(n, Date.now()), (err: unknown) => refused.push(String(err)))
          .finally(() => inFlight--);
        await new Promise((resolve) => setImmediate(resolve));
      }
    })();

    await waitFor('load before the crash', () => acked.size >= 500, 30_000);
    await nats.stop('SIGKILL');
    const awayFrom = Date.now();
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const awayUntil = Date.now();
    await nats.start();
    const before = acked.size;
    await waitFor('load after the restart', () => acked.size >= before + 500, 30_000);
    running = false;
    await publishing;
    await waitFor('every publish answered', () => inFlight === 0, 30_000);

    assert.deepEqual(refused, [], 'nothing refused: each publish is tried until the stream holds it');
    assert.equal(acked.size, next, 'every publish acknowledged in the end');
    assert.deepEqual([...acked.values()].filter((at) => at > awayFrom && at < awayUntil), [], 'nothing acknowledged while NATS was away');
    // The stream, read back by subject: every message once, in the order published.
    const stored: number[] = [];
    for (let after = 0, seen = 0; seen < next + 10;) {
      const m = await stream.next(gatewayId, after);
      if (m === null) break;
      stored.push(Number(Buffer.from(m.data).toString()));
      after = m.seq;
      seen++;
    }
    assert.equal(stored.length, next, `${stored.length} stored of ${next} published`);
    const outOfOrder = stored.filter((n, i) => i > 0 && n < stored[i - 1]!);
    assert.deepEqual(outOfOrder.slice(0, 20), [], 'in publishing order');
    assert.deepEqual(stored, Array.from({ length: next }, (_, i) => i));
    stream.close();
  });

  test('a stream the NATS server has no room for: each publish is refused with a message naming the setting, none held; the same stream with room stores', { timeout: 60_000 }, async () => {
    const shared = await ClusterConnection.open({ servers: natsUrl, nodeId: 'no-room', installationId: randomUUID(), logger: silentLogger });
    try {
      // 1 PiB: more than any JetStream here can reserve.
      const huge = new MessageStream(shared, { maxBytes: 2 ** 50, maxAgeMs: 600_000 }, silentLogger);
      const outcomes = await Promise.allSettled([1, 2, 3].map((n) => huge.publish('no-room-gw', Buffer.from(String(n)), `no-room-${n}`)));
      for (const outcome of outcomes) {
        assert.equal(outcome.status, 'rejected');
        const reason = (outcome).reason as Error;
        assert.ok(reason instanceof NoRoomForStream, String(reason));
        assert.match(reason.message, /no room for the 1125899906842624 bytes of stream .*GATEHOUSE_CLUSTER_STREAM_MAX_MB/);
      }
      // A publish after the refusal waits for the next try and is refused the same way: the publisher goes on.
      await assert.rejects(huge.publish('no-room-gw', Buffer.from('4'), 'no-room-4'), NoRoomForStream);
      huge.close();
      const fits = new MessageStream(shared, { maxBytes: 1024 * 1024, maxAgeMs: 600_000 }, silentLogger);
      const ack = await fits.publish('no-room-gw', Buffer.from('5'), 'no-room-5');
      assert.equal(ack.seq, 1);
      fits.close();
      const jsm = await shared.client.jetstreamManager(shared.nc);
      await jsm.streams.delete(fits.name);
    } finally {
      await shared.close();
    }
  });
}
