/**
 * The CARP runtime: drives one pure engine (src/engine) per vhid and does the I/O the engine
 * must not do.
 *
 *   link (link.ts) ─> TTL ─> CARP decode (src/wire: checksum, vhid, version, HMAC) ─> step()
 *   timer    ───────────────────────────────────────────────────────────────────────> step()
 *   step() ─> actions: arm/cancel timer │ send advertisement │ transition │ install/remove VIPs
 *
 * Time: timers are deadlines on the monotonic clock (timers.ts). The advertisement timer is
 * periodic: when it fires less than one interval late, the engine is stepped with the deadline as
 * its time, so the next deadline is the previous one plus the interval and the period does not
 * drift with load; later than that (a stall), with the real time, so it resynchronises instead of
 * sending a burst. A master-down timer never acts on a silence that is only apparent: when it
 * fires, the link first delivers what is already queued on its sockets (drainNow, where the link
 * can read synchronously), and the takeover itself waits for the clock's `defer` (setImmediate,
 * after the poll phase has read every ready socket); it happens only if that timer is still the
 * current one — an advertisement heard meanwhile re-armed it.
 *
 * Inputs are processed one at a time in arrival order: an action that causes another input
 * (a listener reacting to a transition, a datagram delivered synchronously) queues it behind
 * the current one instead of re-entering the engine mid-step. Bad datagrams are counted under
 * their carpstats name and dropped; nothing a peer sends can make the runtime throw.
 */
import { randomBytes } from 'node:crypto';
import type { CarpState } from '../engine/types.js';
import type { Clock } from '../clock.js';
import { systemClock } from '../clock.js';
import type { Action, EngineInput, EngineState, TransitionCause, VhidSettings, VrrpAction, VrrpInput, VrrpSettings, VrrpState, VrrpTransitionCause } from '../engine/index.js';
import { initialState, step, vrrpInitialState, vrrpStep } from '../engine/index.js';
import { VRRP_DEFAULT_INTERVAL_CS, VRRP_DEFAULT_PRIORITY, VRRP_FIXED_LEN, VRRP_VERSION, decodeVrrp, vrrpBytes } from '../wire/vrrp.js';
import { carpBytes, decodeCarp, type CarpVhidConfig } from '../wire/carp.js';
import { carpGroup } from '../wire/ip.js';
import { CarpCounters, type CarpStatName, type CarpStats } from '../wire/counters.js';
import { SimLink, type AdvertLink, type IncomingAdvert, type LinkDrop } from './link.js';
import { TimerTable, type TimerFire } from './timers.js';
import type { PacketTransport } from './transport.js';

/** One vhid as the runtime runs it. */
export interface RuntimeVhidConfig {
  iface: string;
  vhid: number;
  advbaseSec: number;
  advskew: number;
  /** The passphrase (at most 20 bytes); undefined = the empty key, as carp(4) allows. */
  key?: string;
  /** Every VIP of the vhid as CIDR or bare address; they are hashed into every advertisement. */
  addresses: readonly string[];
  /** Unicast peers (carp(4) peer / peer6): advertisements of that family go there, not to the group. */
  peer?: string;
  peer6?: string;
  /** CARP (default) or VRRPv3 (RFC 5798 / 9568); fixed for the life of the vhid. */
  protocol?: 'carp' | 'vrrpv3';
  /** VRRPv3 only: priority 1..254 (default 100) and advertisement interval in centiseconds (default 100). */
  vrrpPriority?: number;
  vrrpIntervalCs?: number;
}

export interface RuntimeGlobals {
  /** net.inet.carp.preempt */
  preempt: boolean;
  /** The node's total demotion, added to every vhid's advertised skew (clamped to 240). */
  demotion: number;
}

export interface TransitionEvent {
  iface: string;
  vhid: number;
  from: CarpState;
  to: CarpState;
  cause: TransitionCause | VrrpTransitionCause;
  reason: string;
  /** When, on the runtime's monotonic clock (Clock.now; shown with wallDate). */
  atMs: number;
}

