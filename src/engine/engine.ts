/**
 * The per-vhid CARP state machine with FreeBSD carp(4) semantics (carp-protocol.md §5–§8).
 *
 *   step(state, input, nowMs) -> { state, actions }
 *
 * Pure: no clock, no sockets, no Math.random. Timers are `arm`/`cancel` actions and come back
 * as `timer` inputs; the counter's randomness is a seed given to initialState(). Every
 * transition carries a cause and a reason in words.
 *
 *   INIT   ── up ──────────────────────────────────────────────────────────────> BACKUP
 *   BACKUP ── master-down expired | slower master + preempt | master that would
 *             time out (bow-out) | forced ─────────────────────────────────────> MASTER
 *   MASTER ── more frequent or equal advertisement | forced ───────────────────> BACKUP
 *   any    ── down | leave (a MASTER bows out first) ──────────────────────────> INIT
 *
 * The states, timers, the order of the actions on entering a state and the inputs whose meaning
 * VRRP shares (down, leave, force, stale timers) are the machine's (machine.ts), which drives
 * the VRRPv3 engine too. What is CARP's is here, as the Protocol the machine asks: the election
 * by timers (§6.3, §7.2, §7.3), the timer formulas (§6.1, §6.2), what an advertisement carries
 * with its counter (§5) and the bow-out (§7.6), and the settings. They stay out of the machine
 * because VRRP answers each of them differently.
 *
 * Unicast peers (§8) change only where advertisements are sent, not this machine.
 */
import { nextCounter, seedState } from './counter.js';
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
import {
  BOW_OUT,
  advertIntervalMs,
  compareTimers,
  demotedSkew,
  describeComparison,
  ownMasterDownMs,
  timeValueUs,
  type Timers,
} from './timing.js';
import type { Advert, EngineInput, EngineState, StepResult, TransitionCause, VhidSettings } from './types.js';

/** CARP's types as the machine sees them. */
interface Carp {
  state: EngineState;
  cause: TransitionCause;
  advert: Advert;
  settings: VhidSettings;
}

type Cx = StepContext<Carp>;

/** Throws RangeError for settings carp(4) would reject (vhid 1..255, advbase 1..255, advskew 0..254). */
export function checkSettings(s: VhidSettings): void {
  requireInteger(s.vhid, 1, 255, 'vhid');
  requireInteger(s.advbaseSec, 1, 255, 'advbase');
  requireInteger(s.advskew, 0, 254, 'advskew');
  requireInteger(s.demotion, Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER, 'demotion');
}

/** A new vhid in INIT. `seed` feeds the random counters sent before a peer is heard (§5). */
export function initialState(settings: VhidSettings, seed: bigint, nowMs = 0): EngineState {
  checkSettings(settings);
  return {
    settings: { ...settings },
    state: 'INIT',
    sinceMs: nowMs,
    cause: 'created',
    reason: 'created, waiting for the interface',
    masterDownFromMs: nowMs,
    counter: null,
    rng: seedState(seed),
  };
}

/** The timers this node advertises and compares with: own advbase, demoted skew (§6.3, §6.4). */
export function ownTimers(s: VhidSettings): Timers {
  return { advbaseSec: s.advbaseSec, advskew: demotedSkew(s) };
}

export function step(state: EngineState, input: EngineInput, nowMs: number): StepResult {
  return stepMachine(CARP, state, input, nowMs);
}

const CARP: Protocol<Carp> = {
  // §7.1: INIT → BACKUP once the interface can carry the vhid; never INIT → MASTER.
  onUp: (cx, s) => enterBackup(cx, s, 'up', `up: no master heard yet, master-down in ${seconds(ownMasterDownMs(s.settings))}`),
  onAdvert,
  masterDownExpired: (cx, s) => ({
    cause: 'master-down',
    reason: `master-down timer expired: no advertisement for ${seconds(cx.nowMs - s.masterDownFromMs)}`,
  }),
  onSettings,
  sendAdvert: (cx, s) => sendTimers(cx, s, ownTimers(s.settings)),
  // §7.6: the bow-out is an advertisement with advbase 255, skew 255 and the next counter.
  sendFarewell: (cx, s) => sendTimers(cx, s, BOW_OUT),
  farewellSent: 'bow-out advertisement sent',
  // §6.2: the local advbase and the configured (non-demoted) skew.
  masterDownMs: (s) => ownMasterDownMs(s.settings),
  // §6.1: a MASTER advertises every advbase + demoted skew/256.
  advertIntervalMs: (s) => {
    const t = ownTimers(s.settings);
    return advertIntervalMs(t.advbaseSec, t.advskew);
  },
  // §7.4: the first interval uses the configured skew: in carp_master_down_locked() the send
  // reschedules with the demoted skew, then carp_setrun() re-arms the timer with sc_advskew.
  // They differ only while the node is demoted.
  firstAdvertIntervalMs: (s) => advertIntervalMs(s.settings.advbaseSec, s.settings.advskew),
  // Nothing of CARP's own (counter, last heard) changes with the state.
  enteringMaster: (s) => s,
};

