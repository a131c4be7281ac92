/**
 * Interoperability with other clients: Debian's mosquitto_pub / mosquitto_sub (`-V mqttv311` and
 * `-V mqttv5`) and Eclipse Paho for Python (v3.1.1 and v5): publish/subscribe round trips at QoS 0/1/2
 * and retained messages.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, test, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { startTestBroker, type TestBroker } from '../harness/broker.ts';
import { Background, Inbox, client, closeAfter, runCommand, uniqueId, uniqueTopic, waitFor, withTimeout } from './helpers.ts';

const PYTHON = '/usr/bin/python3';
const PAHO_SCRIPT = path.join(path.dirname(fileURLToPath(import.meta.url)), 'clients', 'paho-roundtrip.py');
const VERSIONS = ['mqttv311', 'mqttv5'] as const;

let broker: TestBroker;
before(async () => { broker = await startTestBroker(); }, { timeout: 60_000 });
after(async () => { await broker?.close(); }, { timeout: 30_000 });

interface SubLine { topic: string; qos: number; retain: boolean; payload: string }

/** Starts mosquitto_sub for `count` messages and waits until its SUBACK arrived (seen with -d). */
async function mosquittoSub(t: TestContext, version: string, topic: string, count: number, extra: string[] = []): Promise<Background> {
  // stdbuf: mosquitto_sub's stdout is block-buffered on a pipe, and the SUBACK line is the ready signal.
  const sub = closeAfter(t, new Background('stdbuf', [
    '-oL', 'mosquitto_sub', '-h', broker.host, '-p', String(broker.port), '-V', version, '-i', uniqueId('msub'),
    '-q', '2', '-t', topic, '-C', String(count), '-W', '5', '-d', '-F', 'MSG|%t|%q|%r|%p', ...extra,
  ]));
  await waitFor(() => sub.stdout.includes('received SUBACK') || sub.exitCode !== null, 'mosquitto_sub SUBACK', 3_000);
  assert.ok(sub.exitCode === null || sub.exitCode === 0, `mosquitto_sub failed: ${sub.stderr}${sub.stdout}`);
  return sub;
}

function messagesOf(sub: Background): SubLine[] {
  return sub.lines().filter((l) => l.startsWith('MSG|')).map((l) => {
    const [, topic = '', qos = '', retain = '', ...payload] = l.split('|');
    return { topic, qos: Number(qos), retain: retain === '1', payload: payload.join('|') };
  });
}

/** Publishes `message` (null: an empty message, `-n`) with mosquitto_pub. */
async function mosquittoPub(version: string, topic: string, message: string | null, qos: number, extra: string[] = []): Promise<void> {
  const result = await runCommand('mosquitto_pub', [
    '-h', broker.host, '-p', String(broker.port), '-V', version, '-i', uniqueId('mpub'),
    '-q', String(qos), '-t', topic, ...(message === null ? ['-n'] : ['-m', message]), ...extra,
  ]);
  assert.equal(result.code, 0, `mosquitto_pub failed: ${result.stderr}`);
}

