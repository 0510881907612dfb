/**
 * Named timers over an injected Clock (src/clock.ts), so that the runtime runs on the
 * system clock in carpd and on a manual clock in tests. The engine asks for timers by name
 * (`arm` replaces an armed timer of the same name, `cancel` stops it); this table keeps the
 * clock handles per key so that a replaced or cancelled timer can never fire.
 *
 * Timers are deadlines, not delays: `arm` takes the instant the interval counts from (the time
 * of the engine step that asked for it), keeps `from + ms` on the monotonic clock, and hands the
 * callback that deadline. A timer the clock fires early (Node's timers run on a cached,
 * whole-millisecond loop time) is re-armed for the remainder; one that fires late says by how
 * much, so that a periodic timer can count its next period from its deadline rather than from
 * when it ran (no drift under load), and resynchronise after a stall of a whole period or more
 * (no burst of catch-up advertisements).
 */
import type { Clock } from '../clock.js';

/** What a timer's callback learns: when it was due, when it ran, and its interval. */
export interface TimerFire {
  /** The deadline on the monotonic clock (from + ms as armed). */
  deadline: number;
  /** The monotonic time it actually ran. */
  now: number;
  /** The interval it was armed with. */
  intervalMs: number;
}

/** Early by less than this is on time: float rounding of from + ms, not a clock that fired early. */
const EARLY_TOLERANCE_MS = 0.001;

interface Entry {
  handle: unknown;
  deadline: number;
  intervalMs: number;
  fn: (f: TimerFire) => void;
}

export class TimerTable {
  private readonly entries = new Map<string, Entry>();
  /** Bumped by every arm and cancel of a key: tells a deferred action whether its timer is still the current one. */
  private readonly generations = new Map<string, number>();

  constructor(private readonly clock: Clock) {}

  /**
   * Runs `fn` at `from + ms` (from: default now), replacing a timer armed under the same key.
   */
  arm(key: string, ms: number, fn: (f: TimerFire) => void, from = this.clock.now()): void {
    this.cancel(key);
    const intervalMs = Math.max(0, ms);
    const e: Entry = { handle: undefined, deadline: from + intervalMs, intervalMs, fn };
    this.entries.set(key, e);
    this.schedule(key, e);
  }

  cancel(key: string): void {
    this.bump(key);
    const e = this.entries.get(key);
    if (e === undefined) return;
    this.clock.clearTimeout(e.handle);
    this.entries.delete(key);
  }

  /** Cancels every timer whose key starts with `prefix` (all the timers of one vhid). */
  cancelPrefix(prefix: string): void {
    for (const key of [...this.entries.keys()]) if (key.startsWith(prefix)) this.cancel(key);
    for (const key of [...this.generations.keys()]) if (key.startsWith(prefix)) this.bump(key);
  }

  has(key: string): boolean {
    return this.entries.has(key);
  }

  /** The deadline of the armed timer, or undefined. */
  deadline(key: string): number | undefined {
    return this.entries.get(key)?.deadline;
  }

  /** A number that changes whenever the key is armed or cancelled. */
  generation(key: string): number {
    return this.generations.get(key) ?? 0;
  }

  clear(): void {
    for (const key of [...this.entries.keys()]) this.cancel(key);
    for (const key of [...this.generations.keys()]) this.bump(key);
  }

  private bump(key: string): void {
    this.generations.set(key, this.generation(key) + 1);
  }

  private schedule(key: string, e: Entry): void {
    const handle = this.clock.setTimeout(() => {
      // A clock that fires a handle it was told to clear must not reach the engine.
      if (this.entries.get(key) !== e || e.handle !== handle) return;
      const now = this.clock.now();
      if (e.deadline - now > EARLY_TOLERANCE_MS) {
        this.schedule(key, e);
        return;
      }
      this.entries.delete(key);
      e.fn({ deadline: e.deadline, now, intervalMs: e.intervalMs });
    }, Math.max(0, e.deadline - this.clock.now()));
    e.handle = handle;
  }
}
