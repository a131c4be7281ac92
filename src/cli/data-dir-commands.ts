/**
 * `gatehouse doctor`, `gatehouse backup <file>`, `gatehouse restore <file>`: work on a data directory
 * directly (not through the API). `--data-dir` defaults to GATEHOUSE_DATA_DIR, then ./data, as
 * `npm start` does. Exit status 1 on a refusal or when the doctor finds a problem.
 */
import path from 'node:path';
import type { Command } from 'commander';
import { GatehouseError } from '../core/errors.ts';
import { backupDataDir, restoreDataDir } from './backup.ts';
import { examineDataDir } from './doctor.ts';

function dataDirOf(flag: string | undefined): string {
  return path.resolve(flag ?? process.env.GATEHOUSE_DATA_DIR ?? './data');
}

/** With --json a refusal is printed as the API prints its errors, so scripts read one shape everywhere. */
async function run(work: () => Promise<void>, json = false): Promise<void> {
  try {
    await work();
  } catch (error) {
    if (!(error instanceof GatehouseError)) throw error;
    if (json) process.stdout.write(`${JSON.stringify({ error: { code: error.code, message: error.message, field: error.field ?? null } }, null, 2)}\n`);
    process.stderr.write(`gatehouse: ${error.code}: ${error.message}\n`);
    process.exitCode = 1;
  }
}

const print = (value: unknown): void => {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
};

export function registerDataDirCommands(program: Command): void {
  program.command('doctor').description('check a data directory: identity, database integrity, key material, permissions, stray files')
    .option('--data-dir <dir>', 'the data directory (default GATEHOUSE_DATA_DIR or ./data)')
    .option('--json', 'print the findings as JSON')
    .action((flags: { dataDir?: string; json?: boolean }) => run(async () => {
      const findings = await examineDataDir(dataDirOf(flags.dataDir), { masterKey: process.env.GATEHOUSE_MASTER_KEY });
      const problems = findings.filter((f) => f.level === 'problem').length;
      if (problems > 0) process.exitCode = 1;
      if (flags.json === true) {
        print({ dataDir: dataDirOf(flags.dataDir), problems, findings });
        return;
      }
      for (const f of findings) process.stdout.write(`${f.level === 'ok' ? 'ok     ' : f.level === 'warn' ? 'warning' : 'PROBLEM'}  ${f.what}\n`);
      process.stdout.write(problems === 0 ? 'no problems found\n' : `${problems} problem(s) found\n`);
    }, flags.json));

  program.command('backup <file>').description('copy a data directory, running or not, into one tar file (SQLite online backup; 0600)')
    .option('--data-dir <dir>', 'the data directory (default GATEHOUSE_DATA_DIR or ./data)')
    .option('--without-secrets', 'leave admin-token and master.key out (keep GATEHOUSE_MASTER_KEY elsewhere)')
    .option('--json', 'print what was backed up as JSON')
    .action((file: string, flags: { dataDir?: string; withoutSecrets?: boolean; json?: boolean }) => run(async () => {
      const r = await backupDataDir(dataDirOf(flags.dataDir), path.resolve(file), { withSecrets: flags.withoutSecrets !== true });
      if (flags.json === true) {
        print({ installationId: r.installationId, file: path.resolve(file), files: r.files, notes: r.notes });
        return;
      }
      process.stdout.write(`backed up installation ${r.installationId} to ${path.resolve(file)}: ${r.files.join(', ')}\n`);
      for (const note of r.notes) process.stdout.write(`note: ${note}\n`);
    }, flags.json));

  program.command('restore <file>').description('restore a backup into a data directory (Gatehouse stopped); checks every database first')
    .option('--data-dir <dir>', 'the data directory (default GATEHOUSE_DATA_DIR or ./data)')
    .option('--replace', 'move the directory\'s current content aside (to <dir>.before-restore-<time>) instead of refusing')
    .option('--json', 'print what was restored as JSON')
    .action((file: string, flags: { dataDir?: string; replace?: boolean; json?: boolean }) => run(async () => {
      const r = await restoreDataDir(path.resolve(file), dataDirOf(flags.dataDir), { replace: flags.replace === true });
      if (flags.json === true) {
        print({ installationId: r.installationId, dataDir: dataDirOf(flags.dataDir), files: r.files, previous: r.previous });
        return;
      }
      process.stdout.write(`restored installation ${r.installationId} into ${dataDirOf(flags.dataDir)}: ${r.files.join(', ')}\n`);
      if (r.previous !== null) process.stdout.write(`the previous content is in ${r.previous}\n`);
    }, flags.json));
}
