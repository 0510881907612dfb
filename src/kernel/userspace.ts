/**
 * What the two userspace CARP backends share — `sim` (sim.ts) and `linux` (linux/backend.ts):
 * the kernel contract (backend.ts) fulfilled by the userspace engine (src/engine, driven by
 * src/runtime) instead of carp(4).
 *
 * The contract is enforced exactly as memory.ts does it (the reference): the same errnos, the
 * vhid going away with its last address, maintenance as exactly 240 of demotion, allow=0
 * putting every vhid in INIT. What differs is that the state comes from the engine, which
 * hears its peers: a vhid becomes MASTER only when nobody better advertises, and carpstats
 * counts what really crossed the link. A subclass says which interfaces exist, what carrying
 * a VIP means (kept in memory, or installed on a real interface) and what it adds to the
 * node's demotion (an interface that is down).
 */
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { canonicalCidr, canonicalCidrHas, parseCidr } from '../wire/address.js';
import { CarpRuntime, vhidKey, type CarpRuntimeOptions, type DropEvent, type TransitionEvent, type VipEvent } from '../runtime/driver.js';
import {
  CARP_COUNTERS,
  NamedDemotions,
  checkedVhidParams,
  type CarpGlobals,
  type Capabilities,
  type KernelBackend,
  type KernelStats,
  type AdvertSource,
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
import { systemClock, wallDate, type Clock } from '../clock.js';
import { KernelError } from './errno.js';
import { PfsyncModel } from './pfsync-model.js';

export interface UserspaceBackendOptions {
  name: 'sim' | 'linux';
  description: string;
  /** This node's name (peers' reasons on the sim segment say "from <node>"). */
  node: string;
  /** Where advertisements travel (CarpRuntimeOptions: a link, or a sim transport). */
  runtime: Pick<CarpRuntimeOptions, 'link' | 'transport' | 'attached'>;
  clock?: Clock;
  /** 64-bit random values for counter seeds and the instance id; default crypto. */
  random?: () => bigint;
  logger?: Logger;
  /** Names pfsync's syncdev may take; any name when omitted. */
  pfsyncInterfaces?: ReadonlySet<string>;
}

/** A vhid as configured through the contract; its live state is the runtime's. */
export interface UserspaceVhid {
  iface: string;
  vhid: number;
  params: VhidParams;
  addresses: string[];
}

const MAINTENANCE = 240;
/** FreeBSD's default for net.inet.carp.*_demotion_factor and net.pfsync.carp_demotion_factor. */
export const DEMOTION_FACTOR = 240;
/** Distinct drop sources remembered for "log the first one loudly"; beyond it all go to debug. */
const DROP_MEMORY = 1000;

export abstract class UserspaceBackend implements KernelBackend {
  readonly name: 'sim' | 'linux';
  readonly description: string;
  readonly node: string;
  protected readonly clock: Clock;
  protected readonly runtime: CarpRuntime;
  protected readonly records = new Map<string, UserspaceVhid>();
  protected readonly logger?: Logger;
  private readonly events = new EventEmitter();
  private readonly dropsSeen = new Set<string>();
  protected globals: CarpGlobals = { allow: true, preempt: false };
  private maintenance = false;
  /** carpd's named demotions (setDemotion). */
  private readonly named = new NamedDemotions();
  private readonly pfsync: PfsyncModel;
  /** State changes go to the listeners through this: held during a batch, told once it has ended. */
  private readonly changes = new HeldStateChanges((c) => this.events.emit('state', c));

  constructor(opts: UserspaceBackendOptions) {
    this.name = opts.name;
    this.description = opts.description;
    this.clock = opts.clock ?? systemClock;
    this.pfsync = new PfsyncModel(opts.pfsyncInterfaces);
    this.node = opts.node;
    this.logger = opts.logger;
    this.runtime = new CarpRuntime({
      ...opts.runtime,
      node: this.node,
      clock: this.clock,
      random: opts.random,
      onTransition: (e) => this.onTransition(e),
      onVips: (e) => this.onVips(e),
      onDrop: (e) => this.onDrop(e),
      onSendError: (e, iface, vhid) => this.warnOnce(`send ${iface}/${vhid} ${e.message}`, { event: `${this.name}.send.failed`, interface: iface, vhid, err: e.message }, `${iface} vhid ${vhid}: advertisement not sent: ${e.message}`),
    });
  }

  /** Attaches to the link (binds the sockets). */
  start(): Promise<void> {
    return this.runtime.open();
  }

  abstract capabilities(): Capabilities;

  /** MASTER vhids bow out first, so that a peer takes over at once instead of after master-down. */
  async close(): Promise<void> {
    await this.runtime.close();
    this.events.removeAllListeners();
  }

  /** Throws KernelError ENXIO when the interface does not exist. */
  protected abstract requireInterface(op: string, iface: string): void;

  /** The node now answers for a vhid's addresses (installed) or gave them up. Called inside the engine's step. */
  protected abstract carryVips(e: VipEvent): void;

  /** A vhid was created or its parameters or addresses changed (before the runtime hears of it). */
  protected vhidChanged(_r: UserspaceVhid): void {}

  /** A vhid went away (after the runtime let it go). */
  protected vhidRemoved(_r: UserspaceVhid): void {}

  /** The link of an interface: up when it can carry vhids (ENXIO when it does not exist). */
  async linkUp(iface: string): Promise<boolean> {
    this.requireInterface('read the link of', iface);
    return this.canRun(iface);
  }

  /** Whether the interface can carry vhids now (its link is up); a vhid on it stays in INIT otherwise. */
  protected canRun(_iface: string): boolean {
    return true;
  }

  /** Demotion the backend adds on its own (an interface that is down, as carp(4)'s ifdown factor). */
  protected automaticDemotion(): number {
    return 0;
  }

  async listVhids(query?: VhidQuery): Promise<LiveVhid[]> {
    let picked: Iterable<UserspaceVhid> = this.records.values();
    if (query) {
      const some = new Set<UserspaceVhid>();
      for (const q of query.vhids ?? []) {
        const r = this.records.get(vhidKey(q.interface, q.vhid));
        if (r) some.add(r);
      }
      if (query.addresses?.length) {
        const wanted = new Set(query.addresses.map((a) => `${a.interface} ${parseCidr(a.address)?.address ?? a.address}`));
        // Held addresses are canonical CIDRs: the address is what comes before the slash.
        for (const r of this.records.values()) if (r.addresses.some((a) => wanted.has(`${r.iface} ${a.slice(0, a.indexOf('/'))}`))) some.add(r);
      }
      picked = some;
    }
    return [...picked]
      .map((r) => this.view(r))
      .sort((a, b) => (a.interface === b.interface ? a.vhid - b.vhid : a.interface < b.interface ? -1 : 1));
  }

  private view(r: UserspaceVhid): LiveVhid {
    const live = this.runtime.get(r.iface, r.vhid)!.engine;
    return {
      interface: r.iface,
      vhid: r.vhid,
      advbaseSec: r.params.advbaseSec,
      advskew: r.params.advskew,
      key: r.params.key,
      peer: r.params.peer,
      peer6: r.params.peer6,
      ...(r.params.protocol === 'vrrpv3' ? { protocol: 'vrrpv3' as const, vrrpPriority: r.params.vrrpPriority, vrrpIntervalCs: r.params.vrrpIntervalCs } : {}),
      state: live.state,
      // The engine's since is monotonic; shown as the wall time it corresponds to now.
      since: wallDate(this.clock, live.sinceMs),
      reason: live.cause === 'created' ? 'vhid created; waiting for an address' : live.reason,
      addresses: [...r.addresses],
      ...(r.params.macMode !== undefined ? { macMode: r.params.macMode } : {}),
      ...this.macsOf(r),
    };
  }

  /** The MACs the vhid's VIPs answer with (LiveVhid.mac, mac6, virtualMac); undefined when unknown. */
  protected macsOf(_r: UserspaceVhid): Pick<LiveVhid, 'mac' | 'mac6' | 'virtualMac'> | undefined {
    return undefined;
  }

  async setVhid(iface: string, vhid: number, p: VhidParams): Promise<void> {
    const op = `set vhid ${vhid}`;
    this.requireInterface(op, iface);
    const existing = this.records.get(vhidKey(iface, vhid));
    const params = checkedVhidParams(op, iface, vhid, p, { vrrpv3: this.capabilities().vrrpv3, macModes: this.capabilities().macModes, existing: existing && (existing.params.protocol ?? 'carp') });
    const key = vhidKey(iface, vhid);
    const r = this.records.get(key) ?? { iface, vhid, params, addresses: [] };
    r.params = params;
    this.records.set(key, r);
    this.push(r);
  }

  /** Hands the record's configuration to the runtime (which creates the vhid the first time). */
  private push(r: UserspaceVhid): void {
    this.vhidChanged(r);
    const { advbaseSec, advskew, key, peer, peer6, protocol, vrrpPriority, vrrpIntervalCs } = r.params;
    this.runtime.configure({ iface: r.iface, vhid: r.vhid, advbaseSec, advskew, key, peer, peer6, protocol, vrrpPriority, vrrpIntervalCs, addresses: r.addresses });
  }

  async removeVhid(iface: string, vhid: number): Promise<void> {
    const r = this.records.get(vhidKey(iface, vhid));
    if (!r) throw KernelError.of('ENOENT', `remove vhid ${vhid}`, iface, 'no such vhid');
    this.destroy(r, 'vhid removed');
  }

  private destroy(r: UserspaceVhid, reason: string): void {
    // The runtime still has the old address set, so a MASTER's bow-out authenticates at the peer.
    this.runtime.remove(r.iface, r.vhid, reason);
    this.records.delete(vhidKey(r.iface, r.vhid));
    this.vhidRemoved(r);
  }

  async addAddress(iface: string, vhid: number, cidr: string): Promise<void> {
    const op = `add address ${cidr} to vhid ${vhid}`;
    this.requireInterface(op, iface);
    const c = canonicalCidr(cidr);
    if (!c) throw KernelError.of('EINVAL', op, iface, 'not an address with a prefix');
    // The addresses are held canonical: each is compared as text, with no copy of the vhids
    // and no parse per address (a batch adds every address of a bootstrap file one by one).
    const addr = parseCidr(c)!.address;
    const isAddr = (a: string) => canonicalCidrHas(a, addr);
    let onIface = false;
    const holders: UserspaceVhid[] = [];
    for (const other of this.records.values()) {
      if (other.iface !== iface) continue;
      onIface = true;
      if (other.addresses.some(isAddr)) holders.push(other);
    }
    if (!onIface) throw KernelError.of('ENOPROTOOPT', op, iface, 'the interface has no vhid; set the vhid before its addresses');
    const r = this.records.get(vhidKey(iface, vhid));
    if (!r) throw KernelError.of('ENOENT', op, iface, `vhid ${vhid} does not exist on the interface`);
    // As SIOCAIFADDR does: an address already present is removed first, then added to this vhid.
    for (const other of holders) {
      const i = other.addresses.findIndex(isAddr);
      if (i >= 0 && other !== r) this.dropAddress(other, i);
      else if (i >= 0) other.addresses.splice(i, 1);
    }
    r.addresses.push(c);
    this.push(r);
    if (this.runtime.get(iface, vhid)!.engine.state === 'INIT' && this.globals.allow && this.canRun(iface)) this.runtime.input(iface, vhid, { kind: 'up' });
  }

  async removeAddress(iface: string, vhid: number, cidr: string): Promise<void> {
    const op = `remove address ${cidr} from vhid ${vhid}`;
    this.requireInterface(op, iface);
    const c = parseCidr(cidr);
    const r = this.records.get(vhidKey(iface, vhid));
    const i = r && c ? r.addresses.findIndex((a) => parseCidr(a)!.address === c.address) : -1;
    if (!r || i < 0) throw KernelError.of('EADDRNOTAVAIL', op, iface, 'the address is not on that vhid');
    this.dropAddress(r, i);
  }

  private dropAddress(r: UserspaceVhid, i: number): void {
    // carp(4): the vhid goes away with its last address.
    if (r.addresses.length === 1) return this.destroy(r, 'last address removed');
    r.addresses.splice(i, 1);
    this.push(r);
  }

  async forceState(iface: string, vhid: number, state: 'BACKUP' | 'MASTER'): Promise<void> {
    if (!this.records.has(vhidKey(iface, vhid))) throw KernelError.of('ENOENT', `force vhid ${vhid} to ${state}`, iface, 'no such vhid');
    this.runtime.input(iface, vhid, { kind: 'force', state, reason: `forced to ${state} by the administrator` });
  }

  async getCarpGlobals(): Promise<CarpGlobals & { demotion: number }> {
    return { ...this.globals, demotion: this.demotion() };
  }

  private demotion(): number {
    return (this.maintenance ? MAINTENANCE : 0) + this.named.total + this.automaticDemotion();
  }

  /** Hands a changed demotion (maintenance, automaticDemotion()) to every vhid. */
  protected refreshDemotion(): void {
    this.runtime.setGlobals({ preempt: this.globals.preempt, demotion: this.demotion() });
  }

  async setCarpGlobals(g: CarpGlobals): Promise<void> {
    const was = this.globals.allow;
    this.globals = { allow: g.allow, preempt: g.preempt };
    this.runtime.setGlobals({ preempt: g.preempt, demotion: this.demotion() });
    if (was && !g.allow) {
      for (const r of this.records.values()) this.runtime.input(r.iface, r.vhid, { kind: 'down', reason: 'net.inet.carp.allow set to 0' });
    } else if (!was && g.allow) {
      for (const r of this.records.values()) if (r.addresses.length > 0 && this.canRun(r.iface)) this.runtime.input(r.iface, r.vhid, { kind: 'up' });
    }
  }

  async getMaintenance(): Promise<boolean> {
    return this.maintenance;
  }

  async setMaintenance(on: boolean): Promise<void> {
    this.maintenance = on;
    this.refreshDemotion();
  }

  async demotions(): Promise<Map<string, number>> {
    return this.named.map();
  }

  async setDemotion(name: string, amount: number): Promise<void> {
    this.named.set(name, amount);
    this.refreshDemotion();
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
   * carpstats as the runtime counted them since this backend started: advertisements really
   * sent and received, and every dropped one under its reason (badauth for a wrong password or
   * VIP set, ...). The tunables are FreeBSD's defaults; pfsync is the subclass's to report.
   */
  async stats(): Promise<KernelStats> {
    const s = this.runtime.stats();
    const pfsync = this.pfsyncStats();
    return {
      carp: Object.fromEntries(CARP_COUNTERS.map((n) => [n, s[n]])) as KernelStats['carp'],
      ...(pfsync ? { pfsync } : {}),
      sysctls: { carpLog: 1, ...(pfsync ? { pfsyncCarpDemotionFactor: DEMOTION_FACTOR } : {}), senderrDemotionFactor: DEMOTION_FACTOR, ifdownDemotionFactor: DEMOTION_FACTOR },
    };
  }

  /** The senders heard per vhid, from the runtime's bounded record. */
  async advertSources(): Promise<AdvertSource[]> {
    const now = this.clock.now();
    return this.runtime.heard().map(({ lastMs, ...h }) => ({ ...h, ageMs: Math.max(0, now - lastMs) }));
  }

  /** pfsync's counters, or undefined where the node has no pfsync. */
  protected abstract pfsyncStats(): KernelStats['pfsync'];

  /**
   * The single steps one after the other (each is a change of the engine's configuration in
   * memory), taken back on a failure; the listeners hear the batch's state changes once it has
   * ended, so a batch of many vhids is one evaluation for them.
   */
  async apply(steps: readonly BackendStep[]): Promise<void> {
    return this.changes.during(() => applyStepwise(this, steps));
  }

  onStateChange(listener: (c: StateChange) => void): () => void {
    this.events.on('state', listener);
    return () => this.events.off('state', listener);
  }

  private onTransition(e: TransitionEvent): void {
    const c: StateChange = { interface: e.iface, vhid: e.vhid, state: e.to, previous: e.from, reason: e.reason, at: wallDate(this.clock, e.atMs) };
    this.changes.report(c);
  }

  private onVips(e: VipEvent): void {
    try {
      this.carryVips(e);
    } catch (err) {
      // A VIP that could not be installed is logged loudly; the engine's state stands (carp(4) too
      // stays MASTER when an address cannot be announced).
      this.logger?.error({ event: `${this.name}.vips.failed`, interface: e.iface, vhid: e.vhid, addresses: e.addresses, err: (err as Error).message }, `${e.iface} vhid ${e.vhid}: ${(err as Error).message}`);
    }
  }

  /** The first drop of a kind from one sender is a warning (a wrong password shows at once); repeats are debug. */
  private onDrop(e: DropEvent): void {
    const where = e.iface ? `${e.iface}${e.vhid !== undefined ? ` vhid ${e.vhid}` : ''}` : this.runtime.description;
    this.warnOnce(
      `${e.counter} ${e.iface ?? ''}/${e.vhid ?? ''} ${e.from ?? ''}`,
      { event: `${this.name}.packet.dropped`, counter: e.counter, interface: e.iface, vhid: e.vhid, from: e.from, detail: e.detail },
      `${where}: dropped an advertisement${e.from ? ` from ${e.from}` : ''} (${e.counter}): ${e.detail}`,
    );
  }

  protected warnOnce(key: string, fields: Record<string, unknown>, msg: string): void {
    if (!this.logger) return;
    const first = !this.dropsSeen.has(key) && this.dropsSeen.size < DROP_MEMORY;
    if (first) {
      this.dropsSeen.add(key);
      this.logger.warn(fields, msg);
    } else {
      this.logger.debug(fields, msg);
    }
  }
}
