/**
 * The state machine both engines are: CARP (engine.ts, carp(4), carp-protocol.md §5–§8) and
 * VRRPv3 (vrrp.ts, RFC 5798 §6.4 / RFC 9568, carp-protocol.md §11). One runtime drives both
 * through the same inputs, timers and actions, so what they have in common is written once here:
 *
 *   stepMachine(protocol, state, input, nowMs) -> { state, actions }
 *
 *   INIT   ── up (the protocol says where to) ────────────────────────────> BACKUP | MASTER
 *   BACKUP ── master-down expired (the protocol says why) | an advertisement
 *             the protocol takes over on | forced ────────────────────────> MASTER
 *   MASTER ── an advertisement the protocol yields to | forced ───────────> BACKUP
 *   any    ── down | leave (a MASTER sends its last advertisement first) ─> INIT
 *
 * Shared, because carp(4) and RFC 5798 §6.4 agree on it and the runtime relies on it:
 * - the three states, the two timers and which state owns which ('advert' = Adver_Timer runs
 *   only in MASTER, 'master-down' = Master_Down_Timer only in BACKUP); a timer that fires in a
 *   state that does not own it is stale and ignored;
 * - how a state is entered, action by action, in FreeBSD's order (enterMaster, enterBackup,
 *   enterInit): which timer is cancelled, when the transition is recorded, when the VIPs are
 *   taken or given up, when the first advertisement goes out;
 * - the inputs that mean the same in both: up and advertisements matter only outside INIT as
 *   the protocol rules say; down goes to INIT silently; leave goes to INIT after the MASTER's
 *   last word; force is ignored in INIT or in the state already held;
 * - the record of every transition (since, cause, reason) and of when master-down was armed.
 *
 * Deliberately not shared — the Protocol hooks, each next to the rule text it implements:
 * - who wins on an advertisement (CARP compares timers and ties yield; VRRP compares priorities,
 *   breaks ties by address, and a MASTER never yields to an equal);
 * - preemption (a CARP BACKUP takes over on the spot; a VRRP one discards the packet and lets
 *   its master-down timer run out);
 * - the timer formulas (CARP from its own advbase and skew; VRRP from the master's learned
 *   interval and Skew_Time) and what 'up' does (a VRRP address owner is MASTER at once);
 * - what is sent, and the leaving MASTER's last word (CARP's bow-out advbase 255 / skew 255
 *   with its counter; VRRP's priority 0);
 * - the settings, their checks and what a change of them does.
 * Merging any of these would hide a protocol difference behind a flag.
 *
 * Also here, because both engines need them and they are protocol-free: the integer check of
 * settings (requireInteger) and the seconds of the reasons (seconds).
 */

/** carp(4)'s states; VRRP's Initialize/Backup/Master map onto them. */
export type CarpState = 'INIT' | 'BACKUP' | 'MASTER';

/** The two timers of a vhid: the MASTER's advertisement timer and the BACKUP's master-down timer. */
export type TimerName = 'advert' | 'master-down';

/** The transition causes the machine gives itself; every protocol's cause type includes them. */
export type MachineCause = 'down' | 'leave' | 'forced';

/** What a runtime feeds an engine; `Advert` is what the protocol's advertisement carries. */
export type MachineInput<Advert extends object, Settings extends object> =
  /** The interface can carry the vhid (link up, addresses, allowed): leaves INIT. */
  | { kind: 'up' }
  /** Link down, not allowed or no addresses left: any state → INIT, silently. */
  | { kind: 'down'; reason: string }
  /** A valid advertisement for this vhid (already checked by the wire layer); `from` is the sender's address. */
  | ({ kind: 'advert'; from: string } & Advert)
  | { kind: 'timer'; timer: TimerName }
  /** New settings for the same vhid. */
  | { kind: 'settings'; settings: Settings }
  /** The administrator moves the vhid (`ifconfig … state backup|master`); ignored in INIT. */
  | { kind: 'force'; state: 'BACKUP' | 'MASTER'; reason?: string }
  /** Orderly shutdown: a MASTER sends its last advertisement first, then → INIT. */
  | { kind: 'leave'; reason?: string };

/** What an engine asks the runtime to do, in order. */
export type MachineAction<Cause extends string, Advert extends object> =
  /** Start (or restart) the named timer; an armed timer of that name is replaced. */
  | { kind: 'arm'; timer: TimerName; afterMs: number }
  | { kind: 'cancel'; timer: TimerName }
  /** Send one advertisement now with exactly these fields (demotion already applied). */
  | ({ kind: 'send' } & Advert)
  | { kind: 'transition'; from: CarpState; to: CarpState; cause: Cause; reason: string }
  /** Take the VIPs: answer ARP/ND for them and announce them (gratuitous ARP, unsolicited NA). */
  | { kind: 'install-vips' }
  /** Give the VIPs up: stop answering ARP/ND for them. */
  | { kind: 'remove-vips' };

