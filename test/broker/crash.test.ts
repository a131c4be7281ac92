/**
 * A crash (SIGKILL, no shutdown code runs) right after the last PUBACK loses no acknowledged QoS 1
 * message: the journal commits before the acknowledgements of the same turn are written.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import mqtt from 'mqtt';

async function startChild(file: string, port?: number): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/harness/durable-engine.ts', file, ...(port === undefined ? [] : [String(port)])], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout }).once('line', resolve);
    child.once('exit', (code) => reject(new Error(`engine exited with ${code}`)));
  });
  return { child, port: (JSON.parse(line) as { port: number }).port };
}

test('[MQTT-4.3.2-?] SIGKILL after the PUBACKs loses no acknowledged QoS 1 message of a persistent session', { timeout: 60_000 }, async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'gh-crash-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'state.db');
  let engine = await startChild(file);
  t.after(() => engine.child.kill('SIGKILL'));
  const url = () => `mqtt://127.0.0.1:${engine.port}`;

  const sub = await mqtt.connectAsync(url(), { clientId: 'durable-sub', clean: false, protocolVersion: 5, properties: { sessionExpiryInterval: 600 }, reconnectPeriod: 0 });
  await sub.subscribeAsync('crash/#', { qos: 1 });
  await sub.endAsync();

  const pub = await mqtt.connectAsync(url(), { reconnectPeriod: 0 });
  const N = 300;
  await Promise.all(Array.from({ length: N }, (_, i) => pub.publishAsync(`crash/${i % 7}`, String(i), { qos: 1 })));
  // Every PUBLISH was acknowledged. Kill the engine at once: no close, no flush.
  engine.child.kill('SIGKILL');
  await new Promise((r) => engine.child.once('exit', r));
  pub.end(true);

  engine = await startChild(file, engine.port);
  const got = new Set<string>();
  const back = mqtt.connect(url(), { clientId: 'durable-sub', clean: false, protocolVersion: 5, properties: { sessionExpiryInterval: 600 }, reconnectPeriod: 0 });
  t.after(() => back.end(true));
  back.on('message', (_topic, payload) => got.add(payload.toString()));
  await new Promise((resolve, reject) => back.once('connect', resolve).once('error', reject));
  const deadline = Date.now() + 15_000;
  while (got.size < N && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
  assert.equal(got.size, N, `${N - got.size} acknowledged messages were lost`);
});
