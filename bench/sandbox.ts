/**
 * `npm run bench:sandbox`: what one call into the operator-script sandbox costs, apart from MQTT.
 *
 *   cold   compile a verification function and make its first call (a gateway's first CONNECT
 *          after the function was saved or the process started)
 *   warm   one verification call at a time (HMAC-signed password, the common scheme): latency and
 *          CPU per call
 *   sat    transformPayload with 64 calls in flight: calls/s and CPU per call at saturation
 *   5k/s   transformPayload offered at 5,000 calls/s, evenly spaced: CPU per call and latency
 *
 * CPU is the whole process's (event loop plus every sandbox thread), from process.cpuUsage(), so a
 * backend that moves work to other threads is not flattered. Pinned to one CPU with taskset when
 * it is available, as `npm run bench` pins the broker. Figures from a shared machine are noisy:
 * prefer the CPU rows, and compare runs made one after another.
 *
 *   npm run bench:sandbox -- [--seconds 5] [--cold 20]
 */
import { createHmac } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import * as sandbox from '../src/sandbox/index.ts';
import type { CompiledScript, ScriptRunner } from '../src/sandbox/index.ts';

const { values } = parseArgs({ options: { seconds: { type: 'string', default: '5' }, cold: { type: 'string', default: '20' } } });
const SECONDS = Number(values.seconds);
const COLD_RUNS = Number(values.cold);

// Whichever backend this tree has (the bench also ran on the tree before the QuickJS switch).
const RunnerClass = Object.entries(sandbox).find(([name]) => name.endsWith('Runner'))?.[1] as (new () => ScriptRunner) | undefined;
if (RunnerClass === undefined) throw new Error('no ScriptRunner exported by src/sandbox');

const VERIFY = `
const SECRETS = { 'sensor-01': 'd3v1ce-s3cret' };
function handler({ userName, password, clientId }) {
  const secret = SECRETS[userName];
  if (!secret) return { result: 'false', message: 'unknown device' };
  const [timestamp, signature] = String(password).split(':');
  const expected = gatehouse.crypto.hmac('sha256', secret, 'clientId' + clientId + 'deviceName' + userName + 'timestamp' + timestamp);
  if (!gatehouse.crypto.timingSafeEqual(expected, signature || '')) return { result: 'false', message: 'bad signature' };
  return { result: 'true', deviceName: userName };
}`;

/** The script of the gatehouse-parsing bench peer. */
const TRANSFORM = `
function transformPayload(topic, bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return {
    method: 'thing.event.property.post',
    params: { seq: view.getUint32(0), temperature: view.getInt16(4) / 10, length: bytes.length },
  };
}`;

const timestamp = '1767225600000';
const EVENT = {
  userName: 'sensor-01', clientId: 'client-1', certificateCommonName: null,
  password: `${timestamp}:${createHmac('sha256', 'd3v1ce-s3cret').update(`clientIdclient-1deviceNamesensor-01timestamp${timestamp}`).digest('hex')}`,
};
const PAYLOAD = Buffer.alloc(100, 7);

function cpuUs(): number {
  const { user, system } = process.cpuUsage();
  return user + system;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? NaN;
}

const rows: [string, string][] = [];
const fmt = (n: number, digits = 1): string => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

async function mustSucceed(script: CompiledScript, args: Parameters<CompiledScript['invoke']>[0]): Promise<void> {
  const result = await script.invoke(args);
  if (!result.ok) throw new Error(`bench call failed: ${JSON.stringify(result.error)}`);
}

async function cold(runner: ScriptRunner): Promise<void> {
  const walls: number[] = [];
  const cpus: number[] = [];
  for (let i = 0; i < COLD_RUNS; i++) {
    const c0 = cpuUs();
    const t0 = performance.now();
    const script = await runner.compile(`${VERIFY}\n// ${i}`, { kind: 'module-function', entry: 'handler' });
    await mustSucceed(script, [EVENT]);
    walls.push(performance.now() - t0);
    cpus.push((cpuUs() - c0) / 1000);
    script.dispose();
  }
  walls.sort((a, b) => a - b);
  cpus.sort((a, b) => a - b);
  rows.push(['cold: compile + first call, wall ms (median)', fmt(percentile(walls, 50), 2)]);
  rows.push(['cold: compile + first call, CPU ms (median)', fmt(percentile(cpus, 50), 2)]);
}

