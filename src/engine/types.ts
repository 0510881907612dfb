/**
 * Types of the pure per-vhid CARP state machine (carp(4) semantics; see
 * reference/carp-protocol.md §5–§8). The engine owns no socket and no timer: the
 * runtime feeds it inputs with the current time and carries out the actions it returns.
 */

/** carp(4)'s states; VRRP's Initialize/Backup/Master map onto them. */
export type CarpState = 'INIT' | 'BACKUP' | 'MASTER';

/** The two timers of a vhid: the MASTER's advertisement timer and the BACKUP's master-down timer. */
export type TimerName = 'advert' | 'master-down';

export interface VhidSettings {
  vhid: number;
  /** 1..255 seconds. */
  advbaseSec: number;
  /** Configured skew, 0..254 (ifconfig rejects 255, §6.4). */
  advskew: number;
  /** net.inet.carp.preempt: a BACKUP takes over from a slower master at once (§7.2 step 1). */
  preempt: boolean;
  /**
   * The node's global demotion (net.inet.carp.demotion), any integer. The advertised skew is
   * clamp(advskew + demotion, 0, 240) (§6.4). The runtime folds in automatic demotions
   * (interface down, send errors, pfsync bulk update, carpd's maintenance mode).
   */
  demotion: number;
}

/** An advertisement as it appears on the wire (already authenticated by the wire layer). */
export interface Advert {
  advbaseSec: number;
  advskew: number;
  /** The 64-bit counter of the packet (§5). */
  counter: bigint;
}

export type EngineInput =
  /** Parent interface up, link up, the vhid has addresses, net.inet.carp.allow=1: INIT → BACKUP. */
  | { kind: 'up' }
  /** Link down, allow=0 or no addresses left: any state → INIT, silently (§7.1, §7.6). */
  | { kind: 'down'; reason: string }
  /** A valid advertisement for this vhid; `from` is the sender's address, for reasons and status. */
  | ({ kind: 'advert'; from: string } & Advert)
  | { kind: 'timer'; timer: TimerName }
  /** New settings for the same vhid (advbase, advskew, preempt or demotion changed). */
  | { kind: 'settings'; settings: VhidSettings }
  /** `ifconfig … vhid N state backup|master`; ignored in INIT. */
  | { kind: 'force'; state: 'BACKUP' | 'MASTER'; reason?: string }
  /** Orderly shutdown: a MASTER sends a bow-out advertisement first (§7.6), then → INIT. */
  | { kind: 'leave'; reason?: string };

/** Why a transition happened, for counters and events; `reason` says it in words. */
export type TransitionCause =
  | 'up'
  | 'down'
  | 'leave'
  | 'forced'
  | 'master-down'
  | 'preempt'
  | 'master-will-time-out'
  | 'bow-out'
  | 'more-frequent'
  | 'equal-timers';

export type Action =
  /** Start (or restart) the named timer; an armed timer of that name is replaced. */
  | { kind: 'arm'; timer: TimerName; afterMs: number }
  | { kind: 'cancel'; timer: TimerName }
  /** Send one advertisement now with exactly these fields (skew already demoted and capped). */
  | ({ kind: 'send' } & Advert)
  | { kind: 'transition'; from: CarpState; to: CarpState; cause: TransitionCause; reason: string }
  /** Take the VIPs: answer ARP/ND for them and announce them (gratuitous ARP, unsolicited NA). */
  | { kind: 'install-vips' }
  /** Give the VIPs up: stop answering ARP/ND for them. */
  | { kind: 'remove-vips' };

/** The last advertisement accepted from a peer. */
export interface HeardAdvert {
  from: string;
  advbaseSec: number;
  advskew: number;
  atMs: number;
}

/** Immutable state of one vhid; only step() makes a new one. */
export interface EngineState {
  readonly settings: VhidSettings;
  readonly state: CarpState;
  /** When the state last changed, and why. */
  readonly sinceMs: number;
  readonly cause: TransitionCause | 'created';
  readonly reason: string;
  /** When the master-down timer was last (re)started; meaningful in BACKUP. */
  readonly masterDownFromMs: number;
  readonly lastHeard?: HeardAdvert;
  /** §5: null until a peer's advertisement is accepted, then the last counter used or heard. */
  readonly counter: bigint | null;
  /** Generator state for the random counters sent before that (seeded by the runtime). */
  readonly rng: bigint;
}

export interface StepResult {
  state: EngineState;
  actions: Action[];
}
