/**
 * Failed authentications, counted and limited per source. A source that presents
 * `maxFailures` invalid tokens within `windowMs` is answered 429 CARPD_ERR_TOO_MANY_FAILURES
 * (with `Retry-After`) on every authenticated request, whatever its token, for `blockMs`:
 * answering a correct guess differently from a wrong one would let the guessing go on.
 *
 * A source is an IPv4 address, or an IPv6 address by its /64 (one host usually holds a whole
 * /64). The table holds at most `maxSources` sources; a new one beyond that takes the place of
 * the one used least recently, so a flood of sources costs bounded memory (and can at worst end
 * a block early). Missing tokens are counted but do not count towards the limit: they guess
 * nothing. Time comes from the injected clock, so the windows can be followed on a manual one.
 */
import { systemClock, type Clock } from '../clock.js';
import { canonicalIp, ipBytes } from '../wire/address.js';

export interface AuthLimitOptions {
  maxFailures: number;
  windowMs: number;
  blockMs: number;
  maxSources: number;
}

export const AUTH_LIMIT_DEFAULTS: AuthLimitOptions = { maxFailures: 10, windowMs: 60_000, blockMs: 60_000, maxSources: 4096 };

interface Entry {
  /** Invalid tokens since windowStart. */
  failures: number;
  windowStart: number;
  /** Answered 429 until then. */
  blockedUntil?: number;
}

/** How a request failed authentication. */
export type AuthFailure = 'missing token' | 'invalid token';

/** The source a request is counted under: an IPv4 address, or an IPv6 address's /64. */
export function sourceKey(address: string | undefined): string {
  if (address === undefined) return 'unknown';
  const v4mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (v4mapped) return v4mapped[1];
  const ip = canonicalIp(address);
  if (!ip) return address;
  if (ip.family === 4) return ip.address;
  const b = ipBytes(ip.address);
  const groups = [0, 2, 4, 6].map((i) => b.readUInt16BE(i).toString(16));
  return `${groups.join(':')}::/64`;
}

export class AuthLimiter {
  private readonly opts: AuthLimitOptions;
  private readonly clock: Pick<Clock, 'now'>;
  private readonly table = new Map<string, Entry>();
  private readonly counts = { missingToken: 0, invalidToken: 0, throttled: 0 };

  constructor(opts: Partial<AuthLimitOptions> = {}, clock: Pick<Clock, 'now'> = systemClock) {
    this.opts = { ...AUTH_LIMIT_DEFAULTS, ...opts };
    this.clock = clock;
  }

  /** Seconds until `source` is answered again (at least 1), or undefined when it is not blocked. */
  blocked(source: string): number | undefined {
    const e = this.table.get(source);
    if (e?.blockedUntil === undefined) return undefined;
    const left = e.blockedUntil - this.clock.now();
    if (left <= 0) {
      this.table.delete(source);
      return undefined;
    }
    return Math.max(1, Math.ceil(left / 1000));
  }

  /** A request refused because its source is blocked. */
  throttled(): void {
    this.counts.throttled++;
  }

  /**
   * Counts a failed authentication; for an invalid token, whether it blocked the source just
   * now (and for how many seconds).
   */
  fail(source: string, why: AuthFailure): { blockedForSec?: number } {
    if (why === 'missing token') {
      this.counts.missingToken++;
      return {};
    }
    this.counts.invalidToken++;
    const now = this.clock.now();
    let e = this.table.get(source);
    if (e) this.table.delete(source); // re-inserted below: the Map's order is the order of use
    if (!e || (e.blockedUntil === undefined && now - e.windowStart >= this.opts.windowMs)) e = { failures: 0, windowStart: now };
    e.failures++;
    let blockedForSec: number | undefined;
    if (e.blockedUntil === undefined && e.failures >= this.opts.maxFailures) {
      e.blockedUntil = now + this.opts.blockMs;
      blockedForSec = Math.ceil(this.opts.blockMs / 1000);
    }
    this.table.set(source, e);
    while (this.table.size > this.opts.maxSources) this.table.delete(this.table.keys().next().value!);
    return { blockedForSec };
  }

  /** Sources in the table now (at most maxSources). */
  get size(): number {
    return this.table.size;
  }

  /** The counters of GET /v1/stats: failures since start by kind, refusals, sources blocked now. */
  stats(): { authFailures: { missingToken: number; invalidToken: number }; throttled: number; blockedSources: number } {
    const now = this.clock.now();
    let blockedSources = 0;
    for (const e of this.table.values()) if (e.blockedUntil !== undefined && e.blockedUntil > now) blockedSources++;
    return { authFailures: { missingToken: this.counts.missingToken, invalidToken: this.counts.invalidToken }, throttled: this.counts.throttled, blockedSources };
  }
}