/** The part of an engine's immutable state the machine keeps; each protocol adds its own fields. */
export interface MachineState<Cause extends string> {
  readonly state: CarpState;
  /** When the state last changed, and why. */
  readonly sinceMs: number;
  readonly cause: Cause | 'created';
  readonly reason: string;
  /** When the master-down timer was last (re)started; meaningful in BACKUP. */
  readonly masterDownFromMs: number;
}

/** The types that make one protocol's engine. */
export interface ProtocolTypes {
  state: MachineState<string>;
  /** Its transition causes, MachineCause included. */
  cause: string;
  /** The fields of an advertisement, as received and as sent. */
  advert: object;
  settings: object;
}

export type CauseOf<T extends ProtocolTypes> = T['cause'] | MachineCause;
export type ActionOf<T extends ProtocolTypes> = MachineAction<CauseOf<T>, T['advert']>;
export type InputOf<T extends ProtocolTypes> = MachineInput<T['advert'], T['settings']>;
export type AdvertInputOf<T extends ProtocolTypes> = { kind: 'advert'; from: string } & T['advert'];

export interface MachineResult<S, A> {
  state: S;
  actions: A[];
}

/** One step under way: the protocol, the time of its input, the actions emitted so far. */
export interface StepContext<T extends ProtocolTypes> {
  readonly protocol: Protocol<T>;
  readonly nowMs: number;
  readonly out: ActionOf<T>[];
}

/** The protocol rules the machine asks for; see the header for why these and no more. */
export interface Protocol<T extends ProtocolTypes> {
  /** INIT, interface up: enter BACKUP or MASTER (through enterBackup / enterMaster). */
  onUp(cx: StepContext<T>, s: T['state']): T['state'];
  /** BACKUP or MASTER, an advertisement heard: the election. */
  onAdvert(cx: StepContext<T>, s: T['state'], a: AdvertInputOf<T>): T['state'];
  /** BACKUP, the master-down timer expired: the cause and words of the move to MASTER. */
  masterDownExpired(cx: StepContext<T>, s: T['state']): { cause: T['cause']; reason: string };
  /** Any state: check and adopt new settings, and react to the change. */
  onSettings(cx: StepContext<T>, s: T['state'], settings: T['settings']): T['state'];
  /** Emit (with send()) one advertisement of this node; returns the state after sending it. */
  sendAdvert(cx: StepContext<T>, s: T['state']): T['state'];
  /** Emit the leaving MASTER's last advertisement; returns the state after sending it. */
  sendFarewell(cx: StepContext<T>, s: T['state']): T['state'];
  /** How a leave's reason says the farewell went out. */
  readonly farewellSent: string;
  /** The master-down interval armed on entering BACKUP, ms. */
  masterDownMs(s: T['state']): number;
  /** The interval to the next advertisement after one sent as MASTER, ms. */
  advertIntervalMs(s: T['state']): number;
  /** The same after the advertisement sent on becoming MASTER, ms. */
  firstAdvertIntervalMs(s: T['state']): number;
  /** What becoming MASTER changes in the protocol's own fields, before anything is sent. */
  enteringMaster(s: T['state']): T['state'];
}

/** The result builder: runs one input through the machine and the protocol. Pure. */
export function stepMachine<T extends ProtocolTypes>(
  protocol: Protocol<T>,
  s: T['state'],
  input: InputOf<T>,
  nowMs: number,
): MachineResult<T['state'], ActionOf<T>> {
  const cx: StepContext<T> = { protocol, nowMs, out: [] };
  return { state: dispatch(cx, s, input), actions: cx.out };
}

function dispatch<T extends ProtocolTypes>(cx: StepContext<T>, s: T['state'], input: InputOf<T>): T['state'] {
  const p = cx.protocol;
  switch (input.kind) {
    case 'up':
      // carp(4) §7.1, RFC 5798 §6.4.1: Startup is an INIT event only.
      return s.state === 'INIT' ? p.onUp(cx, s) : s;
    case 'down':
      // §7.1, §7.6: nothing can be sent any more, so no last word.
      return s.state === 'INIT' ? s : enterInit(cx, s, 'down', input.reason, false);
    case 'leave': {
      // §7.6, RFC 5798 §6.4.2 / §6.4.3 Shutdown: a BACKUP just stops, a MASTER says so first.
      if (s.state === 'INIT') return s;
      const why = input.reason ?? 'orderly shutdown';
      return enterInit(cx, s, 'leave', s.state === 'MASTER' ? `${why}: ${p.farewellSent}` : why, true);
    }
    case 'advert':
      // §7.1: INIT ignores advertisements (RFC 5798 §6.4.1 has no advertisement event there).
      return s.state === 'INIT' ? s : p.onAdvert(cx, s, input);
    case 'timer':
      return onTimer(cx, s, input.timer);
    case 'settings':
      return p.onSettings(cx, s, input.settings);
    case 'force': {
      // `ifconfig … state master|backup`: no effect in INIT or when already in that state.
      if (s.state === 'INIT' || s.state === input.state) return s;
      const why = input.reason ?? `forced to ${input.state} by the administrator`;
      return input.state === 'MASTER' ? enterMaster(cx, s, 'forced', why) : enterBackup(cx, s, 'forced', why);
    }
  }
}

