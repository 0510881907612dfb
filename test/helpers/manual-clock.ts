import type { Clock } from '../../src/clock.js';

/**
 * A clock that only moves when told to. `now()` (monotonic) and `wall()` start equal; `stepWall`
 * sets the wall clock without moving the monotonic one, as an administrator or ntpd would.
 * Deferred jobs (`defer`) run after the timers due at the same instant, as setImmediate runs
 * after Node's timers phase, or when `runDeferred` is called.
 */
export class ManualClock implements Clock {
  private t: number;
  private wallOffset = 0;
  private seq = 0;
  private timers = new Map<number, { at: number; fn: () => void }>();
  private deferred: (() => void)[] = [];
  constructor(start = Date.parse('2026-01-01T00:00:00Z')) {
    this.t = start;
  }
  now(): number {
    return this.t;
  }
  wall(): number {
    return this.t + this.wallOffset;
  }
  /** Sets the wall clock forward (ms > 0) or back; the monotonic time does not move. */
  stepWall(ms: number): void {
    this.wallOffset += ms;
  }
  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.seq;
    this.timers.set(id, { at: this.t + ms, fn });
    return id;
  }
  clearTimeout(h: unknown): void {
    this.timers.delete(h as number);
  }
  defer(fn: () => void): void {
    this.deferred.push(fn);
  }
  /** Runs the deferred jobs (and those they defer), in order. */
  runDeferred(): void {
    while (this.deferred.length > 0) this.deferred.shift()!();
  }
  /**
   * Time passes with the event loop blocked: no timer fires now; those that fell due fire,
   * late, at the next advance (advance(0) included).
   */
  stall(ms: number): void {
    this.t += ms;
  }
  /** Moves time forward, firing due timers in order (deferred jobs after each instant's timers). */
  advance(ms: number): void {
    const end = this.t + ms;
    this.runDeferred();
    for (;;) {
      let next: [number, { at: number; fn: () => void }] | undefined;
      for (const e of this.timers) if (e[1].at <= end && (!next || e[1].at < next[1].at)) next = e;
      if (!next) break;
      this.timers.delete(next[0]);
      this.t = Math.max(this.t, next[1].at);
      next[1].fn();
      if (![...this.timers.values()].some((x) => x.at <= this.t)) this.runDeferred();
    }
    this.t = end;
    this.runDeferred();
  }
  /** How many timers are armed and not yet fired. */
  get pending(): number {
    return this.timers.size;
  }
  /** The delay, from now, of the earliest armed timer; undefined when none is armed. */
  nextDueInMs(): number | undefined {
    let at: number | undefined;
    for (const { at: a } of this.timers.values()) if (at === undefined || a < at) at = a;
    return at === undefined ? undefined : at - this.t;
  }
}
