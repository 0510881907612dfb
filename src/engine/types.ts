/**
 * Types of the pure per-vhid CARP state machine (carp(4) semantics; see
 * reference/carp-protocol.md §5–§8). The engine owns no socket and no timer: the
 * runtime feeds it inputs with the current time and carries out the actions it returns.
 */

import type { MachineAction, MachineInput, MachineResult, MachineState } from './machine.js';

/** The states and timers are the machine's (machine.ts); re-exported under their usual names. */
export type { CarpState, TimerName } from './machine.js';

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

/**
 * The machine's inputs with CARP's advertisement. CARP specifics: `up` goes INIT → BACKUP, never
 * straight to MASTER (§7.1); `down` covers link down, allow=0 and no addresses left (§7.1, §7.6);
 * `settings` carries changed advbase, advskew, preempt or demotion; `leave` makes a MASTER send a
 * bow-out advertisement first (§7.6).
 */
export type EngineInput = MachineInput<Advert, VhidSettings>;

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

/** The machine's actions; `send` carries the skew already demoted and capped (§6.4). */
export type Action = MachineAction<TransitionCause, Advert>;

/** The last advertisement accepted from a peer. */
export interface HeardAdvert {
  from: string;
  advbaseSec: number;
  advskew: number;
  atMs: number;
}

/** Immutable state of one vhid; only step() makes a new one. */
export interface EngineState extends MachineState<TransitionCause> {
  readonly settings: VhidSettings;
  readonly lastHeard?: HeardAdvert;
  /** §5: null until a peer's advertisement is accepted, then the last counter used or heard. */
  readonly counter: bigint | null;
  /** Generator state for the random counters sent before that (seeded by the runtime). */
  readonly rng: bigint;
}

export type StepResult = MachineResult<EngineState, Action>;
