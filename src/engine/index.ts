/** The pure CARP engine: state machine, timing formulas and counter (carp-protocol.md §5–§8). */
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
