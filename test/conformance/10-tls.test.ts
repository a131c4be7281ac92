/**
 * The TLS listener (MQTT 5 §4.2, §5.4): MQTT.js and mosquitto_pub / mosquitto_sub over TLS, routing
 * between the TLS and the plain listener, and refused handshakes that leave the listener serving.
 * Skipped when the broker under test has no TLS port.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { after, before, test, type TestContext } from 'node:test';
import { startTestBroker, type TestBroker } from '../harness/broker.ts';
import { Background, Inbox, RawClient, client, closeAfter, connectClient, runCommand, uniqueId, uniqueTopic, waitFor, withTimeout } from './helpers.ts';

const SYSTEM_ROOTS = '/etc/ssl/certs/ca-certificates.crt';
let broker: TestBroker;
let caFile = '';
let tmpDir = '';

before(async () => {
  broker = await startTestBroker({ tls: true });
  tmpDir = await mkdtemp(path.join(os.tmpdir(), 'gatehouse-tls-'));
  caFile = path.join(tmpDir, 'ca.pem');
  if (broker.caPem !== undefined) await writeFile(caFile, broker.caPem);
}, { timeout: 60_000 });
after(async () => {
  await broker?.close();
  await rm(tmpDir, { recursive: true, force: true });
}, { timeout: 30_000 });

/** True (and the test marked skipped) when the broker has no TLS listener. */
function noTls(t: TestContext): boolean {
  if (broker.tlsPort !== undefined && broker.caPem !== undefined) return false;
  t.skip('the broker under test has no TLS listener');
  return true;
}

function tlsArgs(version: string): string[] {
  return ['-h', broker.host, '-p', String(broker.tlsPort), '--cafile', caFile, '-V', version, '-i', uniqueId('mtls')];
}

test('[MQTT-4.2] MQTT.js over TLS: subscribe and publish at QoS 0, 1 and 2', { timeout: 30_000 }, async (t) => {
  if (noTls(t)) return;
  const topic = uniqueTopic('tls');
  const sub = await client(t, broker, { useTls: true });
  const inbox = new Inbox(sub);
  await sub.subscribeAsync(topic, { qos: 2 });
  const pub = await client(t, broker, { useTls: true, protocolVersion: 4 });
  for (const qos of [0, 1, 2] as const) await pub.publishAsync(topic, `secure ${qos}`, { qos });
  const got = await inbox.waitForCount(3);
  assert.deepEqual(got.map((m) => [m.payload.toString(), m.packet.qos]).sort(), [['secure 0', 0], ['secure 1', 1], ['secure 2', 2]]);
});

for (const version of ['mqttv311', 'mqttv5']) {
  test(`[MQTT-4.2] mosquitto_pub -V ${version} --cafile over TLS reaches an MQTT.js subscriber on the plain listener`, { timeout: 8_000 }, async (t) => {
    if (noTls(t)) return;
    const topic = uniqueTopic('mtls');
    const sub = await client(t, broker);
    const inbox = new Inbox(sub);
    await sub.subscribeAsync(topic, { qos: 1 });
    const result = await runCommand('mosquitto_pub', [...tlsArgs(version), '-q', '1', '-t', topic, '-m', 'over tls']);
    assert.equal(result.code, 0, result.stderr);
    const [got] = await inbox.waitForCount(1);
    assert.equal(got?.payload.toString(), 'over tls');
  });
}

test('[MQTT-4.2] mosquitto_sub --cafile over TLS receives from an MQTT.js publisher on the plain listener', { timeout: 8_000 }, async (t) => {
  if (noTls(t)) return;
  const topic = uniqueTopic('stls');
  // stdbuf: the SUBACK debug line is the ready signal and must not sit in a pipe buffer.
  const sub = closeAfter(t, new Background('stdbuf', ['-oL', 'mosquitto_sub', ...tlsArgs('mqttv5'), '-q', '1', '-t', topic, '-C', '1', '-W', '5', '-d', '-F', 'MSG|%p']));
  await waitFor(() => sub.stdout.includes('received SUBACK') || sub.exitCode !== null, 'mosquitto_sub SUBACK over TLS', 3_000);
  const pub = await client(t, broker);
  await pub.publishAsync(topic, 'to tls', { qos: 1 });
  await withTimeout(sub.exited, 5_000, 'mosquitto_sub to receive the message');
  assert.deepEqual(sub.lines().filter((l) => l.startsWith('MSG|')), ['MSG|to tls']);
});

test('[MQTT-4.2] a client that does not trust the server certificate fails the handshake; the listener keeps serving', { timeout: 8_000 }, async (t) => {
  if (noTls(t)) return;
  // The system roots are a real CA set that does not contain the test CA.
  const untrusting = await runCommand('mosquitto_pub', ['-h', broker.host, '-p', String(broker.tlsPort), '--cafile', SYSTEM_ROOTS, '-t', 'x', '-m', 'x']);
  assert.notEqual(untrusting.code, 0, 'mosquitto_pub without the CA must fail');
  assert.match(untrusting.stderr, /certificate verify failed|TLS|SSL/i);
  await assert.rejects(connectClient(broker, { useTls: true, ca: undefined }), 'MQTT.js without the CA must fail');
  const good = await client(t, broker, { useTls: true });
  assert.equal(good.connected, true);
});

test('[MQTT-4.2] plain MQTT bytes on the TLS port are refused without a CONNACK; the listener keeps serving', { timeout: 8_000 }, async (t) => {
  if (noTls(t)) return;
  const plain = closeAfter(t, await RawClient.open({ ...broker, port: broker.tlsPort ?? 0 }));
  plain.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clean: true, clientId: uniqueId('plain'), keepalive: 0 });
  await plain.expectClosed(3_000);
  assert.equal(plain.received.length, 0, 'no MQTT packet comes back');
  const { raw, connack } = await RawClient.connect(broker, {}, { useTls: true });
  closeAfter(t, raw);
  assert.equal(connack.reasonCode, 0);
  assert.ok(raw.socket instanceof tls.TLSSocket);
});
