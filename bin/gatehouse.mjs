#!/usr/bin/env node
// Runs the CLI compiled into dist/ (scripts/build.mjs; built by npm install, and again here when a
// source is newer, as in a checkout being edited), in a node re-executed with source maps on.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { DIST, ensureBuilt } from '../scripts/build.mjs';

await ensureBuilt();
const entry = path.join(DIST, 'cli.mjs');
const child = spawn(process.execPath, ['--enable-source-maps', entry, ...process.argv.slice(2)], { stdio: 'inherit' });
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => child.kill(sig));
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
