/**
 * Types of the pure per-VRID VRRPv3 state machine (RFC 5798 §6, RFC 9568 with the same rules;
 * carp-protocol.md §11). They mirror the CARP engine's types (types.ts) so that one runtime can
 * drive either: the same input kinds, the same timer names, the same action kinds. What differs
 * is what an advertisement carries — a priority and an interval in centiseconds instead of
 * advbase/advskew/counter — and the reasons a node changes state.
 */
import type { CarpState, TimerName } from './types.js';

export interface VrrpSettings {
  /** Virtual Router ID, 1..255. */
  vrid: number;
  /** 1..254 for a backup (default 100); 255 = the owner of the virtual addresses. */
  priority: number;
  /** Advertisement_Interval, 1..4095 centiseconds (default 100 = 1 s). */
  intervalCs: number;
  /**
   * Preempt_Mode: a BACKUP ignores a lower-priority master, so its master-down timer runs out.
   * RFC default true; the runtime passes its global (net.inet.carp.preempt-like) setting. The
   * address owner (priority 255) preempts regardless (RFC 5798 §6.1).
   */
  preempt: boolean;
  /** Accept_Mode (default false): whether a non-owner MASTER accepts packets to the VIPs. The runtime's business; carried, not used here. */
  acceptMode?: boolean;
  /**
   * The node's global demotion, any integer. The advertised priority is
   * clamp(priority − demotion, 1, 254) below 255; the owner's 255 is never demoted (§11.3,
   * FreeBSD D55558). It is the "local priority" of every RFC rule.
   */
  demotion: number;
  /** This node's own (primary) address on the interface: the tie-break between equal priorities. */
  primaryAddress: string;
}

/** A VRRPv3 advertisement as the engine needs it (the wire layer has checked the rest). */
export interface VrrpAdvert {
  /** 0..255: 0 = the master is resigning, 255 = the address owner. */
  priority: number;
  /** Max Advert Interval of the packet, centiseconds (12 bits). */
  intervalCs: number;
}

export type VrrpInput =
  /** The interface can carry the VRID: INIT → BACKUP, or MASTER at once for the owner (priority 255). */
  | { kind: 'up' }
  /** Link down / no addresses: any state → INIT, silently. */
  | { kind: 'down'; reason: string }
  /** A valid advertisement for this VRID; `from` is the sender's primary address (IP source). */
  | ({ kind: 'advert'; from: string } & VrrpAdvert)
  | { kind: 'timer'; timer: TimerName }
  /** New settings for the same VRID (priority, interval, preempt, demotion, address). */
  | { kind: 'settings'; settings: VrrpSettings }
  /** The administrator moves the VRID; ignored in INIT. */
  | { kind: 'force'; state: 'BACKUP' | 'MASTER'; reason?: string }
  /** Shutdown event (RFC 5798 §6.4.3): a MASTER sends priority 0 first, then → INIT. */
  | { kind: 'leave'; reason?: string };

/**
 * Why a transition happened; `reason` says it in words. Shared with CARP where the meaning is
 * the same ('up', 'down', 'leave', 'forced', 'master-down', 'preempt'); VRRP adds:
 * - 'resigned': the master sent priority 0 and this BACKUP took over after Skew_Time;
 * - 'higher-priority': a MASTER heard a higher priority;
 * - 'larger-address': a MASTER heard its own priority from a numerically larger primary address.
 * 'preempt' here means: a lower-priority master was ignored until the master-down timer ran out.
 */
export type VrrpTransitionCause =
  | 'up'
  | 'down'
  | 'leave'
  | 'forced'
  | 'master-down'
  | 'preempt'
  | 'resigned'
  | 'higher-priority'
  | 'larger-address';

export type VrrpAction =
  /** Start (or restart) the named timer; an armed timer of that name is replaced. */
  | { kind: 'arm'; timer: TimerName; afterMs: number }
  | { kind: 'cancel'; timer: TimerName }
  /** Send one advertisement now with exactly these fields (priority already demoted). */
  | { kind: 'send'; priority: number; intervalCs: number }
  | { kind: 'transition'; from: CarpState; to: CarpState; cause: VrrpTransitionCause; reason: string }
  /** Take the VIPs: answer ARP/ND for them and announce them (gratuitous ARP, unsolicited NA). */
  | { kind: 'install-vips' }
  /** Give the VIPs up: stop answering ARP/ND for them. */
  | { kind: 'remove-vips' };

/** The last advertisement received from a peer, acted on or not. */
export interface VrrpHeard {
  from: string;
  priority: number;
  intervalCs: number;
  atMs: number;
  /**
   * True when it was discarded: a preempting BACKUP ignoring a lower priority (so that its
   * master-down timer runs out), or a MASTER ignoring a lower or losing equal priority.
   */
  ignored: boolean;
}

/** Immutable state of one VRID; only vrrpStep() makes a new one. */
export interface VrrpState {
  readonly settings: VrrpSettings;
  readonly state: CarpState;
  /** When the state last changed, and why. */
  readonly sinceMs: number;
  readonly cause: VrrpTransitionCause | 'created';
  readonly reason: string;
  /**
   * Master_Adver_Interval (cs): the interval of the current master — learned from its
   * advertisements in BACKUP, this node's own Advertisement_Interval at start-up and while MASTER.
   */
  readonly masterAdverIntervalCs: number;
  /** When the master-down timer was last (re)started; meaningful in BACKUP. */
  readonly masterDownFromMs: number;
  readonly lastHeard?: VrrpHeard;
}

export interface VrrpStepResult {
  state: VrrpState;
  actions: VrrpAction[];
}