export interface VipEvent {
  iface: string;
  vhid: number;
  /** true: this node now answers for the addresses (MASTER); false: it gave them up. */
  installed: boolean;
  addresses: string[];
}

/**
 * A sender of advertisements for one vhid, as this runtime heard it: accepted ones (passed the
 * checks, stepped the engine) and refused ones (under the carpstats name of the last refusal).
 * Kept per vhid, bounded (HEARD_SOURCES_PER_VHID, the least recently heard dropped first).
 */
export interface HeardSource {
  iface: string;
  vhid: number;
  /** The sender: its node name on the sim segment, its source address on a real one. */
  from: string;
  accepted: number;
  refused: number;
  /** The carpstats name of the last refusal, if any. */
  lastRefusal?: CarpStatName;
  /** When last heard, on this runtime's monotonic clock. */
  lastMs: number;
}

/** Senders remembered per vhid (a pair has one; more is another router on the segment). */
export const HEARD_SOURCES_PER_VHID = 8;
/** vhids with a record at most (255 vhids on each of 16 interfaces); beyond it nothing new is recorded. */
export const HEARD_MAX_VHIDS = 4096;

export interface DropEvent {
  counter: CarpStatName;
  detail: string;
  iface?: string;
  vhid?: number;
  /** The sender: its node name on the sim segment, its source address on a real one. */
  from?: string;
}

export interface CarpRuntimeOptions {
  /** Where advertisements travel: a link (the linux backend's raw sockets) ... */
  link?: AdvertLink;
  /** ... or a sim segment, wrapped in a SimLink by the runtime. Exactly one of the two. */
  transport?: PacketTransport;
  /** This node's name, carried in every sim datagram and shown in a peer's reasons. */
  node: string;
  clock?: Clock;
  /** 64-bit random values: counter seeds and the instance id. Default crypto.randomBytes. */
  random?: () => bigint;
  /**
   * Sim segment only: whether this node is attached to the segment of an interface. Datagrams
   * for other interfaces never reach it, as frames of another Ethernet segment would not. Default: all.
   */
  attached?: (iface: string) => boolean;
  onTransition?: (e: TransitionEvent) => void;
  onVips?: (e: VipEvent) => void;
  onDrop?: (e: DropEvent) => void;
  /** A send the transport refused, or an advertisement that could not be built. */
  onSendError?: (e: Error, iface: string, vhid: number) => void;
}

/** A vhid's engine: the CARP one, or the VRRPv3 one; both have state, since, cause and reason. */
type Engine = { protocol: 'carp'; state: EngineState } | { protocol: 'vrrpv3'; state: VrrpState };

interface Instance {
  key: string;
  cfg: RuntimeVhidConfig;
  engine: Engine;
  vipsInstalled: boolean;
  /** The time the engine was last stepped with (monotonic ms). */
  lastStepMs?: number;
}

export interface RuntimeVhidView {
  cfg: RuntimeVhidConfig;
  engine: EngineState | VrrpState;
  vipsInstalled: boolean;
}

const defaultRandom = () => randomBytes(8).readBigUInt64BE();

export class CarpRuntime {
  readonly node: string;
  /** Tells this runtime's own datagrams, looped back by the segment, from a peer's. */
  readonly instanceId: Buffer;
  private readonly link: AdvertLink;
  private readonly clock: Clock;
  private readonly random: () => bigint;
  private readonly timers: TimerTable;
  private readonly counters = new CarpCounters();
  private readonly vhids = new Map<string, Instance>();
  /** The senders heard, per vhid key, each by its `from` (hear()). */
  private readonly heardBy = new Map<string, Map<string, HeardSource>>();
  private readonly pendingSends = new Set<Promise<void>>();
  private globals: RuntimeGlobals = { preempt: false, demotion: 0 };
  private queue: (() => void)[] = [];
  private draining = false;
  private opened = false;
  private closing?: Promise<void>;

