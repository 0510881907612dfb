/**
 * An in-process backend that enforces the kernel contract of backend.ts and elects itself
 * MASTER after the master-down interval (3 × advbase + advskew/256 s for carp; for vrrpv3
 * 3 × interval + (256 − priority) × interval/256 cs) when it hears no peer, which it never
 * does. It is what carpd runs on where no other backend applies, and the reference the
 * contract tests hold the other backends to.
 */
import { EventEmitter } from 'node:events';
import { canonicalCidr, parseCidr } from '../wire/address.js';
import {
  CARP_COUNTERS,
  NamedDemotions,
  checkedVhidParams,
  VRRP_DEFAULTS,
  type CarpGlobals,
  type CarpState,
  type Capabilities,
  type KernelBackend,
  type KernelStats,
  type LiveVhid,
  type PfStatus,
  type PfsyncLive,
  type PfsyncSettings,
  type BackendStep,
  type StateChange,
  type VhidParams,
  type VhidQuery,
} from './backend.js';
import { HeldStateChanges, applyStepwise } from './batch.js';
import { systemClock, type Clock } from '../clock.js';
import { effectiveSkew, masterDownMs } from '../engine/timing.js';
import { vrrpMasterDownIntervalMs } from '../engine/vrrp.js';
import { KernelError } from './errno.js';
import { PfsyncModel } from './pfsync-model.js';

interface Vhid extends LiveVhid {
  timer?: unknown;
}

export interface MemoryBackendOptions {
  clock?: Clock;
  /** Interfaces that exist; any name is accepted when omitted. */
  interfaces?: string[];
}

const MAINTENANCE = 240;

/** An address as the interface holds it: without its prefix length. */
function addressKey(iface: string, cidr: string): string {
  return `${iface} ${parseCidr(cidr)?.address ?? cidr}`;
}

/** addressKey of an address this backend holds: a canonical CIDR, whose address is what comes before the slash. */
function heldKey(iface: string, canonical: string): string {
  return `${iface} ${canonical.slice(0, canonical.indexOf('/'))}`;
}
/** FreeBSD's default for net.inet.carp.*_demotion_factor and net.pfsync.carp_demotion_factor. */
const DEMOTION_FACTOR = 240;

export class MemoryBackend implements KernelBackend {
  readonly name = 'memory' as const;
  readonly description = 'in-process CARP model (no packets; elects itself MASTER)';
  private readonly clock: Clock;
  private readonly interfaces?: Set<string>;
  private readonly vhids = new Map<string, Vhid>();
  /** `${interface} ${address}` (no prefix length) -> the vhid holding it. */
  private readonly byAddress = new Map<string, Vhid>();
  /** How many vhids each interface has. */
  private readonly perInterface = new Map<string, number>();
  private readonly events = new EventEmitter();
  private globals: CarpGlobals = { allow: true, preempt: false };
  private maintenance = false;
  /** carpd's named demotions (setDemotion). */
  private readonly named = new NamedDemotions();
  private readonly pfsync: PfsyncModel;
  /** State changes go to the listeners through this: held during a batch, told once it has ended. */
  private readonly changes = new HeldStateChanges((c) => this.events.emit('state', c));

  constructor(opts: MemoryBackendOptions = {}) {
    this.clock = opts.clock ?? systemClock;
    this.interfaces = opts.interfaces ? new Set(opts.interfaces) : undefined;
    this.pfsync = new PfsyncModel(this.interfaces);
  }

  capabilities(): Capabilities {
    return { unicast: true, ipv6: true, pfsync: true, pfsyncVersions: [1301, 1400, 1500], forceState: true, vrrpv3: true, macModes: ['virtual', 'interface'] };
  }

  async close(): Promise<void> {
    for (const v of this.vhids.values()) this.stopTimer(v);
    this.events.removeAllListeners();
  }

  private requireInterface(op: string, iface: string): void {
    if (this.interfaces && !this.interfaces.has(iface)) throw KernelError.of('ENXIO', op, iface, 'no such interface');
  }

  async listVhids(query?: VhidQuery): Promise<LiveVhid[]> {
    let picked: Iterable<Vhid> = this.vhids.values();
    if (query) {
      const some = new Set<Vhid>();
      for (const r of query.vhids ?? []) {
        const v = this.vhids.get(`${r.interface}/${r.vhid}`);
        if (v) some.add(v);
      }
      for (const a of query.addresses ?? []) {
        const v = this.byAddress.get(addressKey(a.interface, a.address));
        if (v) some.add(v);
      }
      picked = some;
    }
    return [...picked]
      .map(({ timer: _t, ...v }) => ({ ...v, addresses: [...v.addresses] }))
      .sort((a, b) => (a.interface === b.interface ? a.vhid - b.vhid : a.interface < b.interface ? -1 : 1));
  }

