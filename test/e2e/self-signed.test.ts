/** Trying a gateway without one's own PKI: a generated test certificate from the API serves a real TLS gateway. */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import mqtt from 'mqtt';
import { freePort, removeDataDir, startTestGatehouse } from '../harness/gatehouse.ts';

const run = promisify(execFile);

test('a self-signed test certificate from the API runs a gateway a client can verify', { timeout: 20_000 }, async () => {
  const gh = await startTestGatehouse();
  after(async () => {
    await gh.stop();
    await removeDataDir(gh.dataDir);
  }, { timeout: 30_000 });
  const cert = await gh.api<{ certificatePem: string; privateKeyPem: string; warning: string }>('POST', '/certificates/self-signed', { hosts: ['localhost', '127.0.0.1'] });
  assert.equal(cert.status, 201);
  assert.match(cert.json.warning, /test certificate/i);
  const bad = await gh.api<{ error: { code: string; field: string } }>('POST', '/certificates/self-signed', { hosts: ['not a host'] });
  assert.equal(bad.status, 400);
  assert.equal(bad.json.error.code, 'GW_ERR_VALIDATION');

  const port = await freePort();
  const created = await gh.api<{ productKey: string; status: string }>('POST', '/gateways', {
    name: 'trial_gateway', port, certificates: { serverCertificateChain: cert.json.certificatePem, serverPrivateKey: cert.json.privateKeyPem },
  });
  assert.equal(created.status, 201, JSON.stringify(created.json));
  assert.equal(created.json.status, 'RUNNING');
  await gh.api('POST', `/products/${created.json.productKey}/devices`, { username: 'trial-device', password: 'trial-pw' });
  const client = await mqtt.connectAsync({
    host: '127.0.0.1', port, protocol: 'mqtts', ca: cert.json.certificatePem, servername: 'localhost',
    username: 'trial-device', password: 'trial-pw', reconnectPeriod: 0,
  });
  assert.equal(client.connected, true);
  await client.endAsync();
});

test('gatehouse certs self-signed writes a certificate and a private key', { timeout: 30_000 }, async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'gh-cert-'));
  after(() => rm(dir, { recursive: true, force: true }), { timeout: 30_000 });
  const cert = path.join(dir, 'c.pem');
  const key = path.join(dir, 'k.pem');
  const { stdout } = await run(process.execPath, ['--import', 'tsx', 'src/cli/index.ts', 'certs', 'self-signed', '--host', 'gw.example.com', '--cert', cert, '--key', key]);
  assert.match(stdout, /self-signed test certificate/);
  assert.match(await readFile(cert, 'utf8'), /BEGIN CERTIFICATE/);
  assert.match(await readFile(key, 'utf8'), /BEGIN PRIVATE KEY/);
});