async function warm(runner: ScriptRunner): Promise<void> {
  const script = await runner.compile(VERIFY, { kind: 'module-function', entry: 'handler' });
  for (let i = 0; i < 200; i++) await mustSucceed(script, [EVENT]);
  const latencies: number[] = [];
  const c0 = cpuUs();
  const end = performance.now() + SECONDS * 1000;
  while (performance.now() < end) {
    const t0 = performance.now();
    await mustSucceed(script, [EVENT]);
    latencies.push((performance.now() - t0) * 1000);
  }
  const cpu = cpuUs() - c0;
  latencies.sort((a, b) => a - b);
  rows.push(['warm verification call, one at a time: p50 µs', fmt(percentile(latencies, 50))]);
  rows.push(['warm verification call, one at a time: p99 µs', fmt(percentile(latencies, 99))]);
  rows.push(['warm verification call: CPU µs/call', fmt(cpu / latencies.length, 2)]);
  script.dispose();
}

async function saturated(runner: ScriptRunner): Promise<void> {
  const script = await runner.compile(TRANSFORM, { kind: 'module-function', entry: 'transformPayload', maxQueued: 10_000 });
  for (let i = 0; i < 2000; i++) await mustSucceed(script, ['dev/1/up', PAYLOAD]);
  let calls = 0;
  const c0 = cpuUs();
  const t0 = performance.now();
  const end = t0 + SECONDS * 1000;
  await Promise.all(Array.from({ length: 64 }, async () => {
    while (performance.now() < end) {
      await mustSucceed(script, ['dev/1/up', PAYLOAD]);
      calls++;
    }
  }));
  const seconds = (performance.now() - t0) / 1000;
  rows.push(['transformPayload at saturation (64 in flight): calls/s', fmt(calls / seconds, 0)]);
  rows.push(['transformPayload at saturation: CPU µs/call', fmt((cpuUs() - c0) / calls, 2)]);
  script.dispose();
}

async function paced(runner: ScriptRunner, rate: number): Promise<void> {
  const script = await runner.compile(TRANSFORM, { kind: 'module-function', entry: 'transformPayload', maxQueued: 10_000 });
  for (let i = 0; i < 2000; i++) await mustSucceed(script, ['dev/1/up', PAYLOAD]);
  const latencies: number[] = [];
  const pending: Promise<void>[] = [];
  const interval = 1000 / rate;
  const c0 = cpuUs();
  const t0 = performance.now();
  const total = Math.round(rate * SECONDS);
  // Sends are due every `interval` ms; a timer cannot fire that often, so each wake-up sends every
  // call that has come due (as MQTT messages arriving in one socket read would).
  for (let sent = 0; sent < total;) {
    const due = Math.min(total, Math.floor((performance.now() - t0) / interval) + 1);
    for (; sent < due; sent++) {
      const at = performance.now();
      pending.push(script.invoke(['dev/1/up', PAYLOAD]).then((result) => {
        if (!result.ok) throw new Error(`bench call failed: ${JSON.stringify(result.error)}`);
        latencies.push((performance.now() - at) * 1000);
      }));
    }
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  await Promise.all(pending);
  const cpu = cpuUs() - c0;
  latencies.sort((a, b) => a - b);
  rows.push([`transformPayload at ${rate.toLocaleString('en-US')} calls/s: CPU µs/call`, fmt(cpu / total, 2)]);
  rows.push([`transformPayload at ${rate.toLocaleString('en-US')} calls/s: CPU % of one core`, fmt((cpu / 1e6 / ((performance.now() - t0) / 1000)) * 100)]);
  rows.push([`transformPayload at ${rate.toLocaleString('en-US')} calls/s: p50 / p99 µs`, `${fmt(percentile(latencies, 50), 0)} / ${fmt(percentile(latencies, 99), 0)}`]);
  script.dispose();
}

const runner = new RunnerClass();
await cold(runner);
await warm(runner);
await saturated(runner);
await paced(runner, 5000);
runner.dispose();

const width = Math.max(...rows.map(([name]) => name.length));
process.stdout.write(`sandbox: ${RunnerClass.name}, Node ${process.version}, ${SECONDS} s per measurement\n`);
for (const [name, value] of rows) process.stdout.write(`${name.padEnd(width)}  ${value}\n`);
