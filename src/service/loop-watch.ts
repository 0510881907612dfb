/**
 * The control loop, watched. carpd's advertisements, master-down timers, API and sync all run
 * on one Node.js event loop: while it does not run (a long computation, the host swapping, the
 * process stopped), no advertisement leaves and no timer fires, and a peer may take over.
 *
 * Two measures:
 *
 * - the delay: Node's monitorEventLoopDelay samples how late a 10 ms timer fires; carpd keeps
 *   one histogram since it started (GET /v1/stats `eventLoop.delayMs`, the Prometheus
 *   histogram `carpd_event_loop_delay_seconds`), less the 10 ms of the sampling itself;
 * - the stalls: a small unref'd timer due every PERIOD_MS measures its own lateness on the
 *   monotonic clock. Lateness beyond the stall threshold, the shortest advertisement interval
 *   configured (at least MIN_STALL_THRESHOLD_MS; DEFAULT_STALL_THRESHOLD_MS without any vhid),
 *   is a stall: counted, and published as a `loop.stalled` event (logged at warn) once carpd
 *   runs again, naming the vhids whose advertisement interval is shorter than the stall.
 *
 * StallDetector is the pure part (time is an argument); LoopWatch arms the timer and the
 * histogram.
 */
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import type { Logger } from 'pino';
import type { DesiredState, VipProtocol } from '../config/model.js';
import type { EventBodies, EventBus } from './events.js';

/** How often the stall watch's timer is due (ms). */
export const PERIOD_MS = 100;
/** The stall threshold without any vhid: CARP's default advertisement interval. */
export const DEFAULT_STALL_THRESHOLD_MS = 1000;
/** The stall threshold is never below this, however short an interval (a VRRPv3 interval of 1 cs). */
export const MIN_STALL_THRESHOLD_MS = 50;
/** monitorEventLoopDelay's sampling period (ms); each sample is the time between two of its timers. */
export const SAMPLE_RESOLUTION_MS = 10;

/** A vhid and how often it advertises. */
export interface TimedVhid {
  interface: string;
  vhid: number;
  protocol: VipProtocol;
  /** CARP: advbase + advskew/256 s; VRRPv3: the interval in centiseconds × 10 (ms). */
  intervalMs: number;
}

export type LoopStall = EventBodies['loop.stalled'];

/** The advertisement interval of each vhid of the desired state, by interface and vhid. */
export function advertisementIntervals(state: Pick<DesiredState, 'vips'>): TimedVhid[] {
  const out = new Map<string, TimedVhid>();
  for (const v of state.vips) {
    const intervalMs = v.protocol === 'vrrpv3' ? (v.vrrpInterval ?? 100) * 10 : v.advbaseSec * 1000 + (v.advskew * 1000) / 256;
    const key = `${v.interface}\u0000${v.vhid}`;
    const had = out.get(key);
    if (!had || intervalMs < had.intervalMs) out.set(key, { interface: v.interface, vhid: v.vhid, protocol: v.protocol, intervalMs: Math.round(intervalMs * 1000) / 1000 });
  }
  return [...out.values()].sort((a, b) => a.interface.localeCompare(b.interface) || a.vhid - b.vhid);
}

/** The stall threshold for these vhids: their shortest interval (at least MIN_STALL_THRESHOLD_MS), or DEFAULT_STALL_THRESHOLD_MS for none. */
export function stallThresholdMs(vhids: readonly TimedVhid[]): number {
  if (vhids.length === 0) return DEFAULT_STALL_THRESHOLD_MS;
  return Math.max(MIN_STALL_THRESHOLD_MS, Math.min(...vhids.map((v) => v.intervalMs)));
}

/** The stall line: how long, and which vhids' timers it delayed. */
export function stallMessage(s: LoopStall): string {
  const named = s.vhids.map((v) => `${v.interface} vhid ${v.vhid} (${v.intervalMs} ms)`).join(', ');
  return (
    `the event loop stalled for ${s.ms} ms (threshold ${s.thresholdMs} ms, the shortest advertisement interval): ` +
    (named ? `timers delayed for ${named}` : 'no vhid configured')
  );
}

/**
 * Pure: fed the monotonic time at which the watch's timer ran (`nowMs`) and the vhids, says
 * whether the loop stalled since the previous run, and counts the stalls.
 */
export class StallDetector {
  private due?: number;
  stalls = 0;
  stalledMs = 0;
  last: LoopStall | null = null;

  constructor(readonly periodMs = PERIOD_MS) {}

  /** The timer was armed at `nowMs` (or ran and is armed again): it is due `periodMs` later. */
  armed(nowMs: number): void {
    this.due = nowMs + this.periodMs;
  }

  /**
   * The timer ran at `nowMs` (`wallMs`: the wall-clock time, for the record). A lateness over
   * the threshold is a stall: counted, returned, with the vhids whose interval is shorter. The
   * timer is then due again `periodMs` later.
   */
  ran(nowMs: number, vhids: readonly TimedVhid[], wallMs: number): LoopStall | undefined {
    const due = this.due;
    this.armed(nowMs);
    if (due === undefined) return undefined;
    const late = nowMs - due;
    const thresholdMs = stallThresholdMs(vhids);
    if (!(late > thresholdMs)) return undefined;
    const ms = Math.round(late);
    const stall: LoopStall = { at: new Date(wallMs).toISOString(), ms, thresholdMs, vhids: vhids.filter((v) => v.intervalMs < late).map((v) => ({ ...v })) };
    this.stalls++;
    this.stalledMs += ms;
    this.last = stall;
    return stall;
  }
}

