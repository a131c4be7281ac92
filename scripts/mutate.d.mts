// Types of scripts/mutate.mjs for the TypeScript that imports it (its test).
export interface ModuleSpec {
  sources: (string | { file: string; only: string[] })[];
  tests: string[];
}
export interface Mutant {
  start: number;
  end: number;
  replacement: string;
  operator: string;
  original: string;
  line: number;
  column: number;
}
export interface Survivor { file: string; line: number; column: number; operator: string; original: string }
export interface ModuleResult {
  name: string;
  killed: number;
  survived: number;
  timeout: number;
  total: number;
  score: number;
  survivors: Survivor[];
  /** SHA-256 of each source as measured: a recheck is refused when one changed. */
  sources: Record<string, string>;
  seconds: number;
  /** Survivors of an earlier run that ran again (0 for a whole run). */
  rechecked: number;
  /** `I/K` when only every K-th mutant from the I-th ran (`--shard`). */
  shard?: string;
}
export declare const MODULES: Record<string, ModuleSpec>;
export declare function mutantsOf(text: string, fileName?: string, only?: string[]): Mutant[];
export declare function applyMutant(text: string, mutant: Mutant): string;
export declare function makeScratchTree(root: string, scratch: string): void;
export declare function runTestFile(cwd: string, file: string, timeoutMs: number): Promise<{ outcome: 'pass' | 'fail' | 'timeout'; ms: number }>;
export declare function runMutation(options: {
  root: string;
  modules: Record<string, ModuleSpec>;
  names: string[];
  scratch: string;
  /** Results of an earlier run: a module found here runs only its survivors (`--recheck`). */
  previous?: ModuleResult[];
  /** Every `count`-th mutant of each source from the `index`-th (`--shard`). */
  shard?: { index: number; count: number };
  log?: (line: string) => void;
}): Promise<ModuleResult[]>;
export declare function formatResults(results: ModuleResult[]): string;
export declare function mergeShards(results: ModuleResult[]): ModuleResult[];
