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
 * Unicast peers (§8) change only where advertisements are sent, not this machine.
 */
import { nextCounter, seedState } from './counter.js';
import {
  BOW_OUT,
  advertIntervalMs,
  compareTimers,
  demotedSkew,
  describeComparison,
  ownMasterDownMs,
  seconds,
  timeValueUs,
  type Timers,
} from './timing.js';
import type { Action, EngineInput, EngineState, StepResult, TimerName, TransitionCause, VhidSettings } from './types.js';

type Out = Action[];

/** Throws RangeError for settings carp(4) would reject (vhid 1..255, advbase 1..255, advskew 0..254). */
export function checkSettings(s: VhidSettings): void {
  const int = (v: number, lo: number, hi: number, name: string) => {
    if (!Number.isInteger(v) || v < lo || v > hi) throw new RangeError(`${name} ${v} is not an integer in ${lo}..${hi}`);
  };
  int(s.vhid, 1, 255, 'vhid');
  int(s.advbaseSec, 1, 255, 'advbase');
  int(s.advskew, 0, 254, 'advskew');
  int(s.demotion, Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER, 'demotion');
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
  const actions: Out = [];
  return { state: dispatch(state, input, nowMs, actions), actions };
}

function dispatch(s: EngineState, input: EngineInput, now: number, out: Out): EngineState {
  switch (input.kind) {
    case 'up':
      // §7.1: INIT → BACKUP once the interface can carry the vhid; never INIT → MASTER.
      if (s.state !== 'INIT') return s;
      return toBackup(s, now, out, 'up', `up: no master heard yet, master-down in ${seconds(ownMasterDownMs(s.settings))}`);
    case 'down':
      // §7.1, §7.6: link down / allow=0 / no addresses → INIT without sending anything.
      return s.state === 'INIT' ? s : toInit(s, now, out, 'down', input.reason, false);
    case 'leave': {
      if (s.state === 'INIT') return s;
      const why = input.reason ?? 'orderly shutdown';
      return toInit(s, now, out, 'leave', s.state === 'MASTER' ? `${why}: bow-out advertisement sent` : why, true);
    }
    case 'advert':
      return onAdvert(s, input, now, out);
    case 'timer':
      return onTimer(s, input.timer, now, out);
    case 'settings':
      return onSettings(s, input.settings, out);
    case 'force': {
      // `ifconfig … state master|backup`: no effect in INIT or when already in that state.
      if (s.state === 'INIT' || s.state === input.state) return s;
      const why = input.reason ?? `forced to ${input.state} by the administrator`;
      return input.state === 'MASTER' ? toMaster(s, now, out, 'forced', why) : toBackup(s, now, out, 'forced', why);
    }
  }
}

function onAdvert(s: EngineState, a: Extract<EngineInput, { kind: 'advert' }>, now: number, out: Out): EngineState {
  // §7.1: INIT ignores advertisements.
  if (s.state === 'INIT') return s;
  // §5: an accepted advertisement initialises the counter with the peer's value, in any state.
  const n: EngineState = {
    ...s,
    counter: a.counter,
    lastHeard: { from: a.from, advbaseSec: a.advbaseSec, advskew: a.advskew, atMs: now },
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
      ? toBackup(n, now, out, 'equal-timers', `advertisement with equal timers from ${a.from} (${vs}): ties yield`)
      : toBackup(n, now, out, 'more-frequent', `more frequent advertisement from ${a.from} (${vs})`);
  }

  // §7.2, BACKUP, in FreeBSD's order.
  const bowOut = a.advbaseSec === BOW_OUT.advbaseSec && a.advskew === BOW_OUT.advskew;
  const bowOutReason = `bow-out from ${a.from} (advbase 255, skew 255): the master is leaving`;
  // 1. Preemption: our time value strictly smaller than the sender's.
  if (s.settings.preempt && cmp < 0) {
    return bowOut
      ? toMaster(n, now, out, 'bow-out', bowOutReason)
      : toMaster(n, now, out, 'preempt', `preempting a slower master: ${a.from} (${vs})`);
  }
  // 2. The sender advertises more rarely than 3 × our advbase (+ our demoted skew/256): it
  //    would time out anyway. This is what makes a bow-out hand over at once (§7.6).
  const limitUs = timeValueUs(3 * ours.advbaseSec, ours.advskew);
  const theirUs = timeValueUs(a.advbaseSec, a.advskew);
  if (limitUs < theirUs) {
    return bowOut
      ? toMaster(n, now, out, 'bow-out', bowOutReason)
      : toMaster(
          n,
          now,
          out,
          'master-will-time-out',
          `master will time out: ${a.from} advertises every ${seconds(theirUs / 1000)} (advbase ${a.advbaseSec}, skew ${a.advskew}), ` +
            `longer than 3 × our advbase + skew/256 (${seconds(limitUs / 1000)})`,
        );
  }
  // 3. Otherwise restart the master-down timer (also for a slower master without preemption).
  return armMasterDown(n, now, out);
}

