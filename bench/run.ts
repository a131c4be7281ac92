/**
 * `npm run bench`: runs the scenarios side by side against Gatehouse and its peers in one run. Every
 * (repetition, scenario, broker) gets a fresh broker process on CPU 0 and a fresh generator on CPU 1;
 * repetitions are interleaved so every broker sees the same background noise.
 *
 *   npm run bench -- [--scenarios a,b] [--brokers a,b] [--reps 3] [--duration 6] [--warmup 2] [--drain 3]
 *                    [--ref gatehouse] [--json path]
 *   npm run bench -- --cluster …   the cluster benchmark (bench/cluster.ts)
 *   npm run bench -- --abuse …     the abuse benchmark (bench/abuse.ts; also `npm run bench:abuse`)
 */
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { BROKER_NAMES, BROKERS, benchEntry, buildBenchEntries, ensureMosquitto, freePort, isBrokerName, startBroker, waitForListeners, type BrokerName } from './brokers.ts';
import { generateCerts, type BenchCerts } from './certs.ts';
import { killAllNow, spawnPinned, stopAll } from './children.ts';
import { renderSummary, summarize, type RunRecord } from './report.ts';
import {
  DEFAULT_TIMING,
  hardTimeoutSeconds,
  isScenarioName,
  SCENARIO_NAMES,
  SCENARIOS,
  type GeneratorResult,
  type ScenarioName,
  type Timing,
} from './scenarios.ts';

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const TW_REUSE = '/proc/sys/net/ipv4/tcp_tw_reuse';
/** Lets a freshly started broker finish its start-up work before the RSS baseline and the first connect. */
const SETTLE_MS = 500;
const LISTEN_TIMEOUT_MS = 30_000;

const USAGE = `usage: npm run bench -- [options]
  --scenarios LIST  comma-separated, default all: ${SCENARIO_NAMES.join(',')}
  --brokers LIST    comma-separated, default all: ${BROKER_NAMES.join(',')}
  --reps N          repetitions, each runs every broker once (default 3)
  --duration S      measured seconds of throughput/latency scenarios (default ${DEFAULT_TIMING.duration})
  --warmup S        unmeasured seconds before that (default ${DEFAULT_TIMING.warmup})
  --drain S         seconds to wait for in-flight messages after publishing stops (default ${DEFAULT_TIMING.drain})
  --ref NAME        broker the ratios are computed for (default gatehouse, else the first broker)
  --json PATH       where to write the results (default bench/results/<timestamp>.json)
  --samples DIR     latency scenarios also write every sample to DIR/<rep>-<scenario>-<broker>.txt
  --free-threads    the broker's main thread stays on CPU 0, its other threads (V8's GC helpers, worker threads
                    such as parsing's) may also run on CPU 1, beside the generator: work moved off the event loop
                    gets a core of its own, as on any machine with more cores than the broker's event loops
  --cluster ...     the cluster benchmark instead (bench/cluster.ts: its own options)
  --abuse ...       the abuse benchmark instead (bench/abuse.ts: --seconds, --phases, --brokers, --gc)`;

interface Options {
  scenarios: ScenarioName[];
  brokers: BrokerName[];
  reps: number;
  timing: Timing;
  ref: BrokerName | undefined;
  jsonPath: string;
  /** --samples: where latency runs write their samples. */
  samplesDir: string | undefined;
  /** --free-threads: the broker's threads other than its main one may run on both CPUs. */
  freeThreads: boolean;
}

/** A usage error: the message and the usage text. */
function fail(message: string): never {
  process.stderr.write(`bench: ${message}\n${USAGE}\n`);
  process.exit(2);
}

/** A refusal to run on this machine right now. */
function die(message: string): never {
  process.stderr.write(`bench: ${message}\n`);
  process.exit(1);
}

function list(value: string | undefined, all: string[]): string[] {
  return value === undefined ? all : value.split(',').map((s) => s.trim()).filter((s) => s !== '');
}

function seconds(value: string, flag: string, min: number): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < min || n > 600) fail(`${flag} must be a number of seconds between ${min} and 600`);
  return n;
}

