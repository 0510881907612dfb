import type { Clock } from '../../src/clock.js';

/** A clock that only moves when told to. */
export class ManualClock implements Clock {
  private t: number;
  private seq = 0;
  private timers = new Map<number, { at: number; fn: () => void }>();
  constructor(start = Date.parse('2026-01-01T00:00:00Z')) {
    this.t = start;
  }
  now(): number {
    return this.t;
  }
  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.seq;
    this.timers.set(id, { at: this.t + ms, fn });
    return id;
  }
  clearTimeout(h: unknown): void {
    this.timers.delete(h as number);
  }
  /** Moves time forward, firing due timers in order. */
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      let next: [number, { at: number; fn: () => void }] | undefined;
      for (const e of this.timers) if (e[1].at <= end && (!next || e[1].at < next[1].at)) next = e;
      if (!next) break;
      this.timers.delete(next[0]);
      this.t = next[1].at;
      next[1].fn();
    }
    this.t = end;
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
