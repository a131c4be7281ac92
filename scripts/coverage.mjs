/**
 * The last step of `npm test`: coverage of src/ as measured by c8 around the test run (test:unit,
 * configured by .c8rc.json), as a short table per folder, and the floor that fails the run.
 *
 * Reads .tmp/coverage/coverage-summary.json (c8's json-summary), prints the table of src/'s folders
 * and writes it, with one row per directory below it, to .tmp/coverage/folders.txt. Then checks the
 * totals of src/ against FLOOR: lines and branches under it fail (exit 1). The floor holds for the
 * full suite on Node 20, the line CI runs it on, with PostgreSQL; on another Node, or without
 * GATEHOUSE_TEST_DATABASE_URL, the table is printed and the floor is not checked (docs/testing.md). `node scripts/coverage.mjs [SUMMARY [OUTDIR]]` reads another
 * summary file and writes its table elsewhere (the script's own test does).
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/**
 * Just under what the full suite reached on Node 20 (docs/testing.md says how it was measured and
 * why the margin). Raise it when coverage rises; never lower it to get green: add the tests instead.
 */
export const FLOOR = { node: 20, lines: 93.4, branches: 90 };

/** 'src/broker' for src/broker/router.ts; the files directly in src/ are 'src (top)'. */
export function folderOf(relativeFile, depth = 1) {
  const parts = relativeFile.split('/');
  if (parts.length <= 2) return `${parts[0]} (top)`;
  return parts.slice(0, Math.min(1 + depth, parts.length - 1)).join('/');
}

const emptyCounts = () => ({ lines: { total: 0, covered: 0 }, branches: { total: 0, covered: 0 }, functions: { total: 0, covered: 0 } });

/** Sums c8's per-file counts by folder; `total` is all of src/. */
export function byFolder(summary, root, depth = 1) {
  const folders = new Map();
  const total = emptyCounts();
  for (const [file, counts] of Object.entries(summary)) {
    if (file === 'total') continue;
    const relative = path.relative(root, file).split(path.sep).join('/');
    if (!relative.startsWith('src/')) continue;
    const folder = folderOf(relative, depth);
    if (!folders.has(folder)) folders.set(folder, emptyCounts());
    for (const target of [folders.get(folder), total]) {
      for (const kind of ['lines', 'branches', 'functions']) {
        target[kind].total += counts[kind].total;
        target[kind].covered += counts[kind].covered;
      }
    }
  }
  return { folders: new Map([...folders].sort(([a], [b]) => a.localeCompare(b))), total };
}

export const percent = ({ total, covered }) => (total === 0 ? 100 : (100 * covered) / total);

export function table(folders, total) {
  const rows = [...folders, ['src/ total', total]].map(([name, c]) => [
    name, ...['lines', 'branches', 'functions'].map((kind) => `${percent(c[kind]).toFixed(2).padStart(6)} % ${`${c[kind].covered}/${c[kind].total}`.padStart(11)}`),
  ]);
  const header = ['folder', 'lines', 'branches', 'functions'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [line(header), ...rows.map(line)].join('\n');
}

/** Failures of the totals against the floor, as sentences; empty when it holds. */
export function belowFloor(total, floor) {
  const failures = [];
  for (const kind of ['lines', 'branches']) {
    const reached = percent(total[kind]);
    if (reached < floor[kind]) failures.push(`src/ ${kind} ${reached.toFixed(2)} % is under the floor of ${floor[kind]} %`);
  }
  return failures;
}

function main() {
  const summaryFile = process.argv[2] ?? path.join(ROOT, '.tmp', 'coverage', 'coverage-summary.json');
  const OUT = process.argv[3] ?? path.join(ROOT, '.tmp', 'coverage');
  if (!fs.existsSync(summaryFile)) {
    console.error(`coverage: no ${path.relative(ROOT, summaryFile)}; run the suite through c8 first (npm run test:unit)`);
    return 1;
  }
  const summary = JSON.parse(fs.readFileSync(summaryFile, 'utf8'));
  const top = byFolder(summary, ROOT, 1);
  const deep = byFolder(summary, ROOT, 9);
  const shown = table(top.folders, top.total);
  fs.mkdirSync(OUT, { recursive: true });
  fs.writeFileSync(path.join(OUT, 'folders.txt'), `${shown}\n\nBy directory:\n${table(deep.folders, deep.total)}\n`);
  console.log(`coverage of src/ (c8; details in ${path.relative(ROOT, path.join(OUT, 'folders.txt'))}):\n${shown}`);

  const major = Number(process.versions.node.split('.')[0]);
  if (major !== FLOOR.node) {
    console.log(`coverage: floor not checked on Node ${major}: it is set for the full suite on Node ${FLOOR.node} (docs/testing.md)`);
    return 0;
  }
  if (!process.env.GATEHOUSE_TEST_DATABASE_URL) {
    // The PostgreSQL half of the storage contract was skipped: not the full suite (CI always runs it).
    console.log('coverage: floor not checked: GATEHOUSE_TEST_DATABASE_URL is not set, so the suite ran without PostgreSQL (test/storage/README.md)');
    return 0;
  }
  const failures = belowFloor(top.total, FLOOR);
  if (failures.length > 0) {
    for (const failure of failures) console.error(`coverage: ${failure} (scripts/coverage.mjs); add tests, never lower the floor`);
    return 1;
  }
  console.log(`coverage: floor held (lines ≥ ${FLOOR.lines} %, branches ≥ ${FLOOR.branches} %)`);
  return 0;
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) process.exitCode = main();
