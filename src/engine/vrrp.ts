/**
 * The per-VRID VRRPv3 state machine (RFC 5798 §6.4, RFC 9568 with the same rules;
 * carp-protocol.md §11), next to the CARP one (engine.ts) and in its shape:
 *
 *   vrrpStep(state, input, nowMs) -> { state, actions }
 *
 * Pure: no clock, no sockets, no randomness (VRRP has no counter). Timers are `arm`/`cancel`
 * actions that come back as `timer` inputs ('advert' = Adver_Timer, 'master-down' =
 * Master_Down_Timer); every transition carries a cause and a reason in words. `send` carries a
 * priority and an interval instead of CARP's advbase/advskew/counter.
 *
 *   INIT   ── up, priority 255 (address owner) ─────────────────────────────────> MASTER
 *   INIT   ── up ─────────────────────────────────────────────────────────────> BACKUP
 *   BACKUP ── master-down expired (silence | lower priority ignored while
 *             preempting | Skew_Time after a priority-0 resignation) | forced ─> MASTER
 *   MASTER ── higher priority | equal priority from a larger address | forced ─> BACKUP
 *   any    ── down | leave (a MASTER sends priority 0 first) ──────────────────> INIT
 *
 * How it differs from CARP (§6–§7):
 * - The election is by priority, not by timers. Timers only decide who notices a silence first:
 *   Skew_Time = (256 − priority) × Master_Adver_Interval / 256 and Master_Down_Interval =
 *   3 × Master_Adver_Interval + Skew_Time, with Master_Adver_Interval learned from the master
 *   (a BACKUP adopts the master's interval), not the node's own as in CARP.
 * - A preempting BACKUP does not take over on the spot when it hears a lower priority: it
 *   discards the packet, so its master-down timer runs out and it takes over then.
 * - Equal priorities are broken by the larger primary address (unsigned, network order); a
 *   MASTER yields only to a strictly better sender, never to an equal one.
 * - A leaving MASTER sends priority 0 ("resigning"); a BACKUP that hears it takes over after
 *   Skew_Time instead of Master_Down_Interval.
 * - Demotion lowers the priority: clamp(priority − demotion, 1, 254) below 255, never the
 *   owner's 255 (§11.3). That demoted priority is the "local priority" of every rule, Skew_Time
 *   included. It never reaches 0, which would mean resigning.
 *
 * The states, the timers, the actions on entering a state and the inputs whose meaning CARP
 * shares (down, leave, force, stale timers) are the machine's (machine.ts), which drives the CARP
 * engine too, so that one runtime drives either. Entering a state takes the steps RFC 5798 §6.4
 * lists, in CARP's order (the transition is recorded first, as for carp(4)). What is VRRP's is
 * here, as the Protocol the machine asks: the election above, the formulas and the learned
 * interval, what is sent and priority 0, what 'up' does for the owner, the settings. They stay
 * out of the machine because each is where VRRP and CARP differ.
 *
 * Times are milliseconds, fractional where the formulas give fractions (Skew_Time of priority
 * 100 at 1 s is 609.375 ms): intervals are in centiseconds and / 256 is exact in binary.
 */
import { addressBytes } from '../wire/ip.js';
import { VRRP_MAX_INTERVAL_CS, VRRP_PRIORITY_OWNER, VRRP_PRIORITY_RESIGN } from '../wire/vrrp.js';
import {
  advertise,
  armMasterDown,
  enterBackup,
  enterMaster,
  requireInteger,
  seconds,
  send,
  stepMachine,
  type AdvertInputOf,
  type Protocol,
  type StepContext,
} from './machine.js';
import type { VrrpAdvert, VrrpInput, VrrpSettings, VrrpState, VrrpStepResult, VrrpTransitionCause } from './vrrp-types.js';

/** VRRP's types as the machine sees them. */
interface Vrrp {
  state: VrrpState;
  cause: VrrpTransitionCause;
  advert: VrrpAdvert;
  settings: VrrpSettings;
}

type Cx = StepContext<Vrrp>;

/** Throws RangeError for settings a VRRP router must reject (RFC 5798 §5.2, §6.1). */
export function vrrpCheckSettings(s: VrrpSettings): void {
  requireInteger(s.vrid, 1, 255, 'vrid');
  requireInteger(s.priority, 1, VRRP_PRIORITY_OWNER, 'priority');
  requireInteger(s.intervalCs, 1, VRRP_MAX_INTERVAL_CS, 'interval (cs)');
  requireInteger(s.demotion, Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER, 'demotion');
  if (typeof s.preempt !== 'boolean') throw new RangeError(`preempt ${String(s.preempt)} is not a boolean`);
  if (s.acceptMode !== undefined && typeof s.acceptMode !== 'boolean') throw new RangeError(`acceptMode ${String(s.acceptMode)} is not a boolean`);
  if (typeof s.primaryAddress !== 'string' || addressBytes(s.primaryAddress) === undefined) {
    throw new RangeError(`primary address ${String(s.primaryAddress)} is not an IPv4/IPv6 address`);
  }
}

