/**
 * Coalesces socket writes: everything a connection is sent during one event-loop turn leaves in one
 * `write()` (one syscall on TCP, one TLS record batch), flushed for all connections by one setImmediate.
 * Durable-state journals commit first in the same turn, so no acknowledgement leaves before the state
 * it acknowledges is stored.
 */
export interface Flushable {
  flush(): void;
}

export interface Committable {
  commit(): void;
}

/**
 * How long a turn may run past its first queued write before that write leaves. One setImmediate per
 * turn runs after the whole poll phase: with a thousand sockets readable at once (a fleet subscribing,
 * a flood), a PINGRESP queued early waited for every other socket's input to be handled (seconds,
 * measured by `npm run bench:abuse`). Past the budget, the next connection to finish its input flushes
 * for everyone, so coalescing stays the rule for ordinary turns.
 */
const TURN_BUDGET_MS = 2;

/** The clock the budget is read on; a test sets its own so that a descheduled process cannot pass the budget. */
let clock: () => number = () => performance.now();

/** For tests: the clock the turn budget is measured on (undefined: the real one back). */
export function setFlushClock(next: (() => number) | undefined): void {
  clock = next ?? (() => performance.now());
}

let queued: Flushable[] = [];
let commits: Committable[] = [];
let scheduled = false;
let scheduledAt = 0;

function flushAll(): void {
  scheduled = false;
  if (commits.length > 0) {
    const due = commits;
    commits = [];
    for (const c of due) c.commit();
  }
  const batch = queued;
  queued = [];
  for (const f of batch) f.flush();
}

function schedule(): void {
  if (!scheduled) {
    scheduled = true;
    scheduledAt = clock();
    setImmediate(flushAll);
  }
}

export function scheduleFlush(target: Flushable): void {
  queued.push(target);
  schedule();
}

export function scheduleCommit(target: Committable): void {
  commits.push(target);
  schedule();
}

/**
 * Called when a connection has handled a chunk of input: commits and flushes now if this turn has run
 * past its budget (durable state first, as always, so no acknowledgement leaves before its state).
 * The setImmediate already scheduled then finds nothing left to do.
 */
export function flushIfOverdue(): void {
  if (scheduled && clock() - scheduledAt >= TURN_BUDGET_MS) flushAll();
}
