/**
 * Coalesces socket writes: everything a connection is sent during one event-loop turn leaves in one
 * `write()` (one syscall on TCP, one TLS record batch), flushed for all connections by one setImmediate.
 */
export interface Flushable {
  flush(): void;
}

let queued: Flushable[] = [];
let scheduled = false;

function flushAll(): void {
  scheduled = false;
  const batch = queued;
  queued = [];
  for (const f of batch) f.flush();
}

export function scheduleFlush(target: Flushable): void {
  queued.push(target);
  if (!scheduled) {
    scheduled = true;
    setImmediate(flushAll);
  }
}