  constructor(private readonly opts: CarpRuntimeOptions) {
    this.node = opts.node;
    this.clock = opts.clock ?? systemClock;
    this.random = opts.random ?? defaultRandom;
    this.timers = new TimerTable(this.clock);
    this.instanceId = Buffer.alloc(8);
    this.instanceId.writeBigUInt64BE(BigInt.asUintN(64, this.random()));
    if (!opts.link === !opts.transport) throw new TypeError('CarpRuntime needs exactly one of link and transport');
    this.link =
      opts.link ??
      new SimLink({ transport: opts.transport!, node: this.node, instanceId: this.instanceId, attached: opts.attached ?? (() => true) });
  }

  /** Where advertisements travel, in words. */
  get description(): string {
    return this.link.description;
  }

  /** Attaches to the segment. */
  async open(): Promise<void> {
    if (this.opened) return;
    await this.link.open({
      advert: (a) => this.run(() => this.receive(a)),
      drop: (d) => this.run(() => this.dropped(d)),
    });
    this.opened = true;
  }

  /** Creates the vhid (in INIT) or replaces its configuration. Timing changes reach the engine as settings. */
  configure(cfg: RuntimeVhidConfig): void {
    this.run(() => {
      const key = vhidKey(cfg.iface, cfg.vhid);
      const copy = { ...cfg, addresses: [...cfg.addresses] };
      let inst = this.vhids.get(key);
      if (inst && protocolOf(inst.cfg) !== protocolOf(copy)) {
        // The protocol of a vhid is fixed (carp(4) too): the old one leaves, a new one starts.
        this.step(inst, { kind: 'leave', reason: 'protocol changed' });
        this.timers.cancelPrefix(`${key}#`);
        this.vhids.delete(key);
        inst = undefined;
      }
      if (!inst) {
        this.vhids.set(key, { key, cfg: copy, engine: this.newEngine(copy), vipsInstalled: false });
        return;
      }
      const timingChanged =
        inst.cfg.advbaseSec !== cfg.advbaseSec || inst.cfg.advskew !== cfg.advskew || inst.cfg.vrrpPriority !== cfg.vrrpPriority || inst.cfg.vrrpIntervalCs !== cfg.vrrpIntervalCs;
      inst.cfg = copy;
      if (timingChanged) this.settle(inst);
    });
  }

  /** Feeds one of the administrative inputs to a vhid's engine; unknown vhids are ignored. */
  input(iface: string, vhid: number, input: Extract<EngineInput, { kind: 'up' | 'down' | 'force' | 'leave' }>): void {
    this.run(() => {
      const inst = this.vhids.get(vhidKey(iface, vhid));
      if (inst) this.step(inst, input);
    });
  }

  /**
   * Takes the vhid out of the runtime. `leave` first (a MASTER bows out, so a peer takes over at
   * once, carp-protocol.md §7.6) with the address set it still has, then its timers go.
   */
  remove(iface: string, vhid: number, reason: string): void {
    this.run(() => {
      const key = vhidKey(iface, vhid);
      const inst = this.vhids.get(key);
      if (!inst) return;
      this.step(inst, { kind: 'leave', reason });
      this.timers.cancelPrefix(`${key}#`);
      this.vhids.delete(key);
    });
  }

  /** New preempt/demotion for every vhid; a MASTER whose demotion changed advertises at once (§6.4). */
  setGlobals(g: RuntimeGlobals): void {
    this.run(() => {
      if (g.preempt === this.globals.preempt && g.demotion === this.globals.demotion) return;
      this.globals = { ...g };
      for (const inst of this.vhids.values()) this.settle(inst);
    });
  }

  get(iface: string, vhid: number): RuntimeVhidView | undefined {
    const inst = this.vhids.get(vhidKey(iface, vhid));
    return inst && { cfg: inst.cfg, engine: inst.engine.state, vipsInstalled: inst.vipsInstalled };
  }

  list(): RuntimeVhidView[] {
    return [...this.vhids.values()].map((i) => ({ cfg: i.cfg, engine: i.engine.state, vipsInstalled: i.vipsInstalled }));
  }

  /** carpstats, counted since this runtime started. */
  stats(): CarpStats {
    return this.counters.snapshot();
  }

