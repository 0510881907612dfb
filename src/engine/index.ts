/**
 * The pure CARP engine: state machine, timing formulas and counter (carp-protocol.md §5–§8).
 * It and the VRRPv3 engine below are two protocols on one machine (machine.ts).
 */
export { checkSettings, initialState, ownTimers, step } from './engine.js';
export {
  BOW_OUT,
  CARP_MAXSKEW,
  advertIntervalMs,
  compareTimers,
  demotedSkew,
  describeComparison,
  effectiveSkew,
  masterDownMs,
  ownMasterDownMs,
  timeValueUs,
  type Timers,
} from './timing.js';
export { nextCounter } from './counter.js';
export type * from './types.js';
/** The pure VRRPv3 engine next to it (RFC 5798 / RFC 9568, carp-protocol.md §11). */
export {
  vrrpAdvertisedPriority,
  vrrpCheckSettings,
  vrrpCompareAddresses,
  vrrpInitialState,
  vrrpMasterDownIntervalMs,
  vrrpSkewTimeMs,
  vrrpStep,
} from './vrrp.js';
export type * from './vrrp-types.js';
