/**
 * Issue 16: device import operations (issue 14) across nodes. Node A as `npm start` runs it (127.0.0.2, so the
 * test can kill -9 it), node B in-process (127.0.0.3), one PostgreSQL schema, the nats-server of
 * GATEHOUSE_TEST_NATS_URL. An import started through A is polled through B: B sees its progress grow and its
 * result (before, the operation lived in A's memory and B answered GW_ERR_IMPORT_NOT_FOUND). A node killed mid-
 * import leaves an operation that B reports FAILED (GW_ERR_IMPORT_INTERRUPTED) once the node's lease on it
 * lapsed, with the rows of the committed steps kept; a node restarted under its node id fails what its previous
 * life left RUNNING at once.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { removeDataDir } from '../harness/gatehouse.ts';
import { clusterSkip, TestCluster, waitFor, type GatewayJson } from '../harness/cluster.ts';
import { startGatehouseProcess, type GatehouseProcess } from '../harness/gatehouse-process.ts';
import type { TestGatehouse } from '../harness/gatehouse.ts';

const A = '127.0.0.2';
const B = '127.0.0.3';

interface OperationJson {
  id: string; state: string; total: number; processed: number; created: number; failed: number; finishedAt: string | null;
  error: { code: string; message: string; field: string | null } | null; failures: { row: number; error?: { code: string } }[];
}

const csvOf = (prefix: string, count: number): string[] => Array.from({ length: count }, (_, i) => `SN-${i},${prefix}-${String(i).padStart(6, '0')},pw-${i}`);

describe('import operations across nodes', { skip: clusterSkip }, () => {
  const cluster = new TestCluster();
  let a: GatehouseProcess & { dir: string };
  let b: TestGatehouse;
  let gateway: GatewayJson;

  before(async () => {
    await cluster.setUp();
    // B first, in-process: it migrates the schema. A hashes at the lowest cost (the import's speed is not tested).
    b = await cluster.startNode('node-b', B);
    a = await cluster.startProcess('node-a', A, { GATEHOUSE_PASSWORD_SCRYPT_N: '1024' });
    gateway = await cluster.createGateway(b, 'imports');
  }, { timeout: 60_000 });
  after(() => cluster.dispose(), { timeout: 30_000 });

  const poll = async (node: { api: TestGatehouse['api'] }, id: string): Promise<OperationJson> => {
    const reply = await node.api<OperationJson>('GET', `/products/${gateway.productKey}/imports/${id}`);
    assert.equal(reply.status, 200, JSON.stringify(reply.json));
    return reply.json;
  };

  test('an import started through node A: node B sees its progress only grow, then its result', { timeout: 120_000 }, async () => {
    const csv = ['sn,username,password', ...csvOf('imp', 1200), 'SN-x,bad user,pw', 'SN-y,imp-000001,pw'].join('\n');
    const started = await a.api<OperationJson>('POST', `/products/${gateway.productKey}/imports`, csv, 'text/csv');
    assert.equal(started.status, 202, JSON.stringify(started.json));
    const seen: OperationJson[] = [];
    const final = await waitFor('the import to finish, seen through B', async () => {
      const now = await poll(b, started.json.id);
      seen.push(now);
      return now.state === 'RUNNING' ? undefined : now;
    }, 90_000);
    for (let i = 1; i < seen.length; i++) {
      const [x, y] = [seen[i - 1]!, seen[i]!];
      assert.ok(y.processed >= x.processed && y.created >= x.created && y.failed >= x.failed, 'progress never goes back');
    }
    assert.equal(final.state, 'DONE');
    assert.equal(final.error, null);
    assert.deepEqual([final.total, final.processed, final.created, final.failed], [1202, 1202, 1200, 2]);
    assert.deepEqual(final.failures.map((f) => [f.row, f.error?.code]), [[1201, 'GW_ERR_USERNAME_INVALID'], [1202, 'GW_ERR_USERNAME_TAKEN']]);
    // A, which ran it, answers the same; the rows are in the shared database.
    assert.deepEqual(await poll(a, started.json.id), final);
    const product = await b.api<{ deviceCount: number }>('GET', `/products/${gateway.productKey}`);
    assert.equal(product.json.deviceCount, 1200);
  });

  test('a node killed mid-import: the operation turns FAILED (interrupted) once its lease lapses, its committed rows stay', { timeout: 180_000 }, async () => {
    // A node hashing at a real cost, so the import is still running when it dies.
    const dir = `${a.dir}-slow`;
    const slow = await startGatehouseProcess(dir, { ...cluster.env('node-slow', A), GATEHOUSE_PASSWORD_SCRYPT_N: '16384' });
    try {
      const csv = ['sn,username,password', ...csvOf('slow', 20_000)].join('\n');
      const started = await slow.api<OperationJson>('POST', `/products/${gateway.productKey}/imports`, csv, 'text/csv');
      assert.equal(started.status, 202, JSON.stringify(started.json));
      const midway = await waitFor('a first step committed', async () => {
        const now = await poll(b, started.json.id);
        return now.created >= 500 ? now : undefined;
      }, 120_000);
      assert.equal(midway.state, 'RUNNING');
      await slow.kill9();
      const failed = await waitFor('the operation to be reported interrupted', async () => {
        const now = await poll(b, started.json.id);
        return now.state === 'RUNNING' ? undefined : now;
      }, 60_000);
      assert.equal(failed.state, 'FAILED');
      assert.equal(failed.error?.code, 'GW_ERR_IMPORT_INTERRUPTED');
      assert.match(failed.error?.message ?? '', /node-slow/);
      assert.ok(failed.finishedAt !== null);
      assert.ok(failed.created >= midway.created && failed.created < 20_000, `created ${failed.created}`);
      // What it reported created is in the database (a step in flight may have committed more).
      const product = await b.api<{ deviceCount: number }>('GET', `/products/${gateway.productKey}`);
      assert.ok(product.json.deviceCount >= 1200 + failed.created, `${product.json.deviceCount} devices`);
      // Every node answers the same from then on.
      assert.deepEqual(await poll(a, started.json.id), await poll(b, started.json.id));
    } finally {
      await slow.kill9();
      await removeDataDir(dir);
    }
  });

  test('a node restarted under its node id fails what its previous life left RUNNING, without waiting for the lease', { timeout: 180_000 }, async () => {
    const dir = `${a.dir}-restart`;
    const env = { ...cluster.env('node-restart', A), GATEHOUSE_PASSWORD_SCRYPT_N: '16384' };
    let node = await startGatehouseProcess(dir, env);
    try {
      const csv = ['sn,username,password', ...csvOf('again', 20_000)].join('\n');
      const started = await node.api<OperationJson>('POST', `/products/${gateway.productKey}/imports`, csv, 'text/csv');
      assert.equal(started.status, 202, JSON.stringify(started.json));
      await node.kill9();
      assert.equal((await poll(b, started.json.id)).state, 'RUNNING', 'within its lease, the operation is still RUNNING');
      node = await startGatehouseProcess(dir, env);
      // Its start recorded it; no read had to find the lease lapsed.
      const failed = await poll(b, started.json.id);
      assert.equal(failed.state, 'FAILED');
      assert.equal(failed.error?.code, 'GW_ERR_IMPORT_INTERRUPTED');
      assert.match(failed.error?.message ?? '', /restarted/);
    } finally {
      await node.kill9();
      await removeDataDir(dir);
    }
  });
});