  async setVhid(iface: string, vhid: number, p: VhidParams): Promise<void> {
    const op = `set vhid ${vhid}`;
    this.requireInterface(op, iface);
    const key = `${iface}/${vhid}`;
    const existing = this.vhids.get(key);
    const params = checkedVhidParams(op, iface, vhid, p, { vrrpv3: this.capabilities().vrrpv3, macModes: this.capabilities().macModes, existing: existing && (existing.protocol ?? 'carp') });
    if (existing) {
      const timingChanged = existing.advbaseSec !== params.advbaseSec || existing.advskew !== params.advskew || existing.vrrpPriority !== params.vrrpPriority || existing.vrrpIntervalCs !== params.vrrpIntervalCs;
      Object.assign(existing, params);
      if (timingChanged && existing.state === 'BACKUP') this.armMasterDown(existing);
      return;
    }
    this.perInterface.set(iface, (this.perInterface.get(iface) ?? 0) + 1);
    this.vhids.set(key, {
      interface: iface,
      vhid,
      ...params,
      state: 'INIT',
      since: new Date(this.clock.wall()),
      reason: 'vhid created; waiting for an address',
      addresses: [],
    });
  }

  /** The protocol fields a vhid records: none for carp (absent = carp), all three for vrrpv3. */
  async removeVhid(iface: string, vhid: number): Promise<void> {
    const v = this.vhids.get(`${iface}/${vhid}`);
    if (!v) throw KernelError.of('ENOENT', `remove vhid ${vhid}`, iface, 'no such vhid');
    this.destroy(v);
  }

  private destroy(v: Vhid): void {
    this.stopTimer(v);
    for (const a of v.addresses) this.byAddress.delete(heldKey(v.interface, a));
    this.vhids.delete(`${v.interface}/${v.vhid}`);
    const left = (this.perInterface.get(v.interface) ?? 1) - 1;
    if (left > 0) this.perInterface.set(v.interface, left);
    else this.perInterface.delete(v.interface);
  }

  async addAddress(iface: string, vhid: number, cidr: string): Promise<void> {
    const op = `add address ${cidr} to vhid ${vhid}`;
    this.requireInterface(op, iface);
    const c = canonicalCidr(cidr);
    if (!c) throw KernelError.of('EINVAL', op, iface, 'not an address with a prefix');
    if (!this.perInterface.has(iface)) throw KernelError.of('ENOPROTOOPT', op, iface, 'the interface has no vhid; set the vhid before its addresses');
    const v = this.vhids.get(`${iface}/${vhid}`);
    if (!v) throw KernelError.of('ENOENT', op, iface, `vhid ${vhid} does not exist on the interface`);
    // As SIOCAIFADDR does: an address already present is removed first, then added to this vhid.
    const key = heldKey(iface, c);
    const holder = this.byAddress.get(key);
    if (holder) {
      const i = holder.addresses.findIndex((a) => heldKey(iface, a) === key);
      if (holder !== v) this.dropAddress(holder, i);
      else holder.addresses.splice(i, 1);
    }
    v.addresses.push(c);
    this.byAddress.set(key, v);
    if (v.state === 'INIT' && this.globals.allow) this.toBackup(v, 'vhid has an address and CARP is allowed');
  }

  async removeAddress(iface: string, vhid: number, cidr: string): Promise<void> {
    const op = `remove address ${cidr} from vhid ${vhid}`;
    this.requireInterface(op, iface);
    const c = parseCidr(cidr);
    const v = this.vhids.get(`${iface}/${vhid}`);
    const i = v && c ? v.addresses.findIndex((a) => parseCidr(a)!.address === c.address) : -1;
    if (!v || i < 0) throw KernelError.of('EADDRNOTAVAIL', op, iface, 'the address is not on that vhid');
    this.dropAddress(v, i);
  }

  private dropAddress(v: Vhid, i: number): void {
    const [gone] = v.addresses.splice(i, 1);
    this.byAddress.delete(heldKey(v.interface, gone));
    // carp(4): the vhid goes away with its last address.
    if (v.addresses.length === 0) this.destroy(v);
  }

  async forceState(iface: string, vhid: number, state: 'BACKUP' | 'MASTER'): Promise<void> {
    const v = this.vhids.get(`${iface}/${vhid}`);
    if (!v) throw KernelError.of('ENOENT', `force vhid ${vhid} to ${state}`, iface, 'no such vhid');
    if (v.state === 'INIT') return;
    if (state === 'BACKUP') this.toBackup(v, 'forced to BACKUP by the administrator');
    else this.transition(v, 'MASTER', 'forced to MASTER by the administrator');
  }

