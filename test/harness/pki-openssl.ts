/**
 * Runs the `openssl` CLI for the test PKI and the OCSP responder: argument arrays only (never a shell
 * string), a timeout, stderr in the error, and a handle on every child still running so its owner can
 * stop it by PID.
 */
import { execFile, type ChildProcess } from 'node:child_process';

export interface OpensslRun {
  /** Working directory; relative paths in arguments and configs resolve against it. */
  cwd?: string;
  /** Kill the child (SIGKILL) after this long. Default 15 s. */
  timeoutMs?: number;
  /** Children still running are added here while they run, so a closing owner can kill them. */
  track?: Set<ChildProcess>;
}

export class OpensslError extends Error {
  readonly args: readonly string[];
  readonly stderr: string;

  constructor(args: readonly string[], stderr: string, cause: unknown) {
    super(`openssl ${args[0] ?? ''} failed: ${stderr.trim() || String(cause)}`, { cause });
    this.name = 'OpensslError';
    this.args = args;
    this.stderr = stderr;
  }
}

/** Runs `openssl …args` and resolves with its stdout. */
export function openssl(args: readonly string[], run: OpensslRun = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile('openssl', args, {
      cwd: run.cwd,
      timeout: run.timeoutMs ?? 15_000,
      killSignal: 'SIGKILL',
      maxBuffer: 4 * 1024 * 1024,
      encoding: 'utf8',
    }, (error, stdout, stderr) => {
      run.track?.delete(child);
      if (error) reject(new OpensslError(args, stderr, error));
      else resolve(stdout);
    });
    run.track?.add(child);
  });
}

/** Kills every child in `track` by its PID. */
export function killTracked(track: Set<ChildProcess>): void {
  for (const child of track) {
    if (child.pid !== undefined && child.exitCode === null) child.kill('SIGKILL');
  }
  track.clear();
}

const exitHooks = new Set<() => void>();

/**
 * Runs `hook` (synchronous work only: `rmSync`, `kill`) when the process exits, unless the returned
 * function is called first. One `exit` listener serves every hook.
 */
export function onProcessExit(hook: () => void): () => void {
  if (exitHooks.size === 0) process.once('exit', runExitHooks);
  exitHooks.add(hook);
  return () => {
    exitHooks.delete(hook);
    if (exitHooks.size === 0) process.removeListener('exit', runExitHooks);
  };
}

function runExitHooks(): void {
  for (const hook of exitHooks) {
    try {
      hook();
    } catch {
      // Best effort: the process is exiting anyway.
    }
  }
  exitHooks.clear();
}