function onAdvert(cx: Cx, s: EngineState, a: AdvertInputOf<Carp>): EngineState {
  // §5: an accepted advertisement initialises the counter with the peer's value, in any state.
  const n: EngineState = {
    ...s,
    counter: a.counter,
    lastHeard: { from: a.from, advbaseSec: a.advbaseSec, advskew: a.advskew, atMs: cx.nowMs },
  };
  const ours = ownTimers(s.settings);
  const theirs: Timers = { advbaseSec: a.advbaseSec, advskew: a.advskew };
  const cmp = compareTimers(ours, theirs);
  const vs = describeComparison(theirs, ours);

  if (s.state === 'MASTER') {
    // §7.3: yield to a sender that is more frequent or equal (ties yield on both sides, no
    // address tie-break); a slower sender is ignored — no extra advertisement, no ARP.
    if (cmp < 0) return n;
    return cmp === 0
      ? enterBackup(cx, n, 'equal-timers', `advertisement with equal timers from ${a.from} (${vs}): ties yield`)
      : enterBackup(cx, n, 'more-frequent', `more frequent advertisement from ${a.from} (${vs})`);
  }

  // §7.2, BACKUP, in FreeBSD's order.
  const bowOut = a.advbaseSec === BOW_OUT.advbaseSec && a.advskew === BOW_OUT.advskew;
  const bowOutReason = `bow-out from ${a.from} (advbase 255, skew 255): the master is leaving`;
  // 1. Preemption: our time value strictly smaller than the sender's.
  if (s.settings.preempt && cmp < 0) {
    return bowOut
      ? enterMaster(cx, n, 'bow-out', bowOutReason)
      : enterMaster(cx, n, 'preempt', `preempting a slower master: ${a.from} (${vs})`);
  }
  // 2. The sender advertises more rarely than 3 × our advbase (+ our demoted skew/256): it
  //    would time out anyway. This is what makes a bow-out hand over at once (§7.6).
  const limitUs = timeValueUs(3 * ours.advbaseSec, ours.advskew);
  const theirUs = timeValueUs(a.advbaseSec, a.advskew);
  if (limitUs < theirUs) {
    return bowOut
      ? enterMaster(cx, n, 'bow-out', bowOutReason)
      : enterMaster(
          cx,
          n,
          'master-will-time-out',
          `master will time out: ${a.from} advertises every ${seconds(theirUs / 1000)} (advbase ${a.advbaseSec}, skew ${a.advskew}), ` +
            `longer than 3 × our advbase + skew/256 (${seconds(limitUs / 1000)})`,
        );
  }
  // 3. Otherwise restart the master-down timer (also for a slower master without preemption).
  return armMasterDown(cx, n, ownMasterDownMs(n.settings));
}

function onSettings(cx: Cx, s: EngineState, settings: VhidSettings): EngineState {
  if (settings.vhid !== s.settings.vhid) {
    throw new RangeError(`settings for vhid ${settings.vhid} given to the engine of vhid ${s.settings.vhid}`);
  }
  checkSettings(settings);
  const n: EngineState = { ...s, settings: { ...settings } };
  // §6.4: any change of the demotion makes a MASTER advertise at once (and reschedule). New
  // advbase/advskew values otherwise apply when the running timer is next (re)armed, as in
  // FreeBSD; the master-down interval of a BACKUP too.
  if (s.state === 'MASTER' && settings.demotion !== s.settings.demotion) return advertise(cx, n);
  return n;
}

/** One advertisement with these timers and the next counter (§5). */
function sendTimers(cx: Cx, s: EngineState, t: Timers): EngineState {
  const c = nextCounter(s.counter, s.rng);
  send(cx, { advbaseSec: t.advbaseSec, advskew: t.advskew, counter: c.value });
  return { ...s, counter: c.counter, rng: c.rng };
}