  async getCarpGlobals(): Promise<CarpGlobals & { demotion: number }> {
    return { ...this.globals, demotion: this.demotion() };
  }

  async setCarpGlobals(g: CarpGlobals): Promise<void> {
    const was = this.globals.allow;
    this.globals = { ...g };
    if (was && !g.allow) {
      for (const v of this.vhids.values()) {
        this.stopTimer(v);
        this.transition(v, 'INIT', 'net.inet.carp.allow set to 0');
      }
    } else if (!was && g.allow) {
      for (const v of this.vhids.values()) if (v.addresses.length > 0) this.toBackup(v, 'net.inet.carp.allow set to 1');
    }
  }

  async getMaintenance(): Promise<boolean> {
    return this.maintenance;
  }

  async setMaintenance(on: boolean): Promise<void> {
    this.maintenance = on;
  }

  private demotion(): number {
    return (this.maintenance ? MAINTENANCE : 0) + this.named.total;
  }

  async demotions(): Promise<Map<string, number>> {
    return this.named.map();
  }

  async setDemotion(name: string, amount: number): Promise<void> {
    this.named.set(name, amount);
  }

  /** Interfaces whose link a test took down (setLink). */
  private readonly linksDown = new Set<string>();

  /** A test's switch of an interface's link (every link is up until taken down). */
  setLink(iface: string, up: boolean): void {
    if (up) this.linksDown.delete(iface);
    else this.linksDown.add(iface);
  }

  async linkUp(iface: string): Promise<boolean> {
    this.requireInterface('read the link of', iface);
    return !this.linksDown.has(iface);
  }

  async getPfsync(): Promise<PfsyncLive> {
    return this.pfsync.get();
  }

  async setPfsync(s: PfsyncSettings): Promise<void> {
    this.pfsync.set(s);
  }

  /** No pf here: null says so rather than showing a state table of zeros. */
  async pfStatus(): Promise<PfStatus | null> {
    return null;
  }

  /**
   * This model sends and receives no packets, so every CARP counter is honestly 0. pfsync is
   * reported (the model does configure it) with no counters and ACT_MAX 0: there is no
   * struct pfsyncstats behind it, and made-up zeros by name would claim one. The tunables are
   * FreeBSD's defaults (log 1, demotion factors 240), which nothing here changes.
   */
  async stats(): Promise<KernelStats> {
    return {
      carp: Object.fromEntries(CARP_COUNTERS.map((n) => [n, 0])) as KernelStats['carp'],
      pfsync: { counters: {}, actMax: 0 },
      sysctls: { carpLog: 1, pfsyncCarpDemotionFactor: DEMOTION_FACTOR, senderrDemotionFactor: DEMOTION_FACTOR, ifdownDemotionFactor: DEMOTION_FACTOR },
    };
  }

  /**
   * The single steps one after the other (each costs nothing here), taken back on a failure;
   * the listeners hear the batch's state changes once it has ended.
   */
  async apply(steps: readonly BackendStep[]): Promise<void> {
    return this.changes.during(() => applyStepwise(this, steps));
  }

  onStateChange(listener: (c: StateChange) => void): () => void {
    this.events.on('state', listener);
    return () => this.events.off('state', listener);
  }

  private toBackup(v: Vhid, reason: string): void {
    this.transition(v, 'BACKUP', reason);
    this.armMasterDown(v);
  }

  private armMasterDown(v: Vhid): void {
    this.stopTimer(v);
    // VRRPv3 with the configured priority: RFC 5798 has no demotion (this model applies none to it).
    const ms =
      v.protocol === 'vrrpv3'
        ? vrrpMasterDownIntervalMs(v.vrrpPriority ?? VRRP_DEFAULTS.priority, v.vrrpIntervalCs ?? VRRP_DEFAULTS.intervalCs)
        : masterDownMs(v.advbaseSec, effectiveSkew(v.advskew, this.demotion()));
    v.timer = this.clock.setTimeout(() => {
      v.timer = undefined;
      if (this.vhids.get(`${v.interface}/${v.vhid}`) === v && v.state === 'BACKUP') {
        this.transition(v, 'MASTER', `master-down timer expired: no advertisement heard for ${(ms / 1000).toFixed(3)} s`);
      }
    }, ms);
  }

  private stopTimer(v: Vhid): void {
    if (v.timer !== undefined) this.clock.clearTimeout(v.timer);
    v.timer = undefined;
  }

  private transition(v: Vhid, state: CarpState, reason: string): void {
    const previous = v.state;
    if (previous === state) return;
    const at = new Date(this.clock.wall());
    v.state = state;
    v.since = at;
    v.reason = reason;
    const c: StateChange = { interface: v.interface, vhid: v.vhid, state, previous, reason, at };
    this.changes.report(c);
  }
}