function onTimer<T extends ProtocolTypes>(cx: StepContext<T>, s: T['state'], timer: TimerName): T['state'] {
  // A timer that fires in a state that does not own it is stale and ignored.
  if (timer === 'advert') return s.state === 'MASTER' ? advertise(cx, s) : s;
  if (s.state !== 'BACKUP') return s;
  const why = cx.protocol.masterDownExpired(cx, s);
  return enterMaster(cx, s, why.cause, why.reason);
}

/** Emits one `send` action with these advertisement fields. */
export function send<T extends ProtocolTypes>(cx: StepContext<T>, advert: T['advert']): void {
  cx.out.push({ kind: 'send', ...advert });
}

function armTimer<T extends ProtocolTypes>(cx: StepContext<T>, timer: TimerName, afterMs: number): void {
  cx.out.push({ kind: 'arm', timer, afterMs });
}

function cancelTimer<T extends ProtocolTypes>(cx: StepContext<T>, timer: TimerName): void {
  cx.out.push({ kind: 'cancel', timer });
}

/** Records the new state, when and why, and emits the transition for counters and events. */
function transition<T extends ProtocolTypes>(cx: StepContext<T>, s: T['state'], to: CarpState, cause: CauseOf<T>, reason: string): T['state'] {
  cx.out.push({ kind: 'transition', from: s.state, to, cause, reason });
  return { ...s, state: to, sinceMs: cx.nowMs, cause, reason };
}

/** BACKUP: (re)starts the master-down timer with this interval and remembers from when. */
export function armMasterDown<T extends ProtocolTypes>(cx: StepContext<T>, s: T['state'], afterMs: number): T['state'] {
  armTimer(cx, 'master-down', afterMs);
  return { ...s, masterDownFromMs: cx.nowMs };
}

/** MASTER: one advertisement now and the advertisement timer restarted (§6.1, RFC 5798 §6.4.3). */
export function advertise<T extends ProtocolTypes>(cx: StepContext<T>, s: T['state']): T['state'] {
  const n = cx.protocol.sendAdvert(cx, s);
  armTimer(cx, 'advert', cx.protocol.advertIntervalMs(n));
  return n;
}

/**
 * INIT/MASTER → BACKUP (§7.1, RFC 5798 §6.4.3): stop advertising, arm master-down (from the
 * state as the caller leaves it: VRRP has already adopted the new master's interval), withdraw
 * the VIPs; no packet.
 */
export function enterBackup<T extends ProtocolTypes>(cx: StepContext<T>, s: T['state'], cause: CauseOf<T>, reason: string): T['state'] {
  const wasMaster = s.state === 'MASTER';
  if (wasMaster) cancelTimer(cx, 'advert');
  const n = transition(cx, s, 'BACKUP', cause, reason);
  const armed = armMasterDown(cx, n, cx.protocol.masterDownMs(n));
  if (wasMaster) cx.out.push({ kind: 'remove-vips' });
  return armed;
}

/**
 * BACKUP (or INIT, a VRRP address owner) → MASTER, in FreeBSD's order (carp_master_down_locked(),
 * §7.4; RFC 5798 §6.4.1 / §6.4.2 list the same steps): state MASTER, one advertisement at once,
 * the VIPs announced (gratuitous ARP / unsolicited NA) and answered for, the advertisement timer
 * armed.
 */
export function enterMaster<T extends ProtocolTypes>(cx: StepContext<T>, s: T['state'], cause: CauseOf<T>, reason: string): T['state'] {
  const p = cx.protocol;
  if (s.state === 'BACKUP') cancelTimer(cx, 'master-down');
  const n = p.sendAdvert(cx, transition(cx, p.enteringMaster(s), 'MASTER', cause, reason));
  cx.out.push({ kind: 'install-vips' });
  armTimer(cx, 'advert', p.firstAdvertIntervalMs(n));
  return n;
}

/** Any → INIT (§7.1): the running timer stopped, VIPs withdrawn; a leaving MASTER's last word first (§7.6). */
function enterInit<T extends ProtocolTypes>(cx: StepContext<T>, s: T['state'], cause: CauseOf<T>, reason: string, farewell: boolean): T['state'] {
  const wasMaster = s.state === 'MASTER';
  cancelTimer(cx, wasMaster ? 'advert' : 'master-down');
  const n = transition(cx, wasMaster && farewell ? cx.protocol.sendFarewell(cx, s) : s, 'INIT', cause, reason);
  if (wasMaster) cx.out.push({ kind: 'remove-vips' });
  return n;
}

/** Throws RangeError unless `v` is an integer in lo..hi (the settings checks of both engines). */
export function requireInteger(v: number, lo: number, hi: number, name: string): void {
  if (!Number.isInteger(v) || v < lo || v > hi) throw new RangeError(`${name} ${v} is not an integer in ${lo}..${hi}`);
}

/** Milliseconds as seconds with three decimals, for reasons: 3390.625 → "3.391 s". */
export function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(3)} s`;
}