function parseOptions(): Options {
  const { values } = parseArgs({
    options: {
      scenarios: { type: 'string' },
      brokers: { type: 'string' },
      reps: { type: 'string', default: '3' },
      duration: { type: 'string', default: String(DEFAULT_TIMING.duration) },
      warmup: { type: 'string', default: String(DEFAULT_TIMING.warmup) },
      drain: { type: 'string', default: String(DEFAULT_TIMING.drain) },
      ref: { type: 'string' },
      json: { type: 'string' },
      samples: { type: 'string' },
      'free-threads': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help === true) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  const scenarios = list(values.scenarios, SCENARIO_NAMES);
  const brokers = list(values.brokers, BROKER_NAMES);
  for (const s of scenarios) if (!isScenarioName(s)) fail(`unknown scenario '${s}'`);
  for (const b of brokers) if (!isBrokerName(b)) fail(`unknown broker '${b}'`);
  const reps = Number(values.reps);
  if (!Number.isInteger(reps) || reps < 1 || reps > 20) fail('--reps must be an integer from 1 to 20');
  if (values.ref !== undefined && !(isBrokerName(values.ref) && brokers.includes(values.ref))) fail(`--ref ${values.ref} is not among --brokers`);
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  return {
    scenarios: [...new Set(scenarios)] as ScenarioName[],
    brokers: [...new Set(brokers)] as BrokerName[],
    reps,
    timing: {
      duration: seconds(values.duration, '--duration', 1),
      warmup: seconds(values.warmup, '--warmup', 0),
      drain: seconds(values.drain, '--drain', 0),
    },
    ref: values.ref,
    jsonPath: resolve(values.json ?? join(REPO_ROOT, 'bench', 'results', `${stamp}.json`)),
    samplesDir: values.samples === undefined ? undefined : resolve(values.samples),
    freeThreads: values['free-threads'] === true,
  };
}

const log = (line: string): void => {
  process.stderr.write(`${line}\n`);
};

/** Sets net.ipv4.tcp_tw_reuse=1 (connect storms would otherwise exhaust loopback ports) and returns the undo. */
function enableTwReuse(): () => void {
  try {
    const previous = readFileSync(TW_REUSE, 'utf8').trim();
    if (previous === '1') return () => undefined;
    writeFileSync(TW_REUSE, '1');
    log(`net.ipv4.tcp_tw_reuse: ${previous} → 1 for this run`);
    return () => {
      try {
        writeFileSync(TW_REUSE, previous);
      } catch {
        log(`could not restore net.ipv4.tcp_tw_reuse to ${previous}`);
      }
    };
  } catch {
    log('net.ipv4.tcp_tw_reuse is not writable here; continuing without it');
    return () => undefined;
  }
}

/**
 * One benchmark at a time on this machine: two runs would share the pinned CPUs and skew each other, and
 * the second would restore tcp_tw_reuse under the first. A lock left by a dead process is taken over.
 */
function takeLock(): () => void {
  const path = join(os.tmpdir(), 'gatehouse-bench.lock');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(path, String(process.pid), { flag: 'wx' });
      return () => rmSync(path, { force: true });
    } catch {
      let holder = 0;
      try {
        holder = Number(readFileSync(path, 'utf8').trim());
      } catch {
        continue; // released meanwhile
      }
      let alive = false;
      try {
        if (Number.isInteger(holder) && holder > 0 && holder !== process.pid) {
          process.kill(holder, 0);
          alive = true;
        }
      } catch {
        // no such process: a stale lock
      }
      if (alive) die(`another benchmark (pid ${holder}) is running; results would interfere (lock ${path})`);
      rmSync(path, { force: true });
    }
  }
  die(`could not take the lock ${path}`);
}

