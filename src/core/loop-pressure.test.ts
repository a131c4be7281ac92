import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { EventLoopUtilization } from 'node:perf_hooks';
import { LoopPressure } from './loop-pressure.ts';

/** Utilization counters advanced by hand: each `window(u)` adds 100 ms of which `u` was spent running callbacks. */
function steppedLoop(): { sample: () => EventLoopUtilization; window: (used: number) => void } {
  let active = 0;
  let idle = 0;
  return {
    sample: () => ({ active, idle, utilization: active + idle === 0 ? 0 : active / (active + idle) }),
    window: (used) => {
      active += 100 * used;
      idle += 100 * (1 - used);
    },
  };
}

test('saturated only after enterWindows windows in a row at enterAt or above, free again below leaveAt', { timeout: 5_000 }, () => {
  const loop = steppedLoop();
  const pressure = new LoopPressure({ windowMs: 60_000, enterAt: 0.95, enterWindows: 3, leaveAt: 0.8 }, loop.sample);
  try {
    const step = (used: number): boolean => {
      loop.window(used);
      pressure.tick();
      return pressure.saturated;
    };
    assert.deepEqual([step(1), step(1), step(0.5), step(1), step(0.99)], [false, false, false, false, false], 'a busy spell broken by one quiet window is not saturation');
    assert.equal(step(0.96), true, 'the third busy window in a row');
    assert.equal(pressure.episodes, 1);
    assert.equal(step(0.85), true, 'between leaveAt and enterAt: stays saturated (no flapping at the edge)');
    assert.equal(step(0.97), true);
    assert.equal(step(0.79), false, 'one window below leaveAt frees it');
    assert.deepEqual([step(1), step(1)], [false, false], 'a new episode needs its full streak again');
    assert.equal(step(1), true);
    assert.equal(pressure.episodes, 2);
  } finally {
    pressure.stop();
  }
  assert.equal(pressure.saturated, false, 'stopped: never reports saturation');
});

test('the real loop: a second of synchronous work makes it saturated, idle time frees it', { timeout: 15_000 }, async () => {
  const pressure = new LoopPressure({ windowMs: 50, enterAt: 0.9, enterWindows: 3, leaveAt: 0.5 });
  try {
    // Busy in slices that let the timer run between them, as a loop flooded with packets is.
    const until = Date.now() + 5_000;
    while (!pressure.saturated && Date.now() < until) {
      const slice = Date.now() + 20;
      while (Date.now() < slice) { /* busy */ }
      await new Promise((resolve) => setImmediate(resolve));
    }
    assert.equal(pressure.saturated, true, 'a loop that never idles is saturated within seconds');
    // Idle (timers only): free at the first window below leaveAt, within a few windows even on a loaded machine.
    const idleUntil = Date.now() + 5_000;
    while (pressure.saturated && Date.now() < idleUntil) await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(pressure.saturated, false, 'an idle loop is not');
  } finally {
    pressure.stop();
  }
});

test('options that cannot work are refused', { timeout: 5_000 }, () => {
  assert.throws(() => new LoopPressure({ windowMs: 0, enterAt: 0.9, enterWindows: 1, leaveAt: 0.5 }), RangeError);
  assert.throws(() => new LoopPressure({ windowMs: 10, enterAt: 0.5, enterWindows: 1, leaveAt: 0.9 }), RangeError);
  assert.throws(() => new LoopPressure({ windowMs: 10, enterAt: 0.9, enterWindows: 0, leaveAt: 0.5 }), RangeError);
});
