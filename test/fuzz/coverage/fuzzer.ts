/**
 * A coverage-guided fuzzing loop (libFuzzer's, in miniature): run every seed, then repeatedly pick a
 * corpus input, mutate it, run it, and keep it when it reached a feature (a source range at a hit-count
 * class) no earlier input reached. The first broken invariant stops the run with the input that broke
 * it.
 */
import type { BlockCoverage } from './block-coverage.ts';
import { Mutator, Random } from './mutator.ts';

export interface FuzzTarget {
  /** Runs one input; throws when an invariant breaks. */
  run(input: Buffer): Promise<void>;
}

export interface FuzzOptions {
  seconds: number;
  /** Stop after this many executions as well (a run bounded by work, not time, repeats exactly). */
  maxExecutions?: number;
  seed: number;
  maxLength: number;
  dictionary: readonly Buffer[];
  seeds: readonly Buffer[];
  coverage: BlockCoverage;
  /** Called with every input kept in the corpus (to save a growing corpus between runs). */
  onNewInput?: (input: Buffer) => void;
  /** Progress lines, about every `reportEverySeconds`. */
  log?: (line: string) => void;
  reportEverySeconds?: number;
}

export interface FuzzResult {
  executions: number;
  corpusSize: number;
  /** Distinct features reached over the run. */
  features: number;
  seconds: number;
  finding?: { input: Buffer; error: Error };
}

interface Entry { input: Buffer; newFeatures: number }

/** Most inputs run between two coverage takes once nothing new turns up. */
const MAX_BATCH = 32;

export async function fuzz(target: FuzzTarget, options: FuzzOptions): Promise<FuzzResult> {
  const rnd = new Random(options.seed);
  const mutator = new Mutator(rnd, { maxLength: options.maxLength, dictionary: options.dictionary });
  const seen = new Set<number>();
  const corpus: Entry[] = [];
  const started = Date.now();
  const deadline = started + options.seconds * 1_000;
  let executions = 0;
  let nextReport = started + (options.reportEverySeconds ?? 10) * 1_000;

  const result = (finding?: FuzzResult['finding']): FuzzResult => ({
    executions, corpusSize: corpus.length, features: seen.size, seconds: (Date.now() - started) / 1_000, ...(finding ? { finding } : {}),
  });

  type Outcome = { ok: true } | { ok: false; finding: { input: Buffer; error: Error } };
  const run = async (input: Buffer): Promise<Outcome> => {
    try {
      await target.run(input);
    } catch (error) {
      return { ok: false, finding: { input, error: error instanceof Error ? error : new Error(String(error)) } };
    }
    executions += 1;
    return { ok: true };
  };
  /** Features in `features` no input reached before. */
  const unseen = (features: readonly number[]): number[] => features.filter((f) => !seen.has(f));
  const keep = (input: Buffer, fresh: readonly number[], notify: boolean): void => {
    for (const f of fresh) seen.add(f);
    corpus.push({ input, newFeatures: Math.max(fresh.length, 1) });
    if (notify) options.onNewInput?.(input);
  };

  // Counts from between runs (timers, the watchdog) land on the next take: they are reached once and
  // never new again, so they cost a few corpus entries at most.
  options.coverage.take();
  for (const seed of options.seeds) {
    const outcome = await run(seed);
    if (!outcome.ok) return result(outcome.finding);
    // Every seed stays: each stands for a packet type and version a mutation should start from.
    keep(seed, unseen(options.coverage.take()), false);
  }
  if (corpus.length === 0) keep(Buffer.from([0x10, 0x00]), [], false);

  // Taking V8's coverage costs several times more than running one input, so inputs run in batches with
  // one take per batch; only a batch that reached something new is re-run one input at a time to find
  // which inputs to keep. Once the map fills, most batches find nothing and cost one take for many runs.
  let batchSize = 1;
  const rangesSeen = new Set<number>();
  const maxExecutions = options.maxExecutions ?? Number.POSITIVE_INFINITY;
  while (Date.now() < deadline && executions < maxExecutions) {
    if (Date.now() >= nextReport) {
      const elapsed = (Date.now() - started) / 1_000;
      options.log?.(`#${executions} ${elapsed.toFixed(0)} s: ${seen.size} features, corpus ${corpus.length}, ${(executions / elapsed).toFixed(0)} exec/s`);
      nextReport += (options.reportEverySeconds ?? 10) * 1_000;
    }
    const batch: Buffer[] = [];
    for (let i = 0; i < batchSize; i += 1) {
      // Inputs that opened more new ground are picked more often (libFuzzer's weighting, simplified).
      const parent = pickWeighted(corpus, rnd);
      const other = (corpus[rnd.int(corpus.length)] as Entry).input;
      const input = mutator.mutate(parent.input, other);
      const outcome = await run(input);
      if (!outcome.ok) return result(outcome.finding);
      batch.push(input);
    }
    if (batch.length === 1) {
      const fresh = unseen(options.coverage.take());
      if (fresh.length > 0) keep(batch[0] as Buffer, fresh, true);
      else batchSize = MAX_BATCH;
      continue;
    }
    // A batch's counts are several inputs' summed, so it is judged on the ranges it reached; a batch
    // that reached a new one is re-run an input at a time with counts. One input in every batch is
    // also run alone (next round's batchSize 1) so hit-count novelty keeps being found.
    batchSize = 1;
    const ranges = options.coverage.take(false);
    const newRange = ranges.some((r) => !rangesSeen.has(r));
    for (const r of ranges) rangesSeen.add(r);
    if (!newRange) continue;
    for (const input of batch) {
      const outcome = await run(input);
      if (!outcome.ok) return result(outcome.finding);
      const fresh = unseen(options.coverage.take());
      if (fresh.length > 0) keep(input, fresh, true);
    }
  }
  return result();
}

function pickWeighted(corpus: readonly Entry[], rnd: Random): Entry {
  // Two random candidates, keep the one with more new features: cheap and biased the right way.
  const a = corpus[rnd.int(corpus.length)] as Entry;
  const b = corpus[rnd.int(corpus.length)] as Entry;
  return a.newFeatures >= b.newFeatures ? a : b;
}
