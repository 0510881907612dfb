/**
 * The hysteresis of a health track, pure: time is an argument. A track starts `unknown` and
 * holds no demotion; `fall` failed probes in a row take it `down`, `rise` good ones in a row
 * bring it `up` (from unknown too: the first decision is whichever count is reached first).
 * Only `down` demotes, by the track's weight: a node whose probes have not decided yet is not
 * punished for it (a restart does not move the VIPs), and the first `fall` failures after a
 * start still take it down within fall × interval.
 */
import { systemClock, wallDate, type Clock } from '../clock.js';

export type TrackState = 'unknown' | 'up' | 'down';

/** One probe's outcome: whether it passed, how long it took, and in words what it saw. */
export interface ProbeResult {
  ok: boolean;
  ms: number;
  detail: string;
}

export interface TrackStatus {
  state: TrackState;
  /** Monotonic ms when `state` was entered (the track's start for unknown). */
  since: number;
  /** Why the state was entered, in words. */
  reason: string;
  /** Good probes in a row (0 after a failure) and failed probes in a row (0 after a success). */
  successes: number;
  failures: number;
  last?: ProbeResult & { at: number };
  probes: number;
}

export interface Hysteresis {
  rise: number;
  fall: number;
}

export function initialTrackStatus(nowMs: number): TrackStatus {
  return { state: 'unknown', since: nowMs, reason: 'no decision yet: not enough probes', successes: 0, failures: 0, probes: 0 };
}

/** The status after one probe, and the transition it made (if any). */
export function observeProbe(s: TrackStatus, h: Hysteresis, r: ProbeResult, nowMs: number): { status: TrackStatus; changed?: { from: TrackState; to: TrackState } } {
  const successes = r.ok ? s.successes + 1 : 0;
  const failures = r.ok ? 0 : s.failures + 1;
  const next: TrackStatus = { ...s, successes, failures, last: { ...r, at: nowMs }, probes: s.probes + 1 };
  let to: TrackState | undefined;
  if (r.ok && s.state !== 'up' && successes >= h.rise) {
    to = 'up';
    next.reason = `${successes} good probe${successes === 1 ? '' : 's'} in a row (rise ${h.rise}): ${r.detail}`;
  } else if (!r.ok && s.state !== 'down' && failures >= h.fall) {
    to = 'down';
    next.reason = `${failures} failed probe${failures === 1 ? '' : 's'} in a row (fall ${h.fall}): ${r.detail}`;
  }
  if (to === undefined) return { status: next };
  next.state = to;
  next.since = nowMs;
  return { status: next, changed: { from: s.state, to } };
}

/** The demotion a track adds now: its weight while down, else nothing. */
export function trackDemotion(s: Pick<TrackStatus, 'state'>, weight: number): number {
  return s.state === 'down' ? weight : 0;
}

/** One track's live state as the runner last left it, and the demotion it holds now. */
export interface TrackLive {
  kind: string;
  status: TrackStatus;
  demotion: number;
}

/**
 * The live state of every track this process runs (src/track/ writes it, the API and the
 * metrics read it; the service holds one, `service.tracks`). Nothing here is stored: a restart
 * starts every track from unknown.
 */
export class TrackBoard {
  private readonly live = new Map<string, TrackLive>();
  /** The clock the runner's monotonic instants are of (the runner sets its own), to show them as wall time. */
  clock: Pick<Clock, 'now' | 'wall'> = systemClock;

  wallOf(monoMs: number): Date {
    return wallDate(this.clock, monoMs);
  }

  /** Transitions since start, by track and state entered (the metrics' counter). */
  readonly transitions = new Map<string, Map<TrackState, number>>();

  set(name: string, live: TrackLive, changed?: { to: TrackState }): void {
    this.live.set(name, live);
    if (changed) {
      let m = this.transitions.get(name);
      if (!m) this.transitions.set(name, (m = new Map()));
      m.set(changed.to, (m.get(changed.to) ?? 0) + 1);
    }
  }

  /** A track removed: its live state and its series go (a track of that name added later starts at 0). */
  delete(name: string): void {
    this.live.delete(name);
    this.transitions.delete(name);
  }

  get(name: string): TrackLive | undefined {
    return this.live.get(name);
  }

  entries(): [string, TrackLive][] {
    return [...this.live];
  }

  /** The names of the tracks that are down now, sorted. */
  down(): string[] {
    return [...this.live].filter(([, l]) => l.status.state === 'down').map(([n]) => n).sort();
  }
}
