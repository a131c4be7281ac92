/**
 * A cluster node started in-process (app.ts's cluster wiring): it joins NATS and says so in /metrics,
 * gives its lease back on close, and refuses to start, with one coded error, when NATS cannot be reached.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { GatehouseError } from '../../src/core/errors.ts';
import { freePort, removeDataDir, startTestGatehouse, TEST_ADMIN_TOKEN } from '../harness/gatehouse.ts';

const natsUrl = process.env.GATEHOUSE_TEST_NATS_URL;
const databaseUrl = process.env.GATEHOUSE_TEST_DATABASE_URL;

if (natsUrl === undefined || databaseUrl === undefined) {
  test('an in-process cluster node', { skip: 'GATEHOUSE_TEST_NATS_URL and GATEHOUSE_TEST_DATABASE_URL must be set (.ci/run sets both)' }, () => {});
} else {
  describe('an in-process cluster node', { timeout: 60_000 }, () => {
    const schema = `cluster_${randomBytes(6).toString('hex')}`;
    const url = new URL(databaseUrl);
    url.searchParams.set('options', `-c search_path=${schema}`);
    const env = { GATEHOUSE_DATABASE_URL: url.toString(), GATEHOUSE_MASTER_KEY: randomBytes(32).toString('hex'), GATEHOUSE_DEMO: 'off' };
    const dirs: string[] = [];

    before(async () => {
      const admin = new pg.Client({ connectionString: databaseUrl });
      await admin.connect();
      await admin.query(`create schema ${schema}`);
      await admin.end();
    }, { timeout: 10_000 });

    after(async () => {
      const admin = new pg.Client({ connectionString: databaseUrl });
      await admin.connect();
      await admin.query(`drop schema if exists ${schema} cascade`);
      await admin.end();
      for (const dir of dirs) await removeDataDir(dir);
    }, { timeout: 10_000 });

    test('it joins the cluster, says so in /metrics, and gives its lease back when it stops', { timeout: 30_000 }, async () => {
      const gh = await startTestGatehouse({ env: { ...env, GATEHOUSE_NATS_URL: natsUrl, GATEHOUSE_NODE_ID: 'in-process-1' } });
      dirs.push(gh.dataDir);
      const cluster = gh.gatehouse.cluster;
      assert.ok(cluster !== null);
      assert.deepEqual((await cluster.leases.live()).map((n) => n.nodeId), ['in-process-1']);
      const metrics = await (await fetch(`${gh.gatehouse.url}/api/v1/metrics`, { headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}` } })).text();
      assert.match(metrics, /^gatehouse_cluster_connected 1$/m);
      // A second node reads the lease list too; the first one's clean stop ended its lease (marked stopped).
      const other = await startTestGatehouse({ env: { ...env, GATEHOUSE_NATS_URL: natsUrl, GATEHOUSE_NODE_ID: 'in-process-2' } });
      dirs.push(other.dataDir);
      assert.deepEqual((await other.gatehouse.cluster!.leases.live()).map((n) => n.nodeId), ['in-process-1', 'in-process-2']);
      await gh.stop();
      assert.deepEqual((await other.gatehouse.cluster!.leases.live()).map((n) => n.nodeId), ['in-process-2']);
      await other.stop();
    });

    test('a NATS server that cannot be reached refuses the start, naming GATEHOUSE_NATS_URL', { timeout: 30_000 }, async () => {
      const closed = await freePort();
      await assert.rejects(startTestGatehouse({ env: { ...env, GATEHOUSE_NATS_URL: `nats://127.0.0.1:${closed}` } }), (e: unknown) =>
        e instanceof GatehouseError && e.code === 'GW_ERR_CLUSTER_NATS_UNREACHABLE' && e.field === 'GATEHOUSE_NATS_URL');
    });
  });
}
