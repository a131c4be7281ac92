/**
 * Child processes of the benchmark (brokers and generators), pinned to one CPU with a raised fd limit.
 * Each child leads its own process group, so stopping it by its id also stops what it spawned (tsx's esbuild
 * service); every child still alive is tracked so an error or Ctrl-C stops them all.
 */
import { spawn, type ChildProcess } from 'node:child_process';

export const FD_LIMIT = 20_000;

export interface Child {
  readonly pid: number;
  readonly proc: ChildProcess;
  /** Exit code (or signal name) once the process has exited. */
  exitStatus: string | undefined;
  readonly exited: Promise<void>;
  /** SIGTERM to the group, SIGKILL after `graceMs`; resolves once the leader has exited. */
  stop(graceMs?: number): Promise<void>;
}

const live = new Set<Child>();

export interface SpawnOptions {
  cwd: string;
  env: NodeJS.ProcessEnv;
  stdout: 'pipe' | 'ignore' | number;
  stderr: 'pipe' | 'ignore' | number;
}

/** Runs `argv` through `bash -c 'ulimit -n …; exec taskset -c CPU …'`: exec keeps the pid, so `pid` is the real process. */
export function spawnPinned(cpu: number, argv: string[], options: SpawnOptions): Child {
  return spawnChild(['taskset', '-c', String(cpu), ...argv], options);
}

/**
 * The same without pinning (the cluster benchmark's nodes, which must have every core): `bash -c 'ulimit -n …;
 * exec …'`, its own process group, tracked for `stopAll`.
 */
export function spawnChild(argv: string[], options: SpawnOptions): Child {
  const script = `ulimit -n ${FD_LIMIT} 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$@"`;
  const proc = spawn('bash', ['-c', script, 'bench-child', ...argv], {
    cwd: options.cwd,
    env: options.env,
    stdio: ['ignore', options.stdout, options.stderr],
    detached: true,
  });
  if (proc.pid === undefined) throw new Error(`could not spawn ${argv[0] ?? '?'}`);
  const pid = proc.pid;
  let resolveExit: () => void = () => undefined;
  const exited = new Promise<void>((resolve) => (resolveExit = resolve));
  const child: Child = {
    pid,
    proc,
    exitStatus: undefined,
    exited,
    async stop(graceMs = 5000): Promise<void> {
      if (child.exitStatus !== undefined) return;
      signalGroup(pid, 'SIGTERM');
      const timer = setTimeout(() => signalGroup(pid, 'SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
      // The leader is gone; make sure nothing it left behind in its group lingers.
      signalGroup(pid, 'SIGKILL');
    },
  };
  proc.on('exit', (code, signal) => {
    child.exitStatus = signal ?? String(code);
    live.delete(child);
    resolveExit();
  });
  proc.on('error', () => {
    child.exitStatus ??= 'spawn error';
    live.delete(child);
    resolveExit();
  });
  live.add(child);
  return child;
}

function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // ESRCH: the group is already gone.
  }
}

/** Stops every child still running (used on error and on SIGINT/SIGTERM). */
export async function stopAll(): Promise<void> {
  await Promise.all([...live].map((child) => child.stop(2000)));
}

/** Last resort from a synchronous 'exit' handler: SIGKILL every group still tracked. */
export function killAllNow(): void {
  for (const child of live) signalGroup(child.pid, 'SIGKILL');
}