  /**
   * Every vhid leaves (a MASTER sends its bow-out), the timers stop, the bow-outs are flushed
   * to the segment, then the transport closes. The vhids stay listed, in INIT.
   */
  close(reason = 'carpd stopping'): Promise<void> {
    return (this.closing ??= (async () => {
      this.run(() => {
        for (const inst of this.vhids.values()) this.step(inst, { kind: 'leave', reason });
      });
      this.timers.clear();
      await Promise.all([...this.pendingSends]);
      if (this.opened) await this.link.close();
    })());
  }

  // --- internals -------------------------------------------------------------------------

  private settingsOf(cfg: RuntimeVhidConfig): VhidSettings {
    return { vhid: cfg.vhid, advbaseSec: cfg.advbaseSec, advskew: cfg.advskew, preempt: this.globals.preempt, demotion: this.globals.demotion };
  }

  private vrrpSettingsOf(cfg: RuntimeVhidConfig): VrrpSettings {
    const family = familiesOf(cfg.addresses)[0];
    return {
      vrid: cfg.vhid,
      priority: cfg.vrrpPriority ?? VRRP_DEFAULT_PRIORITY,
      intervalCs: cfg.vrrpIntervalCs ?? VRRP_DEFAULT_INTERVAL_CS,
      preempt: this.globals.preempt,
      demotion: this.globals.demotion,
      // The tie-break address: this node's own address on the interface (RFC 5798 §6.4.3).
      primaryAddress: this.link.primaryAddress(cfg.iface, family) ?? (family === 4 ? '0.0.0.0' : '::'),
    };
  }

  private newEngine(cfg: RuntimeVhidConfig): Engine {
    const now = this.clock.now();
    return protocolOf(cfg) === 'vrrpv3'
      ? { protocol: 'vrrpv3', state: vrrpInitialState(this.vrrpSettingsOf(cfg), now) }
      : { protocol: 'carp', state: initialState(this.settingsOf(cfg), BigInt.asUintN(64, this.random()), now) };
  }

  /** Hands the current settings (own and global) to the vhid's engine. */
  private settle(inst: Instance): void {
    if (inst.engine.protocol === 'vrrpv3') this.step(inst, { kind: 'settings', settings: this.vrrpSettingsOf(inst.cfg) });
    else this.step(inst, { kind: 'settings', settings: this.settingsOf(inst.cfg) });
  }

  /** Runs `job` now, or after the job that is running (see the file comment). */
  private run(job: () => void): void {
    if (this.draining) {
      this.queue.push(job);
      return;
    }
    this.draining = true;
    try {
      job();
    } finally {
      try {
        while (this.queue.length > 0) {
          const next = this.queue.shift()!;
          try {
            next();
          } catch (e) {
            // A queued job has no caller to throw to; an engine refusal here is a bug to see.
            queueMicrotask(() => {
              throw e;
            });
          }
        }
      } finally {
        this.draining = false;
      }
    }
  }

  private step(inst: Instance, input: EngineInput | VrrpInput, at?: number): void {
    if (this.closing && input.kind !== 'leave') return;
    // An engine's time never goes back: a timer's deadline may precede an input already stepped.
    const now = Math.max(at ?? this.clock.now(), inst.lastStepMs ?? -Infinity);
    inst.lastStepMs = now;
    let actions: (Action | VrrpAction)[];
    if (inst.engine.protocol === 'vrrpv3') {
      // Inputs built for one protocol never reach the other engine (settle() and receive() pick).
      const r = vrrpStep(inst.engine.state, input as VrrpInput, now);
      inst.engine = { protocol: 'vrrpv3', state: r.state };
      actions = r.actions;
    } else {
      const r = step(inst.engine.state, input as EngineInput, now);
      inst.engine = { protocol: 'carp', state: r.state };
      actions = r.actions;
    }
    // A takeover's addresses first: they are announced (gratuitous ARP, unsolicited NA) before
    // the advertisement that makes a live MASTER step down and drop them, so the LAN has learnt
    // the new holder by the time the old one lets go (a switchover loses nothing). Then the
    // packets and timers, then the listeners of the transition: what they do (events, logs,
    // hooks, status) never delays an advertisement or a takeover's addresses, as carp(4) sends
    // and announces before devd hears of the change.
    for (const a of actions) if (a.kind === 'install-vips') this.act(inst, a, now);
    for (const a of actions) if (a.kind !== 'install-vips' && a.kind !== 'transition') this.act(inst, a, now);
    for (const a of actions) if (a.kind === 'transition') this.act(inst, a, now);
  }

