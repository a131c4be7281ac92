#!/usr/bin/env node
// Runs the TypeScript CLI through tsx. isolated-vm (operator scripts) needs --no-node-snapshot on
// Node 20+, so re-executes node with the flags when they are missing.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const entry = fileURLToPath(new URL('../src/cli/index.ts', import.meta.url));
// Resolved from this package, not from the caller's working directory.
const tsx = import.meta.resolve('tsx');
const child = spawn(process.execPath, ['--no-node-snapshot', '--import', tsx, entry, ...process.argv.slice(2)], { stdio: 'inherit' });
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => child.kill(sig));
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