/** The priority this node advertises and compares with: owner 255 as is, else clamp(priority − demotion, 1, 254). */
export function vrrpAdvertisedPriority(s: VrrpSettings): number {
  if (s.priority === VRRP_PRIORITY_OWNER) return VRRP_PRIORITY_OWNER;
  return Math.min(VRRP_PRIORITY_OWNER - 1, Math.max(1, s.priority - s.demotion));
}

/** Skew_Time = ((256 − priority) × Master_Adver_Interval) / 256 centiseconds, in ms. */
export function vrrpSkewTimeMs(priority: number, masterAdverIntervalCs: number): number {
  return ((256 - priority) * masterAdverIntervalCs * 10) / 256;
}

/** Master_Down_Interval = 3 × Master_Adver_Interval + Skew_Time, in ms (100, 1 s → 3609.375). */
export function vrrpMasterDownIntervalMs(priority: number, masterAdverIntervalCs: number): number {
  return 3 * masterAdverIntervalCs * 10 + vrrpSkewTimeMs(priority, masterAdverIntervalCs);
}

/**
 * Orders two primary addresses as unsigned integers in network byte order (IPv4 as 32 bits,
 * IPv6 as 128): -1, 0 or 1. The RFC only ever compares addresses of one family (each family is
 * its own virtual router); for anything else the order stays total — IPv4 before IPv6, text
 * that is no address after both, by its characters — so that two equal-priority masters never
 * both ignore each other.
 */
export function vrrpCompareAddresses(a: string, b: string): -1 | 0 | 1 {
  const x = addressBytes(a);
  const y = addressBytes(b);
  if (!x || !y) {
    if (x) return -1;
    if (y) return 1;
    return a < b ? -1 : a > b ? 1 : 0;
  }
  if (x.length !== y.length) return x.length < y.length ? -1 : 1;
  const c = Buffer.compare(x, y);
  return c < 0 ? -1 : c > 0 ? 1 : 0;
}

/** A new VRID in INIT. Master_Adver_Interval starts as the node's own interval (§6.4.1). */
export function vrrpInitialState(settings: VrrpSettings, nowMs = 0): VrrpState {
  vrrpCheckSettings(settings);
  return {
    settings: { ...settings },
    state: 'INIT',
    sinceMs: nowMs,
    cause: 'created',
    reason: 'created, waiting for the interface',
    masterAdverIntervalCs: settings.intervalCs,
    masterDownFromMs: nowMs,
  };
}

export function vrrpStep(state: VrrpState, input: VrrpInput, nowMs: number): VrrpStepResult {
  return stepMachine(VRRP, state, input, nowMs);
}

const VRRP: Protocol<Vrrp> = {
  onUp,
  onAdvert,
  masterDownExpired,
  onSettings,
  sendAdvert: (cx, s) => {
    send(cx, { priority: vrrpAdvertisedPriority(s.settings), intervalCs: s.settings.intervalCs });
    return s;
  },
  // §6.4.3 Shutdown: "Send an ADVERTISEMENT with Priority = 0".
  sendFarewell: (cx, s) => {
    send(cx, { priority: VRRP_PRIORITY_RESIGN, intervalCs: s.settings.intervalCs });
    return s;
  },
  farewellSent: 'priority 0 advertisement sent',
  masterDownMs,
  // §6.4.3: Adver_Timer restarts with Advertisement_Interval, the first time as every time.
  advertIntervalMs: (s) => s.settings.intervalCs * 10,
  firstAdvertIntervalMs: (s) => s.settings.intervalCs * 10,
  // From now on the master's interval is this node's own.
  enteringMaster: (s) => ({ ...s, masterAdverIntervalCs: s.settings.intervalCs }),
};

function onUp(cx: Cx, s: VrrpState): VrrpState {
  // §6.4.1: the owner becomes MASTER at once; anyone else waits in BACKUP for a master,
  // with Master_Adver_Interval = its own Advertisement_Interval.
  if (s.settings.priority === VRRP_PRIORITY_OWNER) {
    return enterMaster(cx, s, 'up', 'up: address owner (priority 255), MASTER at once');
  }
  const n: VrrpState = { ...s, masterAdverIntervalCs: s.settings.intervalCs };
  const p = vrrpAdvertisedPriority(s.settings);
  return enterBackup(cx, n, 'up', `up: priority ${p}, no master heard yet, master-down in ${seconds(masterDownMs(n))}`);
}

/** The owner preempts whatever Preempt_Mode says (RFC 5798 §6.1). */
function preempts(s: VrrpSettings): boolean {
  return s.preempt || s.priority === VRRP_PRIORITY_OWNER;
}