  /** `now`: the time the engine was stepped with; a timer it arms counts from it. */
  private act(inst: Instance, a: Action | VrrpAction, now: number): void {
    switch (a.kind) {
      case 'arm': {
        const key = inst.key;
        const timer = a.timer;
        const tkey = `${key}#${timer}`;
        this.timers.arm(tkey, a.afterMs, (f) => (timer === 'master-down' ? this.masterDownFired(key, tkey) : this.advertFired(key, f)), now);
        return;
      }
      case 'cancel':
        this.timers.cancel(`${inst.key}#${a.timer}`);
        return;
      case 'send':
        if ('priority' in a) this.sendVrrp(inst, a);
        else this.send(inst, a);
        return;
      case 'transition':
        if (a.cause === 'preempt') this.counters.add('preempt');
        this.opts.onTransition?.({ iface: inst.cfg.iface, vhid: inst.cfg.vhid, from: a.from, to: a.to, cause: a.cause, reason: a.reason, atMs: now });
        return;
      case 'install-vips':
      case 'remove-vips': {
        const installed = a.kind === 'install-vips';
        if (inst.vipsInstalled === installed) return;
        inst.vipsInstalled = installed;
        this.opts.onVips?.({ iface: inst.cfg.iface, vhid: inst.cfg.vhid, installed, addresses: [...inst.cfg.addresses] });
        return;
      }
    }
  }

  /** One advertisement per address family the vhid has VIPs in, as carp(4) sends one packet per family. */
  private send(inst: Instance, a: Extract<Action, { kind: 'send' }>): void {
    const { iface, vhid } = inst.cfg;
    if (!this.opened) return;
    let payload: Buffer;
    try {
      payload = carpBytes({ vhid, advbaseSec: a.advbaseSec, advskew: a.advskew, counter: a.counter, key: keyBytes(inst.cfg.key), addresses: inst.cfg.addresses });
    } catch (e) {
      this.opts.onSendError?.(e as Error, iface, vhid);
      return;
    }
    for (const family of familiesOf(inst.cfg.addresses)) this.transmit(inst, family, payload);
  }

  /**
   * VRRPv3: one advertisement per family, each listing that family's addresses (IPv4 and IPv6
   * are separate virtual routers in RFC 5798). The checksum covers an IP pseudo-header with the
   * source the link picks, so the link fills it in.
   */
  private sendVrrp(inst: Instance, a: Extract<VrrpAction, { kind: 'send' }>): void {
    const { iface, vhid } = inst.cfg;
    if (!this.opened) return;
    for (const family of familiesOf(inst.cfg.addresses)) {
      let payload: Buffer;
      try {
        const addresses = inst.cfg.addresses.filter((x) => x.includes(':') === (family === 6)).map((x) => x.split('/')[0]);
        payload = vrrpBytes({ vrid: vhid, priority: a.priority, maxAdvertIntervalCs: a.intervalCs, addresses }, { src: family === 4 ? '0.0.0.0' : '::' });
        payload.writeUInt16BE(0, 6);
      } catch (e) {
        this.opts.onSendError?.(e as Error, iface, vhid);
        continue;
      }
      this.transmit(inst, family, payload, 6);
    }
  }

