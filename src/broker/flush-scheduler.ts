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

let queued: Flushable[] = [];
let commits: Committable[] = [];
let scheduled = false;

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
