/**
 * CARP timing formulas (carp-protocol.md §6) and the comparison of two advertisers.
 */
import type { VhidSettings } from './types.js';

/** CARP_MAXSKEW: the largest skew a demoted node advertises (§6.4). */
export const CARP_MAXSKEW = 240;

/** carp(4): master-down interval = 3 × advbase + advskew/256 seconds. */
export function masterDownMs(advbaseSec: number, skew: number): number {
  return (3 * advbaseSec + skew / 256) * 1000;
}

/** Effective skew advertised: advskew + demotion, clamped to 0..CARP_MAXSKEW. */
export function effectiveSkew(advskew: number, demotion: number): number {
  return Math.max(0, Math.min(CARP_MAXSKEW, advskew + demotion));
}

/** OpenBSD's bow-out advertisement: "this master is leaving" (§7.6). */
export const BOW_OUT = { advbaseSec: 255, advskew: 255 } as const;

/** §6.1: a MASTER advertises every advbase + skew/256 seconds, with its demoted skew. */
export function advertIntervalMs(advbaseSec: number, skew: number): number {
  return (advbaseSec + skew / 256) * 1000;
}

/** §6.4: the skew this node advertises and compares with: clamp(advskew + demotion, 0, 240). */
export function demotedSkew(s: VhidSettings): number {
  return effectiveSkew(s.advskew, s.demotion);
}

/** §6.2: the BACKUP's master-down interval, from its own advbase and its configured skew. */
export function ownMasterDownMs(s: VhidSettings): number {
  return masterDownMs(s.advbaseSec, s.advskew);
}

/**
 * §6.3: an advertiser reduced to a time value in microseconds, as FreeBSD does it (a timeval
 * with the skew converted by integer division: skew 100 → 390 625 µs). Smaller = more frequent
 * = preferred; advbase dominates.
 */
export function timeValueUs(advbaseSec: number, skew: number): number {
  return advbaseSec * 1_000_000 + Math.floor((skew * 1_000_000) / 256);
}

export interface Timers {
  advbaseSec: number;
  advskew: number;
}

/** -1 if `a` advertises more frequently than `b`, 0 if equally, 1 if less frequently. */
export function compareTimers(a: Timers, b: Timers): -1 | 0 | 1 {
  const d = timeValueUs(a.advbaseSec, a.advskew) - timeValueUs(b.advbaseSec, b.advskew);
  return d < 0 ? -1 : d > 0 ? 1 : 0;
}

const OP = { [-1]: '<', 0: '=', 1: '>' } as const;

/**
 * "advbase 1, skew 0 < 100" (same advbase) or "advbase 1 < 2, skew 240 vs 0" (advbase decides):
 * the sender's timers first, ours second.
 */
export function describeComparison(theirs: Timers, ours: Timers): string {
  const op = OP[compareTimers(theirs, ours)];
  if (theirs.advbaseSec === ours.advbaseSec) {
    return `advbase ${theirs.advbaseSec}, skew ${theirs.advskew} ${op} ${ours.advskew}`;
  }
  return `advbase ${theirs.advbaseSec} ${op} ${ours.advbaseSec}, skew ${theirs.advskew} vs ${ours.advskew}`;
}
