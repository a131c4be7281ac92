/**
 * Issue 13: the brute-force throttle acts before work and cannot be bypassed by parallelism. Forty
 * CONNECTs guessing one device's password arrive at once over TLS: one runs at a time, a few wait, the
 * rest are refused at once (0x9F) without a password hash; the real device, and another device from
 * the attacker's address, still get in.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import tls from 'node:tls';
import mqttPacket from 'mqtt-packet';
import { getPki, type SharedPki } from '../harness/pki.ts';
import { freePort, removeDataDir, startTestGatehouse, type TestGatehouse } from '../harness/gatehouse.ts';
import { connectOutcome, metricValue, scrapeMetrics } from '../harness/third-party.ts';
import { connackReasonCode } from '../harness/raw-mqtt.ts';

interface GatewayJson { id: string; name: string; port: number; productKey: string }

let pki: SharedPki;
let gh: TestGatehouse;
let gateway: GatewayJson;
const sockets: tls.TLSSocket[] = [];

before(async () => {
  pki = await getPki();
  gh = await startTestGatehouse();
  const created = await gh.api<GatewayJson>('POST', '/gateways', {
    name: 'guarded_fleet', port: await freePort(),
    certificates: { serverCertificateChain: pki.server.chainPem, serverPrivateKey: pki.server.keyPem },
  });
  assert.equal(created.status, 201, JSON.stringify(created.json));
  gateway = created.json;
  const csv = 'sn,username,password\nA,dev-0001,right-one\nB,dev-0002,right-two\n';
  assert.equal((await gh.api<{ created: number }>('POST', `/products/${gateway.productKey}/devices/import`, csv, 'text/csv')).json.created, 2);
}, { timeout: 60_000 });

after(async () => {
  for (const s of sockets) s.destroy();
  await gh.stop();
  await removeDataDir(gh.dataDir);
}, { timeout: 30_000 });

/** A TLS connection, handshake done, nothing sent yet. */
function openTls(): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port: gateway.port, ca: pki.root.certPem, servername: 'localhost' }, () => resolve(socket));
    sockets.push(socket);
    socket.once('error', reject);
  });
}


test('parallel password guesses for one device are serialized and the surplus refused without work (0x9F); the device still gets in', { timeout: 90_000 }, async () => {
  const ATTEMPTS = 40;
  const attackers = await Promise.all(Array.from({ length: ATTEMPTS }, () => openTls()));
  const answers = attackers.map(connackReasonCode);
  // Every guess leaves in the same turn, so they all reach the gateway together.
  attackers.forEach((socket, i) => socket.write(mqttPacket.generate({
    cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clean: true, keepalive: 30, clientId: `guess-${i}`,
    username: 'dev-0001', password: Buffer.from(`guess-${i}`),
  })));

  // The real device, from its own address, is not held up by the stranger's failures.
  const real = await connectOutcome(pki, gateway.port, { username: 'dev-0001', password: 'right-one', clientId: 'real-0001', localAddress: '127.0.0.2' } as never);
  assert.equal(real.code, 0);
  real.client?.end(true);
  // Another device behind the attacker's address is not locked out either.
  const neighbour = await connectOutcome(pki, gateway.port, { username: 'dev-0002', password: 'right-two', clientId: 'real-0002' });
  assert.equal(neighbour.code, 0);
  neighbour.client?.end(true);

  const codes = await Promise.all(answers);
  const checked = codes.filter((c) => c === 0x86).length;
  const refused = codes.filter((c) => c === 0x9f).length;
  assert.equal(checked + refused, ATTEMPTS, `unexpected codes ${JSON.stringify(codes)}`);
  // One running and four waiting per (username, address): at most a handful of guesses ever cost a hash.
  assert.ok(checked <= 8, `${checked} guesses were checked: ${JSON.stringify(codes)}`);
  const metrics = await scrapeMetrics(gh);
  assert.equal(metricValue(metrics, 'gatehouse_gateway_auth_total', { gateway: gateway.name, result: 'denied' }), ATTEMPTS);
});