function onTimer(s: EngineState, timer: TimerName, now: number, out: Out): EngineState {
  // A timer that fires in a state that does not own it is stale and ignored.
  if (timer === 'advert') return s.state === 'MASTER' ? advertise(s, out) : s;
  if (s.state !== 'BACKUP') return s;
  return toMaster(s, now, out, 'master-down', `master-down timer expired: no advertisement for ${seconds(now - s.masterDownFromMs)}`);
}

function onSettings(s: EngineState, settings: VhidSettings, out: Out): EngineState {
  if (settings.vhid !== s.settings.vhid) {
    throw new RangeError(`settings for vhid ${settings.vhid} given to the engine of vhid ${s.settings.vhid}`);
  }
  checkSettings(settings);
  const n: EngineState = { ...s, settings: { ...settings } };
  // §6.4: any change of the demotion makes a MASTER advertise at once (and reschedule). New
  // advbase/advskew values otherwise apply when the running timer is next (re)armed, as in
  // FreeBSD; the master-down interval of a BACKUP too.
  if (s.state === 'MASTER' && settings.demotion !== s.settings.demotion) return advertise(n, out);
  return n;
}

/** MASTER: send one advertisement with the current timers and reschedule the next (§6.1). */
function advertise(s: EngineState, out: Out): EngineState {
  const t = ownTimers(s.settings);
  const n = send(s, t, out);
  out.push({ kind: 'arm', timer: 'advert', afterMs: advertIntervalMs(t.advbaseSec, t.advskew) });
  return n;
}

function send(s: EngineState, t: Timers, out: Out): EngineState {
  const c = nextCounter(s.counter, s.rng);
  out.push({ kind: 'send', advbaseSec: t.advbaseSec, advskew: t.advskew, counter: c.value });
  return { ...s, counter: c.counter, rng: c.rng };
}

/** §6.2: restart master-down with the local advbase and the configured (non-demoted) skew. */
function armMasterDown(s: EngineState, now: number, out: Out): EngineState {
  out.push({ kind: 'arm', timer: 'master-down', afterMs: ownMasterDownMs(s.settings) });
  return { ...s, masterDownFromMs: now };
}

function transition(s: EngineState, to: EngineState['state'], now: number, out: Out, cause: TransitionCause, reason: string): EngineState {
  out.push({ kind: 'transition', from: s.state, to, cause, reason });
  return { ...s, state: to, sinceMs: now, cause, reason };
}

/** INIT/MASTER → BACKUP (§7.1): stop advertising, arm master-down, withdraw the VIPs; no packet. */
function toBackup(s: EngineState, now: number, out: Out, cause: TransitionCause, reason: string): EngineState {
  const wasMaster = s.state === 'MASTER';
  if (wasMaster) out.push({ kind: 'cancel', timer: 'advert' });
  const n = armMasterDown(transition(s, 'BACKUP', now, out, cause, reason), now, out);
  if (wasMaster) out.push({ kind: 'remove-vips' });
  return n;
}

/**
 * BACKUP → MASTER (§7.4), in FreeBSD's order: state MASTER, one advertisement at once, the VIPs
 * announced (gratuitous ARP / unsolicited NA) and answered for, the advertisement timer armed.
 * The first interval uses the configured skew: in carp_master_down_locked() the send reschedules
 * with the demoted skew, then carp_setrun() re-arms the timer with sc_advskew. Later intervals
 * use the demoted skew (§6.1). They differ only while the node is demoted.
 */
function toMaster(s: EngineState, now: number, out: Out, cause: TransitionCause, reason: string): EngineState {
  out.push({ kind: 'cancel', timer: 'master-down' });
  const n = send(transition(s, 'MASTER', now, out, cause, reason), ownTimers(s.settings), out);
  out.push({ kind: 'install-vips' });
  out.push({ kind: 'arm', timer: 'advert', afterMs: advertIntervalMs(s.settings.advbaseSec, s.settings.advskew) });
  return n;
}

/** Any → INIT (§7.1): timers stopped, VIPs withdrawn; a leaving MASTER bows out first (§7.6). */
function toInit(s: EngineState, now: number, out: Out, cause: TransitionCause, reason: string, bowOut: boolean): EngineState {
  const wasMaster = s.state === 'MASTER';
  out.push({ kind: 'cancel', timer: wasMaster ? 'advert' : 'master-down' });
  const n = transition(wasMaster && bowOut ? send(s, BOW_OUT, out) : s, 'INIT', now, out, cause, reason);
  if (wasMaster) out.push({ kind: 'remove-vips' });
  return n;
}
