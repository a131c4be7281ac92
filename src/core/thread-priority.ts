/**
 * The scheduling priority of Gatehouse's worker threads.
 *
 * The event loop is the one thread every device's packets pass through; a worker thread's work is
 * always awaited (a write's commit, a query's rows, a script's result), never waited for with the
 * loop held. So where a core is contended the loop should get it first: on two cores, one device's
 * flood of 1 MB retained messages had three SQLite threads and the checkpointer take ~0.95 of a core
 * for a second while the loop waited for a CPU a third of the time, and another gateway's PING p99
 * followed (`npm run bench:abuse`, docs/benchmarks.md). A thread at a higher niceness still runs on
 * any idle core at full speed, and gets ~10 % of a contested one at 10 (CFS weights 110 against
 * 1024), so its work is late, not starved; the acknowledgements that wait for a commit hold the
 * producer back meanwhile (`broker/commit-gate.ts`).
 */

/** The SQLite threads: the message path's writers, the WAL checkpointer, the embedded database's thread. */
export const STORAGE_THREAD_NICENESS = 10;

/**
 * Lowers the calling thread's priority to `niceness` (0–19). On Linux setpriority(PRIO_PROCESS, tid)
 * applies to one thread, and /proc/thread-self names it; the event loop and the other threads keep
 * theirs. Raising niceness needs no privilege. Elsewhere (or without /proc) the thread keeps the
 * process's priority: only its share of a busy core differs, and failing would lose the thread.
 *
 * Self-contained (no imports, no closure, no inner functions), so a worker whose source is a string
 * carries it as `(${lowerThreadPriority})(niceness)`.
 */
export function lowerThreadPriority(niceness: number): void {
  if (niceness === 0 || process.platform !== 'linux') return;
  try {
    const fs = process.getBuiltinModule('node:fs');
    const os = process.getBuiltinModule('node:os');
    const tid = Number(fs.readlinkSync('/proc/thread-self').split('/').pop());
    if (Number.isInteger(tid) && tid > 0) os.setPriority(tid, niceness);
  } catch {
    // No /proc, or a seccomp policy refusing it: the thread works at the process's priority.
  }
}
