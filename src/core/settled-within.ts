/**
 * `work`, or resolved after `ms` if it takes longer: a bounded wait for work that must not hold its caller (a stop, an
 * API answer) for ever. Never rejects (a failed `work` counts as settled); the timer does not keep the process alive.
 */
export function settledWithin(work: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, ms);
    timer.unref();
  });
  return Promise.race([work.then(() => undefined, () => undefined), late]).finally(() => clearTimeout(timer));
}
