/** The repository contract on SQLite: a fresh database file per test, in a temporary directory. */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { sql } from 'kysely';
import { silentLogger } from '../../src/core/logger.ts';
import { openStorage } from '../../src/storage/index.ts';
import { repositoryContract } from './repository.contract.ts';
import { platformRepositoryContract } from './platform-repositories.contract.ts';

const root = await mkdtemp(path.join(os.tmpdir(), 'gatehouse-sqlite-'));
after(() => rm(root, { recursive: true, force: true }));
let counter = 0;

repositoryContract('sqlite', async () => openStorage({ dataDir: await mkdtemp(path.join(root, `db${++counter}-`)), logger: silentLogger }));
platformRepositoryContract('sqlite', async () => openStorage({ dataDir: await mkdtemp(path.join(root, `db${++counter}-`)), logger: silentLogger }));

test('sqlite: WAL journal and foreign keys are on; reopening applies no migration twice', async () => {
  const dataDir = await mkdtemp(path.join(root, 'pragmas-'));
  const first = await openStorage({ dataDir, logger: silentLogger });
  const journal = await sql<{ journal_mode: string }>`pragma journal_mode`.execute(first.db);
  const foreignKeys = await sql<{ foreign_keys: number }>`pragma foreign_keys`.execute(first.db);
  assert.equal(journal.rows[0]?.journal_mode, 'wal');
  assert.equal(foreignKeys.rows[0]?.foreign_keys, 1);
  await first.settings.put('kept', 'yes');
  await first.close();

  const second = await openStorage({ dataDir, logger: silentLogger });
  assert.equal(await second.settings.get('kept'), 'yes');
  const applied = await sql<{ name: string }>`select name from kysely_migration`.execute(second.db);
  assert.deepEqual(applied.rows.map((r) => r.name), ['0001-initial', '0002-platform', '0003-access-control', '0004-gateway-limits']);
  await second.close();
});
