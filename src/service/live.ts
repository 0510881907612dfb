/**
 * The live state the service reports, in the backend contract's own types, and the one formula
 * the views need. api/ reads these through here: it never imports kernel/ or engine/.
 */
export type { AdvertSource, CarpCounter, KernelStats, LiveVhid, PfStatus, PfsyncLive, StateChange, VhidParams } from '../kernel/backend.js';
export { effectiveSkew } from '../engine/timing.js';