  /** Hands one advertisement to the link (to the vhid's unicast peer of that family, or the group) and counts it. */
  private transmit(inst: Instance, family: 4 | 6, payload: Buffer, pseudoHeaderChecksumAt?: number): void {
    const { iface, vhid } = inst.cfg;
    const destination = family === 4 ? inst.cfg.peer : inst.cfg.peer6;
    let p: Promise<void>;
    try {
      p = this.link.send({ iface, vhid, family, payload, destination, pseudoHeaderChecksumAt });
    } catch (e) {
      p = Promise.reject(e as Error);
    }
    p = p.then(
      () => this.counters.countOutput(family),
      (e: Error) => {
        // carpstats has one send-failure counter, "no memory"; every refusal is filed there.
        this.counters.add('onomem');
        this.opts.onSendError?.(e, iface, vhid);
      },
    );
    const tracked = p.finally(() => this.pendingSends.delete(tracked));
    this.pendingSends.add(tracked);
  }

  /**
   * The advertisement timer: stepped at its deadline when it is less than one interval late (the
   * next one then counts from that deadline), at the real time after a longer stall.
   */
  private advertFired(key: string, f: TimerFire): void {
    this.run(() => {
      const current = this.vhids.get(key);
      if (!current) return;
      const late = f.now - f.deadline;
      this.step(current, { kind: 'timer', timer: 'advert' }, late < f.intervalMs ? f.deadline : f.now);
    });
  }

  /**
   * The master-down timer: what the link already holds is read first (synchronously where the
   * link can, then through the clock's defer, after the poll phase); the takeover happens only if
   * no advertisement re-armed (or anything cancelled) the timer meanwhile.
   */
  private masterDownFired(key: string, tkey: string): void {
    const generation = this.timers.generation(tkey);
    const stillCurrent = () => this.timers.generation(tkey) === generation && this.vhids.has(key) && !this.closing;
    if (this.link.drainNow) {
      try {
        this.run(() => this.link.drainNow!());
      } catch {
        // A link that cannot read now is read by its own loop; the deferred check still applies.
      }
    }
    if (!stillCurrent()) return;
    this.clock.defer(() => {
      if (!stillCurrent()) return;
      this.run(() => {
        const current = this.vhids.get(key);
        if (current && stillCurrent()) this.step(current, { kind: 'timer', timer: 'master-down' });
      });
    });
  }

  /** The senders heard per vhid (HeardSource), for diagnostics. */
  heard(): HeardSource[] {
    return [...this.heardBy.values()].flatMap((m) => [...m.values()].map((h) => ({ ...h })));
  }

  private hear(iface: string | undefined, vhid: number | undefined, from: string | undefined, refusal?: CarpStatName): void {
    if (iface === undefined || vhid === undefined || from === undefined) return;
    const key = vhidKey(iface, vhid);
    let m = this.heardBy.get(key);
    if (!m) {
      if (this.heardBy.size >= HEARD_MAX_VHIDS) return;
      m = new Map();
      this.heardBy.set(key, m);
    }
    let h = m.get(from);
    if (!h) {
      if (m.size >= HEARD_SOURCES_PER_VHID) {
        let oldest: HeardSource | undefined;
        for (const x of m.values()) if (!oldest || x.lastMs < oldest.lastMs) oldest = x;
        m.delete(oldest!.from);
      }
      h = { iface, vhid, from, accepted: 0, refused: 0, lastMs: 0 };
      m.set(from, h);
    }
    h.lastMs = this.clock.now();
    if (refusal) {
      h.refused++;
      h.lastRefusal = refusal;
    } else h.accepted++;
  }

  private dropped(d: LinkDrop): void {
    this.hear(d.iface, d.vhid, d.from, d.counter);
    this.counters.countInput(d.family, { ok: false, error: d.counter });
    this.opts.onDrop?.({ counter: d.counter, detail: d.detail, iface: d.iface, vhid: d.vhid, from: d.from });
  }

