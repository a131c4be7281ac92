#!/usr/bin/env node
/**
 * Compiles Gatehouse's TypeScript entry points into dist/ with esbuild: one ES module per entry, npm
 * packages left as imports, source maps beside them. `npm start`, the `gatehouse` bin and the
 * benchmark run these files with plain `node`.
 *
 * Why not run the sources through tsx, as the tests do: tsx registers its module hooks on a second
 * thread with its own V8 heap, and that heap's memory-reducing mark-compacts (3–9 ms each, seconds
 * after start-up) take the CPU from the event loop whenever the process has a single core to itself —
 * measured as the p99 latency tail in `npm run bench` (docs/benchmarks.md). A running gateway should
 * carry no compiler.
 *
 *   node scripts/build.mjs            build dist/main.mjs, dist/cli.mjs and dist/sandbox-worker.mjs
 *
 * dist/sandbox-worker.mjs is the sandbox's worker thread (src/sandbox/quickjs-worker.ts); the
 * runner bundled into the other entries loads it from beside itself.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const DIST = path.join(ROOT, 'dist');

/** Entry name (output file without .mjs) → source, relative to the package root. */
export const ENTRIES = { main: 'src/main.ts', cli: 'src/cli/index.ts', 'sandbox-worker': 'src/sandbox/quickjs-worker.ts' };

/** Bundles each entry into `outdir/<name>.mjs` (+ .map). */
export async function buildEntries(entries, outdir) {
  const { build } = await import('esbuild');
  await build({
    entryPoints: Object.fromEntries(Object.entries(entries).map(([name, file]) => [name, path.resolve(ROOT, file)])),
    outdir,
    outExtension: { '.js': '.mjs' },
    bundle: true,
    packages: 'external',
    platform: 'node',
    format: 'esm',
    target: 'node20',
    // Not minified, so function and class names stay as written for logs and stack traces.
    sourcemap: 'linked',
    logLevel: 'warning',
  });
}

/** Newest modification time of any file under `dir` (0 when it does not exist). */
function newestMtime(dir) {
  if (!existsSync(dir)) return 0;
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue;
    const mtime = statSync(path.join(entry.parentPath ?? entry.path, entry.name)).mtimeMs;
    if (mtime > newest) newest = mtime;
  }
  return newest;
}

/**
 * Builds dist/ when an output is missing or older than a source (a checkout being edited); an
 * installed package, built by its postinstall, is left alone.
 */
export async function ensureBuilt() {
  const outputs = Object.keys(ENTRIES).map((name) => path.join(DIST, `${name}.mjs`));
  const oldest = Math.min(...outputs.map((f) => (existsSync(f) ? statSync(f).mtimeMs : 0)));
  if (oldest === 0 || newestMtime(path.join(ROOT, 'src')) > oldest) await buildEntries(ENTRIES, DIST);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  await buildEntries(ENTRIES, DIST);
}
