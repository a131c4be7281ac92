/**
 * Coverage-guided fuzzing of the engine (test/fuzz/coverage/): a bounded run as part of `npm test`, the
 * replay of every input a run ever found through real sockets, and a check that the guidance works.
 *
 * The bounded run is bounded by work, `GATEHOUSE_FUZZ_EXECUTIONS` inputs (default 40,000, about a
 * minute here) from the fixed `GATEHOUSE_FUZZ_SEED`, so CI runs the inputs a developer ran before
 * pushing rather than however many a slower or faster machine fits in a minute (a time-bounded run
 * found in CI what it had not found on the developer's machine). `GATEHOUSE_FUZZ_SECONDS` (default 240)
 * only caps a very slow machine. `npm run fuzz -- --minutes N` explores: longer, a new seed each time.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { startEngine } from '../harness/engine.ts';
import { RawClient, closeAfter, waitFor, withTimeout } from '../conformance/helpers.ts';
import { BlockCoverage } from './coverage/block-coverage.ts';
import { fuzz } from './coverage/fuzzer.ts';
import { planted } from './coverage/fixtures/planted.ts';
import { chunksOf } from './coverage/mqtt-target.ts';
import { parseDictionary } from './coverage/mutator.ts';
import { CORPUS_DIR, FUZZ_DIR, REGRESSIONS_DIR, runMqttFuzz } from './coverage/run.ts';

const EXECUTIONS = Number(process.env.GATEHOUSE_FUZZ_EXECUTIONS ?? 40_000);
const SECONDS = Number(process.env.GATEHOUSE_FUZZ_SECONDS ?? 240);
const SEED = Number(process.env.GATEHOUSE_FUZZ_SEED ?? 0x9a7e) >>> 0;

test('coverage guidance finds a bug that needs four right bytes in a row', { timeout: 300_000 }, async (t) => {
  const coverage = new BlockCoverage(/\/fixtures\/planted\.ts/);
  try {
    const result = await fuzz({ run: (input) => Promise.resolve(planted(input)) }, {
      // Bounded by executions, not time, so the same seed finds it in the same number of steps on any
      // machine; blind random inputs would need ~10^8 (see the fixture).
      seconds: 240, maxExecutions: 400_000, seed: 7, maxLength: 8, dictionary: [], seeds: [Buffer.from([0x00])], coverage,
    });
    assert.ok(result.finding, `not found in ${result.executions} executions (${result.features} features)`);
    assert.match(result.finding.error.message, /planted bug reached/);
    assert.deepEqual([...result.finding.input.subarray(0, 3)], [0x10, 0x4d, 0x51]);
    t.diagnostic(`found after ${result.executions} executions`);
  } finally {
    coverage.close();
  }
});

test('the MQTT dictionary parses, escapes included', { timeout: 5_000 }, () => {
  const tokens = parseDictionary(readFileSync(path.join(FUZZ_DIR, 'mqtt.dict'), 'utf8'));
  assert.ok(tokens.length > 50);
  assert.deepEqual(parseDictionary('a="\\x10\\x00"\n# c\n"MQ\\"\\\\"'), [Buffer.from([0x10, 0x00]), Buffer.from('MQ"\\')]);
  assert.throws(() => parseDictionary('no quotes'), /line 1/);
});

test('the seed corpus has every packet type a client sends, in both versions', { timeout: 5_000 }, () => {
  const names = readdirSync(CORPUS_DIR);
  for (const v of ['v311', 'v5']) {
    for (const kind of ['connect', 'publish-qos0', 'publish-qos1-props', 'publish-qos2-flow', 'subscribe-unsubscribe', 'acks-unknown-ids', 'ping-disconnect']) {
      assert.ok(names.includes(`${v}-${kind}.bin`), `${v}-${kind}.bin in ${CORPUS_DIR}`);
    }
  }
  assert.ok(names.includes('v5-auth.bin'));
});

test(`a coverage-guided run of ${EXECUTIONS} inputs to the engine breaks no invariant`, { timeout: (SECONDS + 120) * 1_000 }, async (t) => {
  const findingsDir = path.join(os.tmpdir(), `gatehouse-fuzz-${process.pid}`);
  t.after(() => rmSync(findingsDir, { recursive: true, force: true }));
  const seeds = readdirSync(CORPUS_DIR).length;
  const report = await runMqttFuzz({ seconds: SECONDS, maxExecutions: EXECUTIONS, seed: SEED, findingsDir, log: (line) => t.diagnostic(line) });
  t.diagnostic(`seed 0x${SEED.toString(16)}: ${report.executions} executions in ${report.seconds.toFixed(0)} s, ${report.features} features, corpus ${report.corpusSize}`);
  assert.equal(report.finding, undefined,
    `${report.finding?.error.message}\ninput (hex): ${report.finding?.input.toString('hex')}\nsaved to ${report.findingFile} — add it to test/fuzz/regressions/`);
  assert.ok(report.corpusSize > seeds, `coverage guidance kept no input beyond the ${seeds} seeds`);
});

test('every regression input, sent over a real socket, is answered or closed and leaves the engine serving', { timeout: 120_000 }, async (t) => {
  const engine = await startEngine({ maxPacketSize: 64 * 1024 });
  t.after(() => engine.close());
  const files = readdirSync(REGRESSIONS_DIR).filter((n) => n.startsWith('finding-'));
  for (const name of files) {
    const input = readFileSync(path.join(REGRESSIONS_DIR, name));
    const socket = net.connect({ host: engine.host, port: engine.port });
    socket.on('error', () => undefined);
    socket.resume(); // read what the engine answers: a paused socket never sees the engine's end
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    await withTimeout(new Promise<void>((resolve) => socket.once('connect', () => resolve())), 2_000, `connect for ${name}`);
    for (const chunk of chunksOf(input)) socket.write(chunk);
    socket.end();
    await withTimeout(closed, 5_000, `the engine closing ${name}'s connection`);
    assert.equal(engine.engine?.stats.handlerCrashes, 0, `${name} crashed a handler`);
  }
  await waitFor(() => engine.engine?.connectionCount === 0, 'every regression connection closed');
  const { raw, connack } = await RawClient.connect(engine, {});
  closeAfter(t, raw);
  assert.equal(connack.reasonCode, 0, `a client still connects after ${files.length} regression inputs`);
});
