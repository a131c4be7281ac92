/**
 * Coverage feedback for the fuzzer from V8's own block coverage (the data `c8` and `node --test
 * --experimental-test-coverage` read), taken through an in-process inspector session.
 *
 * Why this and not Jazzer.js: `@jazzer.js/fuzzer` 4.0.0 ships a prebuilt addon linked against glibc 2.38
 * (Debian bookworm has 2.36, so it fails to load), and 2.1.0 builds Jazzer's own fork of libFuzzer
 * downloaded from GitHub at install time, which this project's machines and CI cannot reach. V8's block
 * counters need no native code, work on every Node line, and see exactly the code that runs.
 *
 * A *feature* is one source range V8 reports for a watched function that ran during the input, with its
 * hit count in AFL's logarithmic buckets (0, 1, 2, 3, 4–7, 8–15, 16–31, 32–127, 128+): an input that runs a loop 40 times
 * where every earlier input ran it twice is new behaviour, as libFuzzer's counters also treat it.
 */
import { Session } from 'node:inspector';

interface CoverageRange { startOffset: number; endOffset: number; count: number }
interface ScriptCoverage { url: string; functions: { ranges: CoverageRange[] }[] }

/** AFL's hit-count classes: counts within one class are the same behaviour. */
function bucket(count: number): number {
  if (count <= 3) return count; // 0 (listed but not run), 1, 2, 3
  if (count <= 7) return 4;
  if (count <= 15) return 5;
  if (count <= 31) return 6;
  if (count <= 127) return 7;
  return 8;
}

export class BlockCoverage {
  readonly #session = new Session();
  readonly #watch: RegExp;
  /** Interned feature keys: a number per (script, range, bucket) ever seen. */
  readonly #ids = new Map<string, number>();

  /** @param watch scripts whose URL matches are counted (the code under test, not the harness). */
  constructor(watch: RegExp) {
    this.#watch = watch;
    this.#session.connect();
    this.#post('Profiler.enable');
    // callCount + detailed: per-block execution counts, reset by every takePreciseCoverage.
    this.#post('Profiler.startPreciseCoverage', { callCount: true, detailed: true });
  }

  /**
   * The features hit since the previous call (and resets the counters). `counted: false` leaves the hit
   * count out (a range is a feature once reached): what a batch of inputs can be compared on, since
   * its counts are the sum of several inputs'.
   */
  take(counted = true): number[] {
    const coverage = this.#post('Profiler.takePreciseCoverage') as { result: ScriptCoverage[] };
    const features: number[] = [];
    for (const script of coverage.result) {
      if (!this.#watch.test(script.url)) continue;
      for (const fn of script.functions) {
        // V8 lists a function's own range first, then only the blocks whose count differs from the
        // block around them: a block that ran as often as its parent is not listed, and a block that did
        // not run is listed with count 0. So the zero ranges of a function that ran are features too: a
        // new input reaching one level deeper shows as a zero range that starts further in.
        if ((fn.ranges[0]?.count ?? 0) === 0) continue;
        for (const range of fn.ranges) {
          const key = `${script.url}:${range.startOffset}:${range.endOffset}:${counted ? bucket(range.count) : 'any'}`;
          let id = this.#ids.get(key);
          if (id === undefined) {
            id = this.#ids.size;
            this.#ids.set(key, id);
          }
          features.push(id);
        }
      }
    }
    return features;
  }

  /** Source ranges with a count, over every watched script: the size of the map explored so far. */
  get featuresSeen(): number {
    return this.#ids.size;
  }

  close(): void {
    this.#post('Profiler.stopPreciseCoverage');
    this.#session.disconnect();
  }

  /** An in-process inspector session answers synchronously: the callback runs before `post` returns. */
  #post(method: string, params?: object): unknown {
    const outcome: { answer?: unknown; failure?: Error } = {};
    this.#session.post(method, params, (error, result) => {
      if (error !== null) outcome.failure = error;
      outcome.answer = result;
    });
    if (outcome.failure !== undefined) throw outcome.failure;
    return outcome.answer;
  }
}
