/**
 * The directory of Gatehouse's package.json. Files that ship beside the code (the built console) are
 * found from there, so the same lookup works from the sources (src/…, run by tsx in tests) and from
 * the bundle (dist/*.mjs), which sit at different depths.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export function packageRoot(from: string = path.dirname(fileURLToPath(import.meta.url))): string {
  for (let dir = from; ; dir = path.dirname(dir)) {
    const manifest = path.join(dir, 'package.json');
    if (existsSync(manifest) && isGatehouseManifest(manifest)) return dir;
    if (path.dirname(dir) === dir) throw new Error(`no package.json of gatehouse above ${from}`);
  }
}

function isGatehouseManifest(file: string): boolean {
  try {
    return (JSON.parse(readFileSync(file, 'utf8')) as { name?: unknown }).name === 'gatehouse';
  } catch {
    return false;
  }
}