function tail(path: string, lines = 15): string {
  try {
    return readFileSync(path, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

function parseResult(stdout: string): GeneratorResult | undefined {
  const line = stdout.trim().split('\n').at(-1);
  if (line === undefined || line === '') return undefined;
  try {
    return JSON.parse(line) as GeneratorResult;
  } catch {
    return undefined;
  }
}

interface RunContext {
  workDir: string;
  certs: BenchCerts;
  timing: Timing;
  samplesDir: string | undefined;
  freeThreads: boolean;
}

/**
 * --free-threads: every thread of the broker but its main one may run on CPUs 0 and 1. A thread started later by a
 * freed thread inherits that; one started later by the main thread does not, so it is applied once the broker
 * listens and again when the measurement begins (V8's platform threads and the sandbox's workers start with the
 * process; a thread started after both stays on CPU 0, which only understates the option).
 */
function freeBrokerThreads(pid: number): void {
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return; // exited: the run reports it
  }
  for (const tid of tids) {
    if (tid !== String(pid)) spawnSync('taskset', ['-p', '-c', '0,1', tid], { stdio: 'ignore' });
  }
}

/**
 * What a latency run adds to the generator's command line: a 64 MB young generation — its loop polls
 * without sleeping and allocates on every turn, and with V8's default it scavenged every ~15 ms
 * (0.2–0.3 ms each), stamping about 1 % of the deliveries late, exactly where p99 is read (now ~8×
 * rarer, each ~1 ms, for every broker alike) — and, with --samples, the file for its samples.
 */
function latencyGeneratorArgs(scenario: ScenarioName, runId: string, samplesDir: string | undefined): { flags: string[]; args: string[] } {
  if (SCENARIOS[scenario].shape.kind !== 'latency') return { flags: [], args: [] };
  return {
    flags: ['--min-semi-space-size=64', '--max-semi-space-size=64'],
    args: samplesDir === undefined ? [] : ['--samples', join(samplesDir, `${runId}.txt`)],
  };
}

/** One scenario against one fresh broker process. */
async function runOne(rep: number, scenario: ScenarioName, broker: BrokerName, ctx: RunContext): Promise<RunRecord> {
  const runId = `r${rep}-${scenario}-${broker}`;
  const logPath = join(ctx.workDir, `${runId}.log`);
  const logFd = openSync(logPath, 'w');
  const port = await freePort();
  let tlsPort = await freePort();
  while (tlsPort === port) tlsPort = await freePort();
  const brokerProc = startBroker(BROKERS[broker], { repoRoot: REPO_ROOT, workDir: ctx.workDir, port, tlsPort, certs: ctx.certs, runId }, logFd);
  const record: RunRecord = { rep, scenario, broker, ok: false };
  try {
    await waitForListeners(brokerProc, [port, tlsPort], LISTEN_TIMEOUT_MS);
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    if (ctx.freeThreads) freeBrokerThreads(brokerProc.pid);
    const latency = latencyGeneratorArgs(scenario, runId, ctx.samplesDir);
    const gen = spawnPinned(1, [
      process.execPath, '--no-node-snapshot', ...latency.flags, benchEntry('generator'),
      '--scenario', scenario, '--host', '127.0.0.1', '--port', String(port), '--tls-port', String(tlsPort),
      '--ca', ctx.certs.caCert, '--broker-pid', String(brokerProc.pid),
      '--warmup', String(ctx.timing.warmup), '--duration', String(ctx.timing.duration), '--drain', String(ctx.timing.drain),
      ...latency.args,
    ], { cwd: REPO_ROOT, env: process.env, stdout: 'pipe', stderr: 'pipe' });
    let stdout = '';
    let stderr = '';
    gen.proc.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    gen.proc.stderr?.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4000)));
    const freeAgain = ctx.freeThreads ? setTimeout(() => freeBrokerThreads(brokerProc.pid), ctx.timing.warmup * 1000) : undefined;
    const limit = (hardTimeoutSeconds(SCENARIOS[scenario].shape, ctx.timing) + 15) * 1000;
    const killer = setTimeout(() => void gen.stop(1000), limit);
    await gen.exited;
    clearTimeout(killer);
    clearTimeout(freeAgain);
    const result = parseResult(stdout);
    if (result === undefined) {
      record.error = `generator exited ${gen.exitStatus ?? '?'} without a result${stderr === '' ? '' : `: ${stderr.trim().split('\n').slice(-3).join(' / ')}`}`;
    } else {
      record.result = result;
      record.ok = result.ok;
      if (result.error !== undefined) record.error = result.error;
    }
    if (brokerProc.exitStatus !== undefined) {
      record.ok = false;
      record.error = `broker exited (${brokerProc.exitStatus}) during the run: ${tail(logPath, 5)}`;
    }
  } catch (err) {
    record.error = `${err instanceof Error ? err.message : String(err)}${tail(logPath) === '' ? '' : `\n${tail(logPath)}`}`;
  } finally {
    await brokerProc.stop();
    closeSync(logFd);
  }
  // The parsing peer logs its totals as it stops: how many messages the sandbox really parsed,
  // and how many its bounded queue dropped at saturation.
  const totals = /"parsed":(\d+),"failed":(\d+),"dropped":(\d+),"shed":(\d+)/.exec(readFileSync(logPath, 'utf8'));
  if (totals) record.parsing = { parsed: Number(totals[1]), failed: Number(totals[2]), dropped: Number(totals[3]), shed: Number(totals[4]) };
  return record;
}

