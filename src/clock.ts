/**
 * Time, injected: pure code takes `nowMs` as an argument, and the parts that arm timers (the
 * runtime, devd, the sync push loop) take a Clock so that tests run on a manual one.
 *
 * Two times, never mixed:
 * - `now()` is monotonic: milliseconds that never step back or jump when the wall clock is set
 *   (ntpd, an administrator, a VM resumed). Timers, deadlines, durations (in reasons, sync lag,
 *   rate-limit windows) and the engines' `since` are on it. On the system clock it is anchored at
 *   the process start (`performance.timeOrigin + performance.now()`), so it reads like epoch
 *   milliseconds, but it is not the wall time once the wall clock has been set.
 * - `wall()` is the wall clock (Date.now), only for timestamps shown to people or to a peer
 *   (ISO 8601 in the API, events, sync messages). A monotonic instant is shown with `wallDate`.
 */

/** Timers and time, injected so that tests run on a manual clock. */
export interface Clock {
  /** Monotonic milliseconds (see the file comment). */
  now(): number;
  /** Wall-clock milliseconds since the epoch, for timestamps shown to people. */
  wall(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
  /**
   * Runs `fn` once the I/O already pending has been delivered (Node: setImmediate, which runs
   * after the poll phase reads ready sockets; a timer callback runs before it).
   */
  defer(fn: () => void): void;
}

/** Monotonic milliseconds and unref'd Node timers: a pending timer never keeps the process up. */
export const systemClock: Clock = {
  now: () => performance.timeOrigin + performance.now(),
  wall: () => Date.now(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref?.();
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
  // Not unref'd: an unref'd immediate lets the poll phase block until some other event wakes the
  // loop, which delayed a takeover by 5-10 ms (bench:timing).
  defer: (fn) => {
    setImmediate(fn);
  },
};

/** Offsets wall − now per clock, kept while they agree within WALL_STEP_MS (Date.now is whole ms). */
const offsets = new WeakMap<object, number>();
/** A change of the offset larger than this is a step of the wall clock, taken at once. */
const WALL_STEP_MS = 2;

/**
 * The wall time of a monotonic instant of this clock, for showing it: wall − (now − mono). The
 * offset is kept from one call to the next unless the wall clock was set, so that the same
 * instant shows as the same millisecond every time it is read.
 */
export function wallDate(clock: Pick<Clock, 'now' | 'wall'>, monoMs: number): Date {
  const live = clock.wall() - clock.now();
  let off = offsets.get(clock);
  if (off === undefined || Math.abs(live - off) > WALL_STEP_MS) {
    off = live;
    offsets.set(clock, off);
  }
  return new Date(Math.round(monoMs + off));
}
