/**
 * One coverage-guided fuzzing run against the engine, shared by `npm run fuzz` and the bounded run in
 * `npm test`: loads the seed corpus, the regression inputs and the dictionary from `test/fuzz/`, runs
 * the loop, and writes a finding's input where it can be replayed.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BlockCoverage } from './block-coverage.ts';
import { fuzz, type FuzzResult } from './fuzzer.ts';
import { MqttTarget } from './mqtt-target.ts';
import { parseDictionary } from './mutator.ts';

export const FUZZ_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const CORPUS_DIR = path.join(FUZZ_DIR, 'corpus');
export const REGRESSIONS_DIR = path.join(FUZZ_DIR, 'regressions');
/** The code whose coverage guides the fuzzer: the engine, the codec and the packet parser under it. */
const WATCHED = /\/src\/(?:mqtt|broker)\/|\/node_modules\/mqtt-packet\//;
/** Longest input: a few frames; large packets are the hostile-device tests' business, not the fuzzer's. */
const MAX_INPUT_BYTES = 4_096;

export interface RunOptions {
  seconds: number;
  /** Stop after this many executions too: a run bounded by work repeats the same inputs on any machine. */
  maxExecutions?: number;
  seed: number;
  /** Extra corpus directories to read, and the first of them to write new inputs into. */
  workCorpus?: string;
  /** Where a finding's input is written (created when needed). */
  findingsDir: string;
  log?: (line: string) => void;
}

export interface RunReport extends FuzzResult {
  /** Path of the input that broke an invariant, when one did. */
  findingFile?: string;
}

export function readInputs(dir: string): Buffer[] {
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => !n.startsWith('.') && !n.endsWith('.md')).sort();
  } catch {
    return [];
  }
  return names.map((n) => readFileSync(path.join(dir, n)));
}

export async function runMqttFuzz(options: RunOptions): Promise<RunReport> {
  const dictionary = parseDictionary(readFileSync(path.join(FUZZ_DIR, 'mqtt.dict'), 'utf8'));
  const seeds = [
    ...readInputs(CORPUS_DIR),
    ...readInputs(REGRESSIONS_DIR),
    ...(options.workCorpus ? readInputs(options.workCorpus) : []),
  ];
  if (options.workCorpus) mkdirSync(options.workCorpus, { recursive: true });
  const coverage = new BlockCoverage(WATCHED);
  const target = await MqttTarget.start({
    checkEvery: 500, restartEvery: 5_000, maxRssBytes: 1_536 * 1024 * 1024, closeDeadlineMs: 5_000,
  });
  let result: FuzzResult;
  try {
    result = await fuzz(target, {
      seconds: options.seconds, maxExecutions: options.maxExecutions, seed: options.seed, maxLength: MAX_INPUT_BYTES, dictionary, seeds, coverage,
      log: options.log,
      onNewInput: options.workCorpus
        ? (input) => writeFileSync(path.join(options.workCorpus as string, sha1(input)), input)
        : undefined,
    });
    // The periodic invariants once more at the end: a leak from the last inputs is found too.
    if (result.finding === undefined) {
      try {
        await target.check();
      } catch (error) {
        result = { ...result, finding: { input: Buffer.alloc(0), error: error as Error } };
      }
    }
  } finally {
    await target.close();
    coverage.close();
  }
  if (result.finding === undefined) return result;
  mkdirSync(options.findingsDir, { recursive: true });
  const findingFile = path.join(options.findingsDir, `finding-${sha1(result.finding.input)}`);
  writeFileSync(findingFile, result.finding.input);
  return { ...result, findingFile };
}

function sha1(input: Buffer): string {
  return createHash('sha1').update(input).digest('hex');
}
