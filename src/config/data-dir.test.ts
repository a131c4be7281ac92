import assert from 'node:assert/strict';
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { GatehouseError } from '../core/errors.ts';
import { prepareDataDir } from './data-dir.ts';
import { readConfig } from './read-config.ts';

const root = await mkdtemp(path.join(os.tmpdir(), 'gatehouse-datadir-'));
after(() => rm(root, { recursive: true, force: true }), { timeout: 30_000 });

test('first start generates token and master key (0600), the next start reads the same ones', { timeout: 5_000 }, async () => {
  const dataDir = path.join(root, 'fresh', 'data');
  const first = await prepareDataDir(readConfig({ GATEHOUSE_DATA_DIR: dataDir }));
  assert.deepEqual(first.generated, { adminToken: true, masterKey: true });
  assert.ok(first.config.adminToken.length >= 32);
  assert.equal(first.config.masterKey.length, 32);
  for (const file of ['admin-token', 'master.key']) {
    assert.equal((await stat(path.join(dataDir, file))).mode & 0o777, 0o600, file);
  }
  assert.equal((await readFile(path.join(dataDir, 'admin-token'), 'utf8')).trim(), first.config.adminToken);

  const second = await prepareDataDir(readConfig({ GATEHOUSE_DATA_DIR: dataDir }));
  assert.deepEqual(second.generated, { adminToken: false, masterKey: false });
  assert.equal(second.config.adminToken, first.config.adminToken);
  assert.deepEqual(second.config.masterKey, first.config.masterKey);
  assert.deepEqual(second.warnings, []);
});

test('the node id is generated once into the data directory and kept; GATEHOUSE_NODE_ID wins over it', { timeout: 5_000 }, async () => {
  const dataDir = path.join(root, 'node-id');
  const first = await prepareDataDir(readConfig({ GATEHOUSE_DATA_DIR: dataDir }));
  assert.match(first.config.nodeId, /^node-[0-9a-f]{12}$/);
  assert.equal((await stat(path.join(dataDir, 'node-id'))).mode & 0o777, 0o600);
  assert.equal((await prepareDataDir(readConfig({ GATEHOUSE_DATA_DIR: dataDir }))).config.nodeId, first.config.nodeId);
  assert.equal((await prepareDataDir(readConfig({ GATEHOUSE_DATA_DIR: dataDir, GATEHOUSE_NODE_ID: 'edge-2' }))).config.nodeId, 'edge-2');
  await writeFile(path.join(dataDir, 'node-id'), 'not a token.\n', { mode: 0o600 });
  await assert.rejects(prepareDataDir(readConfig({ GATEHOUSE_DATA_DIR: dataDir })),
    (e: unknown) => e instanceof GatehouseError && e.code === 'GW_ERR_CONFIG_INVALID' && e.field === 'GATEHOUSE_NODE_ID');
});

test('configured secrets are used and nothing is written', { timeout: 5_000 }, async () => {
  const dataDir = path.join(root, 'configured');
  const prepared = await prepareDataDir(readConfig({
    GATEHOUSE_DATA_DIR: dataDir, GATEHOUSE_ADMIN_TOKEN: 't'.repeat(24), GATEHOUSE_MASTER_KEY: '01'.repeat(32),
  }));
  assert.deepEqual(prepared.generated, { adminToken: false, masterKey: false });
  assert.deepEqual(prepared.files, { adminToken: null, masterKey: null });
  assert.equal(prepared.config.adminToken, 't'.repeat(24));
  await assert.rejects(stat(path.join(dataDir, 'admin-token')));
});

test('a secret file or directory others can read is tightened and reported; a broken secret is an error naming the key', { timeout: 5_000 }, async () => {
  const dataDir = path.join(root, 'loose');
  await prepareDataDir(readConfig({ GATEHOUSE_DATA_DIR: dataDir }));
  await chmod(path.join(dataDir, 'admin-token'), 0o644);
  await chmod(dataDir, 0o755);
  const prepared = await prepareDataDir(readConfig({ GATEHOUSE_DATA_DIR: dataDir }));
  assert.equal(prepared.warnings.length, 2, prepared.warnings.join('\n'));
  assert.match(prepared.warnings[0] ?? '', /loose \(mode 755 → 700\): was open to other users, now owner-only/);
  assert.match(prepared.warnings[1] ?? '', /admin-token \(mode 644 → 600\): was open to other users, now owner-only/);
  assert.equal((await stat(path.join(dataDir, 'admin-token'))).mode & 0o777, 0o600);
  assert.equal((await stat(dataDir)).mode & 0o777, 0o700);

  await writeFile(path.join(dataDir, 'master.key'), 'too short\n');
  await assert.rejects(prepareDataDir(readConfig({ GATEHOUSE_DATA_DIR: dataDir })),
    (e: unknown) => e instanceof GatehouseError && e.code === 'GW_ERR_CONFIG_INVALID' && e.field === 'GATEHOUSE_MASTER_KEY');
});