  private receive(a: IncomingAdvert): void {
    const drop = (counter: CarpStatName, detail: string, vhid?: number) => this.dropped({ family: a.family, counter, detail, iface: a.iface, vhid, from: a.from });
    const onIface = [...this.vhids.values()].some((i) => i.cfg.iface === a.iface);
    if (!onIface) return drop('badif', `no vhid on ${a.iface}`);
    // The vhid the packet names (byte 1 in CARP and VRRPv3 alike), if it is configured here.
    const target = a.payload.length > 1 ? this.vhids.get(vhidKey(a.iface, a.payload[1])) : undefined;
    // carp(4) checks the TTL first, except for a vhid with a unicast peer of that family (§8).
    if (a.ttl !== undefined && a.ttl !== 255) {
      const unicast = target && (a.family === 4 ? target.cfg.peer : target.cfg.peer6) !== undefined;
      if (!unicast) return drop('badttl', `TTL ${a.ttl}, must be 255`, target?.cfg.vhid);
    }
    // A vhid runs one protocol: a packet for a VRRPv3 vhid is judged as VRRP, one for a CARP vhid
    // as CARP; for an unknown vhid the version nibble decides which decoder names the drop.
    if (target ? target.engine.protocol === 'vrrpv3' : a.payload[0] >> 4 === VRRP_VERSION) return this.receiveVrrp(a, target, drop);
    const result = decodeCarp(a.payload, {
      lookup: (vhid): CarpVhidConfig | undefined => {
        const inst = this.vhids.get(vhidKey(a.iface, vhid));
        return inst && { key: keyBytes(inst.cfg.key), addresses: inst.cfg.addresses };
      },
    });
    if (!result.ok) return drop(result.error, result.detail, a.payload[1]);
    this.counters.countInput(a.family, { ok: true });
    const inst = this.vhids.get(vhidKey(a.iface, result.advert.vhid));
    if (!inst) return;
    if (inst.engine.protocol !== 'carp') return drop('badver', `CARP advertisement for vhid ${inst.cfg.vhid}, which runs VRRPv3 here`, inst.cfg.vhid);
    const { advbaseSec, advskew, counter } = result.advert;
    this.hear(inst.cfg.iface, inst.cfg.vhid, a.from);
    this.step(inst, { kind: 'advert', from: a.from, advbaseSec, advskew, counter });
  }

  private receiveVrrp(a: IncomingAdvert, inst: Instance | undefined, drop: (counter: CarpStatName, detail: string, vhid?: number) => void): void {
    const vrid = a.payload.length > 1 ? a.payload[1] : undefined;
    if (a.payload.length < VRRP_FIXED_LEN) return drop('badlen', `${a.payload.length} bytes, VRRP needs at least ${VRRP_FIXED_LEN}`, vrid);
    // The checksum covers the IP source and destination; a link without IP headers (the sim
    // segment) reports the stand-in source its peer computed with, and the group.
    const src = a.source ?? (a.family === 4 ? '0.0.0.0' : '::');
    const dst = a.destination ?? carpGroup(a.family);
    const result = decodeVrrp(a.payload, { src, dst, vrid: (v) => this.vhids.has(vhidKey(a.iface, v)) });
    if (!result.ok) return drop(result.error, result.detail, vrid);
    if (!inst || inst.engine.protocol !== 'vrrpv3') return drop('badvhid', `VRID ${vrid} is not configured here`, vrid);
    this.counters.countInput(a.family, { ok: true });
    this.hear(inst.cfg.iface, inst.cfg.vhid, a.source ?? a.from);
    this.step(inst, { kind: 'advert', from: a.source ?? a.from, priority: result.advert.priority, intervalCs: result.advert.maxAdvertIntervalCs });
  }
}

export function vhidKey(iface: string, vhid: number): string {
  return `${iface}/${vhid}`;
}

/**
 * The key as given, byte for byte (up to 20 bytes, as FreeBSD's netlink interface carries it);
 * both sides of a sim cluster build it the same way, so they agree on the digest.
 */
function keyBytes(key: string | undefined): Buffer {
  return Buffer.from(key ?? '', 'utf8');
}

function familiesOf(addresses: readonly string[]): (4 | 6)[] {
  const v6 = addresses.some((a) => a.includes(':'));
  const v4 = addresses.some((a) => !a.includes(':'));
  return v4 && v6 ? [4, 6] : v6 ? [6] : [4];
}

function protocolOf(cfg: RuntimeVhidConfig): 'carp' | 'vrrpv3' {
  return cfg.protocol ?? 'carp';
}
