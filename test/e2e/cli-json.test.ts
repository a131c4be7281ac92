/**
 * `--json` on the commands that work without the API (issue 14 item 7): the certificate helper and the data
 * directory commands print one JSON document, refusals included (the API's error shape), for scripts.
 * Run through the real bin, as an operator's shell would.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, test } from 'node:test';

const run = promisify(execFile);
let work: string;

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, ['bin/gatehouse.mjs', ...args]);
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

before(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'gh-cli-json-'));
}, { timeout: 10_000 });

after(async () => {
  await rm(work, { recursive: true, force: true });
}, { timeout: 10_000 });

test('certs self-signed --json names the files, hosts and the fingerprint of the certificate it wrote', { timeout: 120_000 }, async () => {
  const cert = path.join(work, 'c.pem');
  const key = path.join(work, 'k.pem');
  const r = await cli(['certs', 'self-signed', '--host', 'mqtt.example.com', '--cert', cert, '--key', key, '--json']);
  assert.equal(r.code, 0, r.stderr);
  const written = JSON.parse(r.stdout) as { cert: string; key: string; hosts: string[]; notAfter: string; sha256: string };
  assert.deepEqual([written.cert, written.key, written.hosts], [cert, key, ['mqtt.example.com']]);
  const x509 = new X509Certificate(await readFile(cert));
  assert.equal(written.sha256, x509.fingerprint256);
  assert.equal(new Date(written.notAfter).getTime(), new Date(x509.validTo).getTime());
});

test('doctor --json reports the findings and the count of problems; backup --json of no data directory is an error document', { timeout: 120_000 }, async () => {
  const empty = path.join(work, 'not-a-data-dir');
  const doctor = await cli(['doctor', '--data-dir', empty, '--json']);
  const report = JSON.parse(doctor.stdout) as { dataDir: string; problems: number; findings: { level: string; what: string }[] };
  assert.equal(report.dataDir, empty);
  assert.ok(report.problems >= 1, doctor.stdout);
  assert.equal(report.problems, report.findings.filter((f) => f.level === 'problem').length);
  assert.equal(doctor.code, 1);

  const backup = await cli(['backup', path.join(work, 'b.tar'), '--data-dir', empty, '--json']);
  assert.equal(backup.code, 1);
  const refusal = JSON.parse(backup.stdout) as { error: { code: string; message: string } };
  assert.match(refusal.error.code, /^GW_ERR_/);
  assert.match(backup.stderr, new RegExp(`${refusal.error.code}`));
});
