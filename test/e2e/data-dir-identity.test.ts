/**
 * Issue 17: a data directory knows itself. dist/main.mjs (as `npm start`) writes identity.json (0600)
 * and the same installation id into its database at the first start; afterwards a zero-byte, missing,
 * foreign or damaged gatehouse.db beside that state makes it refuse to start with one GW_ERR_* line
 * naming the file and what to do — never a stack, never a fresh install (or a demo) over it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, copyFile, mkdtemp, open, readdir, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { freePort, removeDataDir } from '../harness/gatehouse.ts';
import { runGatehouseExpectingExit, startGatehouseProcess } from '../harness/gatehouse-process.ts';

async function freshInstall(t: { after(fn: () => Promise<void>): void }): Promise<{ dir: string; id: string }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'gh-ident-'));
  t.after(() => removeDataDir(dir));
  const gh = await startGatehouseProcess(dir, { GATEHOUSE_DEMO: 'on', GATEHOUSE_DEMO_PORT: String(await freePort()) });
  await gh.stop();
  const identity = JSON.parse(await readFile(path.join(dir, 'identity.json'), 'utf8')) as { installationId: string; database: string };
  return { dir, id: identity.installationId };
}

function refusal(r: { code: number | null; stdout: string; stderr: string }, code: string, file: string): void {
  assert.equal(r.code, 1, `${r.stdout}${r.stderr}`);
  assert.match(r.stderr, new RegExp(`^gatehouse: ${code}: `, 'm'));
  assert.ok(r.stderr.includes(file), r.stderr);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'a stack was printed');
  assert.doesNotMatch(r.stdout, /Gatehouse is running|demo gateway/);
}

test('the first start writes identity.json (0600) and the same installation id into gatehouse.db; a restart accepts it', { timeout: 120_000 }, async (t) => {
  const { dir, id } = await freshInstall(t);
  assert.match(id, /^[0-9a-f-]{36}$/);
  assert.equal((await stat(path.join(dir, 'identity.json'))).mode & 0o777, 0o600);
  const db = new BetterSqlite3(path.join(dir, 'gatehouse.db'), { readonly: true });
  assert.equal((db.prepare("select value from settings where key = 'installation_id'").get() as { value: string }).value, id);
  db.close();
  const again = await startGatehouseProcess(dir);
  await again.stop();
});

test('a zero-byte gatehouse.db beside existing state is refused with GW_ERR_DATA_DIR_DATABASE_MISSING, and no demo is seeded', { timeout: 120_000 }, async (t) => {
  const { dir } = await freshInstall(t);
  const file = path.join(dir, 'gatehouse.db');
  await rm(`${file}-wal`, { force: true });
  await rm(`${file}-shm`, { force: true });
  await truncate(file, 0);
  refusal(await runGatehouseExpectingExit(dir, { GATEHOUSE_DEMO: 'on', GATEHOUSE_DEMO_PORT: String(await freePort()) }), 'GW_ERR_DATA_DIR_DATABASE_MISSING', file);
  // Still refused the next time: the refusal created nothing that would pass for an installation.
  refusal(await runGatehouseExpectingExit(dir), 'GW_ERR_DATA_DIR_DATABASE_MISSING', file);
});

test('a missing gatehouse.db beside existing state is refused with GW_ERR_DATA_DIR_DATABASE_MISSING', { timeout: 90_000 }, async (t) => {
  const { dir } = await freshInstall(t);
  const file = path.join(dir, 'gatehouse.db');
  for (const f of [file, `${file}-wal`, `${file}-shm`]) await rm(f, { force: true });
  const r = await runGatehouseExpectingExit(dir);
  refusal(r, 'GW_ERR_DATA_DIR_DATABASE_MISSING', file);
  assert.match(r.stderr, /gatehouse restore/);
});

test('another installation\'s gatehouse.db is refused with GW_ERR_DATA_DIR_DATABASE_FOREIGN naming both installations', { timeout: 120_000 }, async (t) => {
  const mine = await freshInstall(t);
  const other = await freshInstall(t);
  const file = path.join(mine.dir, 'gatehouse.db');
  for (const f of [`${file}-wal`, `${file}-shm`]) await rm(f, { force: true });
  for (const suffix of ['', '-wal']) await copyFile(path.join(other.dir, `gatehouse.db${suffix}`), `${file}${suffix}`).catch(() => undefined);
  const r = await runGatehouseExpectingExit(mine.dir);
  refusal(r, 'GW_ERR_DATA_DIR_DATABASE_FOREIGN', file);
  assert.ok(r.stderr.includes(mine.id) && r.stderr.includes(other.id), r.stderr);
});

test('another application\'s SQLite database is refused with GW_ERR_DATA_DIR_DATABASE_FOREIGN and left unchanged', { timeout: 60_000 }, async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'gh-ident-'));
  t.after(() => removeDataDir(dir));
  const file = path.join(dir, 'gatehouse.db');
  const foreign = new BetterSqlite3(file);
  foreign.exec("create table customers (id integer primary key, name text); insert into customers (name) values ('acme')");
  foreign.close();
  const before = await readFile(file);
  refusal(await runGatehouseExpectingExit(dir), 'GW_ERR_DATA_DIR_DATABASE_FOREIGN', file);
  const db = new BetterSqlite3(file, { readonly: true });
  const tables = (db.prepare("select name from sqlite_master where type = 'table'").all() as { name: string }[]).map((r) => r.name);
  db.close();
  assert.deepEqual(tables, ['customers']);
  assert.equal((await readFile(file)).length, before.length);
});

test('a damaged gatehouse.db gives GW_ERR_DATA_DIR_DATABASE_DAMAGED naming the file, not a stack', { timeout: 90_000 }, async (t) => {
  const { dir } = await freshInstall(t);
  const file = path.join(dir, 'gatehouse.db');
  for (const f of [`${file}-wal`, `${file}-shm`]) await rm(f, { force: true });
  // Overwrite the 100-byte header and the first page: the magic string SQLite checks is gone.
  const fh = await open(file, 'r+');
  await fh.write(Buffer.alloc(4096, 0x5a), 0, 4096, 0);
  await fh.close();
  refusal(await runGatehouseExpectingExit(dir), 'GW_ERR_DATA_DIR_DATABASE_DAMAGED', file);
});

test('a damaged mqtt-state.db is named the same way', { timeout: 90_000 }, async (t) => {
  const { dir } = await freshInstall(t);
  const file = path.join(dir, 'mqtt-state.db');
  for (const f of [`${file}-wal`, `${file}-shm`]) await rm(f, { force: true });
  await writeFile(file, Buffer.alloc(8192, 0x42));
  refusal(await runGatehouseExpectingExit(dir), 'GW_ERR_DATA_DIR_DATABASE_DAMAGED', file);
});

test('a directory that lost identity.json is adopted from its database\'s id; an unreadable identity.json is refused', { timeout: 90_000 }, async (t) => {
  const { dir, id } = await freshInstall(t);
  await rm(path.join(dir, 'identity.json'));
  const gh = await startGatehouseProcess(dir);
  await gh.stop();
  assert.equal((JSON.parse(await readFile(path.join(dir, 'identity.json'), 'utf8')) as { installationId: string }).installationId, id);
  await writeFile(path.join(dir, 'identity.json'), '{not json');
  refusal(await runGatehouseExpectingExit(dir), 'GW_ERR_DATA_DIR_IDENTITY_INVALID', path.join(dir, 'identity.json'));
});

test('the data directory is 0700 and every file in it 0600 whatever the umask; a looser existing one is tightened and reported', { timeout: 60_000 }, async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'gh-perm-'));
  t.after(() => removeDataDir(dir));
  await chmod(dir, 0o755); // as a directory made by hand with the usual umask would be
  const modes = async (): Promise<Record<string, string>> => {
    const out: Record<string, string> = { '.': ((await stat(dir)).mode & 0o777).toString(8) };
    for (const f of await readdir(dir)) out[f] = ((await stat(path.join(dir, f))).mode & 0o777).toString(8);
    return out;
  };
  const gh = await startGatehouseProcess(dir, { GATEHOUSE_DEMO: 'on', GATEHOUSE_DEMO_PORT: String(await freePort()) });
  const running = await modes(); // with the WAL files of a running instance
  await gh.stop();
  assert.ok(Object.keys(running).includes('gatehouse.db-wal'), JSON.stringify(running));
  for (const [f, mode] of Object.entries(running)) assert.equal(mode, f === '.' ? '700' : '600', `${f}: ${JSON.stringify(running)}`);

  await chmod(dir, 0o755);
  await chmod(path.join(dir, 'gatehouse.db'), 0o644);
  const again = await startGatehouseProcess(dir);
  const log = again.stdout() + again.stderr();
  await again.stop();
  assert.match(log, /gatehouse\.db \(mode 644 → 600\): was open to other users, now owner-only/);
  assert.match(log, /\(mode 755 → 700\): was open to other users, now owner-only/);
  for (const [f, mode] of Object.entries(await modes())) assert.equal(mode, f === '.' ? '700' : '600', f);
});
