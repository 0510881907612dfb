/**
 * Types of the pure per-VRID VRRPv3 state machine (RFC 5798 §6, RFC 9568 with the same rules;
 * carp-protocol.md §11). Inputs, timers, actions and the state's common fields are the machine's
 * (machine.ts), as for CARP, so that one runtime can drive either. What differs is what an
 * advertisement carries — a priority and an interval in centiseconds instead of
 * advbase/advskew/counter — and the reasons a node changes state.
 */
import type { MachineAction, MachineInput, MachineResult, MachineState } from './machine.js';

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

/**
 * The machine's inputs with VRRP's advertisement. VRRP specifics: `up` goes INIT → BACKUP, or
 * MASTER at once for the address owner (priority 255, RFC 5798 §6.4.1); an advertisement's `from`
 * is the sender's primary address (the IP source); `settings` carries changed priority,
 * interval, preempt, demotion or address; `leave` is the Shutdown event (§6.4.3): a MASTER sends
 * priority 0 first.
 */
export type VrrpInput = MachineInput<VrrpAdvert, VrrpSettings>;

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

/** The machine's actions; `send` carries the priority already demoted. */
export type VrrpAction = MachineAction<VrrpTransitionCause, VrrpAdvert>;

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
export interface VrrpState extends MachineState<VrrpTransitionCause> {
  readonly settings: VrrpSettings;
  /**
   * Master_Adver_Interval (cs): the interval of the current master — learned from its
   * advertisements in BACKUP, this node's own Advertisement_Interval at start-up and while MASTER.
   */
  readonly masterAdverIntervalCs: number;
  readonly lastHeard?: VrrpHeard;
}

export type VrrpStepResult = MachineResult<VrrpState, VrrpAction>;
