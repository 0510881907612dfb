/**
 * Time, injected: pure code takes `nowMs` as an argument, and the parts that arm timers (the
 * runtime, devd, the sync push loop) take a Clock so that tests run on a manual one.
 */

/** Timers and time, injected so that tests run on a manual clock. */
export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** Wall-clock milliseconds and unref'd Node timers: a pending timer never keeps the process up. */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref?.();
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

