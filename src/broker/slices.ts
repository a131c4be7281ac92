/**
 * Packet handlers whose work grows with the packet (a SUBSCRIBE or UNSUBSCRIBE of a thousand filters)
 * run in slices: past SLICE_MS the handler yields to the event loop and goes on in a later turn, so
 * other connections' input and timers — another gateway's PINGREQ — run in between. The connection
 * reads none of its own input meanwhile (a handler's promise suspends it), so its packets keep their
 * order. `npm run bench:abuse` (5 × 1,000 filters of 4 KB) measured one SUBSCRIBE holding every
 * gateway's sockets for tens of milliseconds before.
 */
export const SLICE_MS = 1;

let clock: () => number = () => performance.now();

/** For tests: the clock slices are measured on (undefined: the real one back). */
export function setSliceClock(next: (() => number) | undefined): void {
  clock = next ?? (() => performance.now());
}

/** The end of a slice started now. */
export function sliceDeadline(): number {
  return clock() + SLICE_MS;
}

export function pastDeadline(deadline: number): boolean {
  return clock() >= deadline;
}

/** Resolves in a later turn, after the I/O callbacks already due (other sockets' input). */
export function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