function progressLine(record: RunRecord, reps: number): string {
  const head = `[rep ${record.rep}/${reps}] ${record.scenario.padEnd(10)} ${record.broker.padEnd(12)}`;
  if (record.result === undefined || !record.ok) return `${head} FAILED: ${record.error ?? 'no result'}`;
  const metrics = SCENARIOS[record.scenario].metrics
    .map((m) => `${m.key}=${record.result?.metrics[m.key] ?? '?'}`)
    .join(' ');
  const cpu = record.result.cpu;
  const shares = cpu === null ? '' : `  cpu broker/gen/other ${cpu.brokerPct}/${cpu.genPct}/${cpu.otherPct}%`;
  const p = record.parsing;
  const parsing = p === undefined ? '' : `  parsing parsed/failed/dropped/shed ${p.parsed}/${p.failed}/${p.dropped}/${p.shed}`;
  return `${head} ${metrics}${shares}${parsing}`;
}

async function main(): Promise<void> {
  const options = parseOptions();
  if (process.platform !== 'linux') die('the benchmark reads /proc and uses taskset: Linux only');
  for (const tool of ['taskset', 'openssl']) {
    if (spawnSync('bash', ['-c', `command -v ${tool}`]).status !== 0) die(`${tool} is required`);
  }
  if (os.cpus().length < 2) log('warning: fewer than 2 CPUs; broker and generator will share one');

  if (options.brokers.some((b) => b.startsWith('mosquitto'))) ensureMosquitto(log);
  const brokers = options.brokers.filter((b) => {
    const reason = BROKERS[b].unavailable(REPO_ROOT);
    if (reason !== undefined) log(`skipping ${b}: ${reason}`);
    return reason === undefined;
  });
  if (brokers.length === 0) die('no broker can run');
  const ref = options.ref ?? (brokers.includes('gatehouse') ? 'gatehouse' : brokers[0]!);

  await buildBenchEntries(REPO_ROOT);
  const releaseLock = takeLock();
  const workDir = mkdtempSync(join(os.tmpdir(), 'gatehouse-bench-'));
  chmodSync(workDir, 0o755); // mosquitto drops root privileges and must still read its config and certificates
  const restoreTwReuse = enableTwReuse();
  let cleaned = false;
  const cleanup = async (): Promise<void> => {
    if (cleaned) return;
    cleaned = true;
    await stopAll();
    restoreTwReuse();
    rmSync(workDir, { recursive: true, force: true });
    releaseLock();
  };
  // First signal: stop the children, which ends the current run; the loop then stops and the partial
  // results are still reported. Second signal: kill everything and leave at once.
  let interrupted = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (interrupted) {
      killAllNow();
      restoreTwReuse();
      process.exit(130);
    }
    interrupted = true;
    log(`\n${signal}: stopping brokers and generators (again to quit at once)`);
    void stopAll();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.once('exit', killAllNow);

  const startedAt = new Date();
  const records: RunRecord[] = [];
  try {
    const certDir = join(workDir, 'certs');
    mkdirSync(certDir);
    const certs = generateCerts(certDir);
    const versions = Object.fromEntries(brokers.map((b) => [b, BROKERS[b].version(REPO_ROOT)]));
    log(`brokers: ${brokers.map((b) => `${b} ${versions[b]}`).join(', ')}; ratios are ${ref} ÷ peer`);
    log(`scenarios: ${options.scenarios.join(', ')}; ${options.reps} rep(s); broker on CPU 0${options.freeThreads ? ' (its threads but the main one on CPUs 0-1)' : ''}, generator on CPU 1`);
    if (options.samplesDir !== undefined) mkdirSync(options.samplesDir, { recursive: true });
    const ctx: RunContext = { workDir, certs, timing: options.timing, samplesDir: options.samplesDir, freeThreads: options.freeThreads };
    runs: for (let rep = 1; rep <= options.reps; rep++) {
      for (const scenario of options.scenarios) {
        // Rotate the order each rep so no broker always runs first (or right after the heaviest one).
        const shift = (rep - 1) % brokers.length;
        for (const broker of [...brokers.slice(shift), ...brokers.slice(0, shift)]) {
          if (interrupted) break runs;
          const record = await runOne(rep, scenario, broker, ctx);
          if (interrupted) break runs; // a run cut short by the signal is not a result
          records.push(record);
          log(progressLine(record, options.reps));
        }
      }
    }

    const { rows, cpu } = summarize(records, options.scenarios, brokers, ref);
    const table = renderSummary(rows, cpu, brokers, ref);
    process.stdout.write(`\n${interrupted ? 'INTERRUPTED: partial results\n' : ''}${table}\n\n`);
    process.stdout.write(`Best of ${options.reps} rep(s) [min–max]; faults (errors, missing, lost) show the worst rep. ↑ higher is better, ↓ lower is better.\n`);
    process.stdout.write(`Ratios are ${ref} ÷ peer (×1.50 on ↑ = ${ref} 1.5× higher; on ↓ = ${ref} 1.5× higher cost). CPU columns are medians, % of one core.\n`);
    const tlsSeen = new Map<string, string>();
    for (const r of records) {
      const t = r.result?.tls;
      if (t !== undefined && !tlsSeen.has(r.broker)) tlsSeen.set(r.broker, `${t.protocol} ${t.cipher} ${t.group}`);
    }
    if (tlsSeen.size > 0) process.stdout.write(`TLS negotiated: ${[...tlsSeen].map(([b, t]) => `${b} ${t}`).join('; ')}\n`);
    const failures = records.filter((r) => !r.ok);
    for (const r of failures) process.stdout.write(`failed: rep ${r.rep} ${r.scenario} ${r.broker}: ${r.error ?? 'no result'}\n`);

    mkdirSync(dirname(options.jsonPath), { recursive: true });
    writeFileSync(options.jsonPath, `${JSON.stringify({
      version: 1,
      startedAt: startedAt.toISOString(),
      finishedAt: new Date().toISOString(),
      machine: {
        cpus: os.cpus().length,
        cpuModel: os.cpus()[0]?.model ?? '?',
        memoryGiB: Math.round(os.totalmem() / 2 ** 30),
        kernel: os.release(),
        node: process.version,
        openssl: process.versions.openssl,
        loadavgAtStart: os.loadavg(),
      },
      options: { ...options, jsonPath: undefined, ref },
      interrupted,
      brokers: Object.fromEntries(brokers.map((b) => [b, { version: versions[b], describe: BROKERS[b].describe }])),
      scenarios: Object.fromEntries(options.scenarios.map((s) => [s, { summary: SCENARIOS[s].summary, shape: SCENARIOS[s].shape }])),
      summary: rows,
      cpu,
      records,
    }, null, 2)}\n`);
    const shown = relative(process.cwd(), options.jsonPath);
    process.stdout.write(`results: ${shown.startsWith('..') ? options.jsonPath : shown}\n`);
  } finally {
    await cleanup();
  }
  if (interrupted) process.exitCode = 130;
  else if (!existsSync(options.jsonPath)) process.exitCode = 1;
}

// `npm run bench -- --cluster …` is the cluster benchmark (bench/cluster.ts, issue 16): its own topologies and phases;
// `npm run bench -- --abuse …` the abuse one (bench/abuse.ts, issue 12): what one hostile device costs everyone else.
const clusterFlag = process.argv.indexOf('--cluster');
const abuseFlag = process.argv.indexOf('--abuse');
if (clusterFlag >= 0) {
  process.argv.splice(clusterFlag, 1);
  await import('./cluster.ts');
} else if (abuseFlag >= 0) {
  process.argv.splice(abuseFlag, 1);
  await import('./abuse.ts');
} else {
  main().catch((err: unknown) => {
    log(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    killAllNow();
    process.exitCode = 1;
  });
}
