/**
 * `npm run fuzz -- --minutes N [--seed S] [--corpus DIR]`: a longer coverage-guided run against the
 * engine. New inputs are kept in DIR (default `.tmp/fuzz-corpus`, not committed) so the next run starts
 * where this one ended; a finding is written to `.tmp/fuzz-findings/` and the command exits 1.
 * `npm run fuzz -- --write-seeds` rewrites the committed seed corpus in `test/fuzz/corpus/`.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { CORPUS_DIR, FUZZ_DIR, runMqttFuzz } from './run.ts';
import { seedCorpus } from './seeds.ts';

const ROOT = path.resolve(FUZZ_DIR, '..', '..');
const { values } = parseArgs({
  options: {
    minutes: { type: 'string' },
    seconds: { type: 'string' },
    seed: { type: 'string' },
    corpus: { type: 'string' },
    'write-seeds': { type: 'boolean' },
  },
});

if (values['write-seeds'] === true) {
  mkdirSync(CORPUS_DIR, { recursive: true });
  const seeds = seedCorpus();
  for (const [name, bytes] of seeds) writeFileSync(path.join(CORPUS_DIR, `${name}.bin`), bytes);
  console.log(`wrote ${seeds.size} seeds to ${path.relative(ROOT, CORPUS_DIR)}`);
  process.exit(0);
}

const seconds = values.seconds !== undefined ? Number(values.seconds) : Number(values.minutes ?? '10') * 60;
if (!Number.isFinite(seconds) || seconds <= 0) {
  console.error('--minutes / --seconds must be a positive number');
  process.exit(2);
}
const seed = values.seed !== undefined ? Number(values.seed) >>> 0 : Date.now() >>> 0;
const report = await runMqttFuzz({
  seconds, seed,
  workCorpus: path.resolve(ROOT, values.corpus ?? '.tmp/fuzz-corpus'),
  findingsDir: path.resolve(ROOT, '.tmp/fuzz-findings'),
  log: (line) => console.log(line),
});
console.log(`seed ${seed}: ${report.executions} executions in ${report.seconds.toFixed(0)} s, ${report.features} features, corpus ${report.corpusSize}`);
if (report.finding !== undefined) {
  console.error(`FINDING ${report.finding.error.message}\ninput (${report.finding.input.length} bytes, hex): ${report.finding.input.toString('hex')}\nwritten to ${report.findingFile}`);
  process.exit(1);
}
process.exit(0);
