/**
 * Named timers over an injected Clock (src/clock.ts), so that the runtime runs on the
 * system clock in carpd and on a manual clock in tests. The engine asks for timers by name
 * (`arm` replaces an armed timer of the same name, `cancel` stops it); this table keeps the
 * clock handles per key so that a replaced or cancelled timer can never fire.
 */
import type { Clock } from '../clock.js';

export class TimerTable {
  private readonly handles = new Map<string, unknown>();

  constructor(private readonly clock: Clock) {}

  /** Runs `fn` after `ms`, replacing a timer armed under the same key. */
  arm(key: string, ms: number, fn: () => void): void {
    this.cancel(key);
    const handle = this.clock.setTimeout(() => {
      // A clock that fires a handle it was told to clear must not reach the engine.
      if (this.handles.get(key) !== handle) return;
      this.handles.delete(key);
      fn();
    }, Math.max(0, ms));
    this.handles.set(key, handle);
  }

  cancel(key: string): void {
    const h = this.handles.get(key);
    if (h === undefined) return;
    this.clock.clearTimeout(h);
    this.handles.delete(key);
  }

  /** Cancels every timer whose key starts with `prefix` (all the timers of one vhid). */
  cancelPrefix(prefix: string): void {
    for (const key of [...this.handles.keys()]) if (key.startsWith(prefix)) this.cancel(key);
  }

  has(key: string): boolean {
    return this.handles.has(key);
  }

  clear(): void {
    for (const key of [...this.handles.keys()]) this.cancel(key);
  }
}