for (const version of VERSIONS) {
  test(`[MQTT-4.3.1-1] [MQTT-4.3.2-4] [MQTT-4.3.3-8] mosquitto_pub → mosquitto_sub -V ${version} at QoS 0, 1 and 2`, { timeout: 10_000 }, async (t) => {
    const base = uniqueTopic('mosq');
    const sub = await mosquittoSub(t, version, `${base}/#`, 3);
    for (const qos of [0, 1, 2]) await mosquittoPub(version, `${base}/q${qos}`, `hello ${qos}`, qos);
    await withTimeout(sub.exited, 5_000, 'mosquitto_sub to receive 3 messages');
    assert.equal(sub.exitCode, 0, sub.stderr);
    assert.deepEqual(messagesOf(sub).sort((a, b) => a.topic.localeCompare(b.topic)), [0, 1, 2].map((qos) => (
      { topic: `${base}/q${qos}`, qos, retain: false, payload: `hello ${qos}` })));
  });

  test(`[MQTT-3.3.1-5] [MQTT-3.3.1-6] mosquitto_pub -r → mosquitto_sub -V ${version} gets the retained message; -r -n clears it`, { timeout: 10_000 }, async (t) => {
    const topic = uniqueTopic('mret');
    await mosquittoPub(version, topic, 'kept', 1, ['-r']);
    const sub = await mosquittoSub(t, version, topic, 1);
    await withTimeout(sub.exited, 5_000, 'the retained message');
    assert.deepEqual(messagesOf(sub), [{ topic, qos: 1, retain: true, payload: 'kept' }]);
    await mosquittoPub(version, topic, null, 1, ['-r']);
    const after = await runCommand('mosquitto_sub', ['-h', broker.host, '-p', String(broker.port), '-V', version, '-t', topic, '-C', '1', '-W', '1']);
    assert.equal(after.stdout, '', 'nothing retained after clearing');
  });

  test(`[MQTT-3.8.4-8] MQTT.js → mosquitto_sub -V ${version}, and mosquitto_pub -V ${version} → MQTT.js`, { timeout: 10_000 }, async (t) => {
    const base = uniqueTopic('cross');
    const sub = await mosquittoSub(t, version, `${base}/to-mosquitto`, 2);
    const js = await client(t, broker);
    const inbox = new Inbox(js);
    await js.subscribeAsync(`${base}/to-js`, { qos: 2 });
    await js.publishAsync(`${base}/to-mosquitto`, 'from js 1', { qos: 1 });
    await js.publishAsync(`${base}/to-mosquitto`, 'from js 2', { qos: 2 });
    await mosquittoPub(version, `${base}/to-js`, 'from mosquitto_pub', 2);
    await withTimeout(sub.exited, 5_000, 'mosquitto_sub to receive 2 messages');
    assert.deepEqual(messagesOf(sub).map((m) => [m.payload, m.qos]), [['from js 1', 1], ['from js 2', 2]]);
    const [got] = await inbox.waitForCount(1);
    assert.equal(got?.payload.toString(), 'from mosquitto_pub');
    assert.equal(got?.packet.qos, 2);
  });
}

test('[MQTT-3.3.2-17] [MQTT-3.3.2-20] mosquitto_pub -V mqttv5 properties reach an MQTT.js subscriber unchanged', { timeout: 10_000 }, async (t) => {
  const topic = uniqueTopic('mprops');
  const js = await client(t, broker);
  const inbox = new Inbox(js);
  await js.subscribeAsync(topic, { qos: 1 });
  await mosquittoPub('mqttv5', topic, '{"t":21.5}', 1, [
    '-D', 'publish', 'content-type', 'application/json',
    '-D', 'publish', 'user-property', 'site', 'north',
    '-D', 'publish', 'response-topic', `${topic}/reply`,
  ]);
  const [got] = await inbox.waitForCount(1);
  const p = got?.packet.properties ?? {};
  assert.equal(p.contentType, 'application/json');
  assert.equal(p.responseTopic, `${topic}/reply`);
  assert.deepEqual({ ...p.userProperties }, { site: 'north' });
});

interface PahoEntry { topic: string; qos: number; retain: boolean; payload: string; userProperties?: [string, string][] }

for (const version of ['311', '5'] as const) {
  test(`[MQTT-4.3] [MQTT-3.3.1-5] Paho Python v${version === '5' ? '5' : '3.1.1'}: QoS 0/1/2 round trip and a retained message`, { timeout: 15_000 }, async () => {
    const prefix = uniqueTopic('paho');
    const result = await runCommand(PYTHON, [PAHO_SCRIPT, broker.host, String(broker.port), version, prefix], { timeoutMs: 12_000 });
    assert.equal(result.code, 0, `paho script failed: ${result.stdout}${result.stderr}`);
    const out = JSON.parse(result.stdout) as { live: PahoEntry[]; retained: PahoEntry[] };
    const userProperties = version === '5' ? { userProperties: [['origin', 'paho'], ['version', '5']] } : {};
    assert.deepEqual(out.live, [
      { topic: `${prefix}/kept`, qos: 1, retain: false, payload: 'paho retained', ...userProperties },
      { topic: `${prefix}/q0`, qos: 0, retain: false, payload: 'paho qos 0' },
      { topic: `${prefix}/q1`, qos: 1, retain: false, payload: 'paho qos 1' },
      { topic: `${prefix}/q2`, qos: 2, retain: false, payload: 'paho qos 2' },
    ]);
    assert.deepEqual(out.retained, [{ topic: `${prefix}/kept`, qos: 1, retain: true, payload: 'paho retained', ...userProperties }]);
  });
}
