/**
 * The contract of the import operation repository (issue 16: operations in the shared database) that every
 * `Storage` implementation must pass; run by `sqlite.test.ts` and `postgres.test.ts`.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { ImportOperationRecord } from '../../src/registry/import-operation-records.ts';
import type { OpenFreshStorage } from './repository.contract.ts';

const at = (second: number): string => new Date(Date.UTC(2026, 0, 1, 0, 0, second)).toISOString();

function operation(id: string, overrides: Partial<ImportOperationRecord> = {}): ImportOperationRecord {
  return {
    id, productKey: 'pk1', state: 'RUNNING', total: 10, processed: 0, created: 0, failed: 0, startedAt: at(0), finishedAt: null,
    error: null, failures: [], failuresOmitted: 0, nodeId: 'node-a', leaseUntil: at(20), ...overrides,
  };
}

export function importOperationsContract(name: string, open: OpenFreshStorage): void {
  void describe(`${name}: import operations`, () => {
    test('round-trip; progress only while RUNNING; a lapsed lease fails it once; a node\'s running ones fail; pruning', { timeout: 30_000 }, async () => {
      const s = await open();
      try {
        const repo = s.importOperations;
        await repo.insert(operation('op-1'));
        assert.deepEqual(await repo.get('op-1'), operation('op-1'));
        assert.equal(await repo.get('nope'), undefined);

        assert.equal(await repo.updateRunning('op-1', { processed: 5, created: 4, failed: 1, leaseUntil: at(30) }), true);
        assert.deepEqual(await repo.get('op-1'), operation('op-1', { processed: 5, created: 4, failed: 1, leaseUntil: at(30) }));
        // Not lapsed yet at 29 s; lapsed at 31 s, and only the first reader records it.
        const error = { code: 'GW_ERR_IMPORT_INTERRUPTED', message: 'gone', field: null };
        assert.equal(await repo.failLapsed('op-1', at(29), error), false);
        assert.equal(await repo.failLapsed('op-1', at(31), error), true);
        assert.equal(await repo.failLapsed('op-1', at(32), error), false);
        assert.deepEqual(await repo.get('op-1'), operation('op-1', {
          processed: 5, created: 4, failed: 1, state: 'FAILED', finishedAt: at(31), leaseUntil: null, error,
        }));
        // The runner's late writes are refused: it hears its operation is no longer RUNNING.
        assert.equal(await repo.updateRunning('op-1', { processed: 10, state: 'DONE' }), false);
        assert.equal((await repo.get('op-1'))?.state, 'FAILED');

        const failures = [{ row: 3, ok: false, error: { code: 'GW_ERR_USERNAME_TAKEN', message: 'taken', field: 'username' } }];
        await repo.insert(operation('op-2'));
        assert.equal(await repo.updateRunning('op-2', { state: 'DONE', finishedAt: at(40), failures, failuresOmitted: 2, leaseUntil: null }), true);
        assert.deepEqual((await repo.get('op-2'))?.failures, failures);
        await repo.insert(operation('op-3', { nodeId: 'node-b' }));
        await repo.insert(operation('op-4'));
        assert.equal(await repo.failRunningOf('node-a', at(50), error), 1, 'only node-a\'s RUNNING one');
        assert.equal((await repo.get('op-4'))?.state, 'FAILED');
        assert.equal((await repo.get('op-3'))?.state, 'RUNNING');

        // Finished at 31, 40, 50; op-3 runs. Keep those finished from 35 on, at most 1 of them: op-4 stays.
        await repo.prune(at(35), 1);
        assert.deepEqual(await Promise.all(['op-1', 'op-2', 'op-3', 'op-4'].map(async (id) => (await repo.get(id)) !== undefined)), [false, false, true, true]);
      } finally {
        await s.close();
      }
    });
  });
}