/** An interval from the wire, made safe to compute with: 0 (undefined by the RFC) counts as 1 cs. */
function learnedInterval(cs: number): number {
  return Math.min(VRRP_MAX_INTERVAL_CS, Math.max(1, Math.floor(cs) || 1));
}

function onAdvert(cx: Cx, s: VrrpState, a: AdvertInputOf<Vrrp>): VrrpState {
  const own = vrrpAdvertisedPriority(s.settings);
  const heard = (ignored: boolean): VrrpState => ({
    ...s,
    lastHeard: { from: a.from, priority: a.priority, intervalCs: a.intervalCs, atMs: cx.nowMs, ignored },
  });

  if (s.state === 'MASTER') {
    // §6.4.3: a resigning peer is answered with an advertisement at once (Adver_Timer reset).
    if (a.priority === VRRP_PRIORITY_RESIGN) return advertise(cx, heard(false));
    // A higher priority, or the same one from a larger primary address, wins: adopt its
    // interval, arm Master_Down_Timer from it, become BACKUP. Anything else is discarded.
    const learned = { masterAdverIntervalCs: learnedInterval(a.intervalCs) };
    if (a.priority > own) {
      return enterBackup(cx, { ...heard(false), ...learned }, 'higher-priority', `higher priority ${a.priority} > ${own} from ${a.from}`);
    }
    if (a.priority === own && vrrpCompareAddresses(a.from, s.settings.primaryAddress) > 0) {
      return enterBackup(
        cx,
        { ...heard(false), ...learned },
        'larger-address',
        `equal priority ${own} from ${a.from}, a larger primary address than ${s.settings.primaryAddress}`,
      );
    }
    return heard(true);
  }

  // §6.4.2, BACKUP.
  if (a.priority === VRRP_PRIORITY_RESIGN) {
    // The master resigns: take over after Skew_Time (from the current Master_Adver_Interval)
    // unless a better backup speaks up first.
    const n = heard(false);
    return armMasterDown(cx, n, vrrpSkewTimeMs(own, n.masterAdverIntervalCs));
  }
  if (!preempts(s.settings) || a.priority >= own) {
    // Accept this master: adopt its interval and restart Master_Down_Timer.
    const n: VrrpState = { ...heard(false), masterAdverIntervalCs: learnedInterval(a.intervalCs) };
    return armMasterDown(cx, n, masterDownMs(n));
  }
  // Preempting a lower priority: discard, so the master-down timer runs out.
  return heard(true);
}

/** BACKUP, Master_Down_Timer fired: why, from what was last heard since it was armed. */
function masterDownExpired(cx: Cx, s: VrrpState): { cause: VrrpTransitionCause; reason: string } {
  const waited = seconds(cx.nowMs - s.masterDownFromMs);
  const h = s.lastHeard;
  if (h && h.atMs >= s.masterDownFromMs) {
    if (h.priority === VRRP_PRIORITY_RESIGN) {
      return { cause: 'resigned', reason: `master ${h.from} resigned (priority 0): Skew_Time ${waited} expired` };
    }
    if (h.ignored) {
      const own = vrrpAdvertisedPriority(s.settings);
      return {
        cause: 'preempt',
        reason: `preempting lower priority ${h.priority} < ${own} of ${h.from}: its advertisements ignored, master-down timer expired after ${waited}`,
      };
    }
  }
  return { cause: 'master-down', reason: `master-down timer expired: no advertisement for ${waited}` };
}

function onSettings(cx: Cx, s: VrrpState, settings: VrrpSettings): VrrpState {
  if (settings.vrid !== s.settings.vrid) {
    throw new RangeError(`settings for vrid ${settings.vrid} given to the engine of vrid ${s.settings.vrid}`);
  }
  vrrpCheckSettings(settings);
  const n: VrrpState = { ...s, settings: { ...settings } };
  // A MASTER whose advertised priority or interval changed advertises at once (and restarts
  // Adver_Timer with the new interval), so that backups re-evaluate it now rather than up to
  // one old interval later. A BACKUP's new priority applies from the next (re)arming of
  // Master_Down_Timer.
  if (s.state !== 'MASTER') return n;
  const changed = vrrpAdvertisedPriority(settings) !== vrrpAdvertisedPriority(s.settings) || settings.intervalCs !== s.settings.intervalCs;
  return changed ? advertise(cx, { ...n, masterAdverIntervalCs: settings.intervalCs }) : n;
}

/** §6.1: the running Master_Down_Interval of this node, from the master's learned interval. */
function masterDownMs(s: VrrpState): number {
  return vrrpMasterDownIntervalMs(vrrpAdvertisedPriority(s.settings), s.masterAdverIntervalCs);
}