/** What a histogram of samples answers (Node's IntervalHistogram and RecordableHistogram; a fake in tests). */
export interface SampleHistogram {
  readonly count: number;
  readonly min: number;
  readonly max: number;
  percentile(p: number): number;
}

/**
 * How many samples are at most each bound (same unit as the samples), from the histogram's
 * percentiles: for each bound, the highest rank whose value does not exceed it (a binary search
 * over ranks; HDR histograms are exact to 3 significant digits).
 */
export function countsAtMost(h: SampleHistogram, bounds: readonly number[]): number[] {
  const n = h.count;
  // Ascending bounds: the search for one starts from the count of the one before.
  let prev = { bound: -Infinity, count: 0 };
  return bounds.map((b) => {
    if (n === 0 || h.min > b) return 0;
    if (h.max <= b) return n;
    // percentile((r / n) × 100) is the r-th smallest sample (1-based). Invariant: rank lo ≤ b, rank hi > b.
    let lo = b >= prev.bound ? prev.count : 0;
    let hi = n;
    while (hi - lo > 1) {
      const mid = Math.floor((lo + hi) / 2);
      if (h.percentile(Math.min(100, (mid / n) * 100)) <= b) lo = mid;
      else hi = mid;
    }
    prev = { bound: b, count: lo };
    return lo;
  });
}

/** Bucket bounds of carpd_event_loop_delay_seconds: from a busy loop's milliseconds to a stopped process's seconds. */
export const DELAY_BUCKETS_SECONDS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export interface EventLoopStats {
  delayMs: { p50: number; p99: number; max: number };
  stalls: number;
  stalledMs: number;
  stallThresholdMs: number;
  lastStall: LoopStall | null;
}

export interface DelayHistogram {
  /** Cumulative counts, one per DELAY_BUCKETS_SECONDS bound. */
  buckets: number[];
  count: number;
  /** Seconds. */
  sum: number;
}

export interface LoopWatchOptions {
  /** The vhids and their intervals, read at each stall (e.g. `advertisementIntervals(service.desired())`). */
  vhids: () => readonly TimedVhid[];
  /** Where a stall is published (and logged at warn); without it, logged to `logger`. */
  events?: EventBus;
  logger?: Logger;
  periodMs?: number;
  /** Monotonic ms (default performance.now). */
  now?: () => number;
  /** Wall-clock ms, for the stall's `at` (default Date.now). */
  wallNow?: () => number;
}

const ns = (ms: number) => ms * 1e6;
const round3 = (x: number) => Math.round(x * 1000) / 1000;

/** The watch: the delay histogram and the stall timer. `start()` arms both; neither keeps the process up. */
export class LoopWatch {
  readonly detector: StallDetector;
  private readonly histogram: IntervalHistogram;
  private timer?: NodeJS.Timeout;
  private readonly now: () => number;
  private readonly wallNow: () => number;
  private buckets: number[] = DELAY_BUCKETS_SECONDS.map(() => 0);

  constructor(private readonly opts: LoopWatchOptions) {
    this.detector = new StallDetector(opts.periodMs ?? PERIOD_MS);
    this.histogram = monitorEventLoopDelay({ resolution: SAMPLE_RESOLUTION_MS });
    this.now = opts.now ?? (() => performance.now());
    this.wallNow = opts.wallNow ?? Date.now;
  }

  start(): this {
    if (this.timer) return this;
    this.histogram.enable();
    this.detector.armed(this.now());
    this.arm();
    return this;
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.histogram.disable();
  }

  private arm(): void {
    this.timer = setTimeout(() => {
      this.check(this.now());
      if (this.timer) this.arm();
    }, this.detector.periodMs);
    this.timer.unref();
  }

  /** The timer ran at `nowMs`: a stall is published (or logged) at warn. */
  check(nowMs: number): LoopStall | undefined {
    const stall = this.detector.ran(nowMs, this.opts.vhids(), this.wallNow());
    if (!stall) return undefined;
    const msg = stallMessage(stall);
    if (this.opts.events) this.opts.events.publish('loop.stalled', stall, { level: 'warn', msg });
    else this.opts.logger?.warn({ event: 'loop.stalled', ...stall }, msg);
    return stall;
  }

  /** The delay of a sample: the time between two of the sampler's timers, less its period (ms). */
  private delayMs(sampleNs: number): number {
    return Math.max(0, round3((sampleNs - ns(SAMPLE_RESOLUTION_MS)) / 1e6));
  }

  stats(): EventLoopStats {
    const h = this.histogram;
    const some = h.count > 0;
    return {
      delayMs: { p50: some ? this.delayMs(h.percentile(50)) : 0, p99: some ? this.delayMs(h.percentile(99)) : 0, max: some ? this.delayMs(h.max) : 0 },
      stalls: this.detector.stalls,
      stalledMs: this.detector.stalledMs,
      stallThresholdMs: stallThresholdMs(this.opts.vhids()),
      lastStall: this.detector.last,
    };
  }

  /** The delay since carpd started, as a cumulative histogram (DELAY_BUCKETS_SECONDS); counts never go down. */
  delayHistogram(): DelayHistogram {
    const h = this.histogram;
    const counts = countsAtMost(
      h,
      DELAY_BUCKETS_SECONDS.map((s) => ns(s * 1000 + SAMPLE_RESOLUTION_MS)),
    );
    this.buckets = counts.map((c, i) => Math.max(c, this.buckets[i]!));
    const count = h.count;
    const sum = count > 0 ? Math.max(0, (h.mean - ns(SAMPLE_RESOLUTION_MS)) * count) / 1e9 : 0;
    return { buckets: this.buckets.map((c) => Math.min(c, count)), count, sum };
  }
}
