/** A gateway whose port is taken shows ERROR with the reason; deleting a gateway frees its port for another. */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { getPki } from '../harness/pki.ts';
import { freePort, removeDataDir, startTestGatehouse } from '../harness/gatehouse.ts';

interface GatewayJson { id: string; status: string; statusReason: string | null }

test('port in use → ERROR with the reason; start again once it is free; a deleted gateway frees its port', { timeout: 60_000 }, async () => {
  const pki = await getPki();
  const gh = await startTestGatehouse();
  after(async () => {
    await gh.stop();
    await removeDataDir(gh.dataDir);
  }, { timeout: 30_000 });
  const certificates = { serverCertificateChain: pki.server.chainPem, serverPrivateKey: pki.server.keyPem };

  // Something else (not a gateway) holds the port.
  const port = await freePort();
  const squatter = net.createServer();
  await new Promise<void>((resolve) => squatter.listen(port, '127.0.0.1', resolve));
  const created = await gh.api<GatewayJson>('POST', '/gateways', { name: 'blocked_gateway', port, certificates });
  assert.equal(created.status, 201, JSON.stringify(created.json));
  assert.equal(created.json.status, 'ERROR');
  assert.equal(created.json.statusReason, `port ${port} is already in use`);
  const listed = await gh.api<GatewayJson>('GET', `/gateways/${created.json.id}`);
  assert.equal(listed.json.status, 'ERROR');

  await new Promise<void>((resolve) => squatter.close(() => resolve()));
  const started = await gh.api<GatewayJson>('POST', `/gateways/${created.json.id}/start`);
  assert.equal(started.json.status, 'RUNNING', JSON.stringify(started.json));

  // Deleting it frees the port: another gateway can take it at once.
  assert.equal((await gh.api('DELETE', `/gateways/${created.json.id}`)).status, 204);
  const next = await gh.api<GatewayJson>('POST', '/gateways', { name: 'next_gateway', port, certificates });
  assert.equal(next.status, 201, JSON.stringify(next.json));
  assert.equal(next.json.status, 'RUNNING');
});
