/**
 * The `sim` backend: the userspace CARP engine (src/engine, driven by src/runtime) exchanging
 * real CARP advertisements over a segment that needs no privilege — UDP multicast on loopback
 * in carpd, an in-memory segment in tests — with the VIP addresses kept in memory. Several
 * carpd processes on one machine thereby really elect a master, fail over and preempt.
 *
 * The kernel contract (backend.ts) is enforced exactly as memory.ts does it (the reference):
 * the same errnos, the vhid going away with its last address, maintenance as exactly 240 of
 * demotion, allow=0 putting every vhid in INIT, pfsync settings kept in memory. What differs is
 * that the state comes from the engine, which hears its peers: a vhid becomes MASTER only when
 * nobody better advertises, and carpstats counts what really crossed the segment.
 *
 * Unicast peers (peer/peer6) are accepted and reported, as the service plans with them; the sim
 * segment has no host addresses to aim at, so advertisements still reach every node attached
 * to the interface's segment — on a two-node segment, exactly the peer.
 */
import { EventEmitter } from 'node:events';
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import { canonicalCidr, parseCidr } from '../config/ip.js';
import { CarpRuntime, vhidKey, type DropEvent, type TransitionEvent, type VipEvent } from '../runtime/driver.js';
import { SIM_MAX_IFNAME, SIM_MAX_NODE_NAME } from '../runtime/frame.js';
import type { PacketTransport } from '../runtime/transport.js';
import {
  CARP_COUNTERS,
  systemClock,
  type CarpGlobals,
  type Capabilities,
  type Clock,
  type KernelBackend,
  type KernelStats,
  type LiveVhid,
  type PfsyncLive,
  type PfsyncSettings,
  type StateChange,
  type VhidParams,
} from './backend.js';
import { KernelError } from './errno.js';
import { PfsyncModel } from './pfsync-model.js';

export interface SimBackendOptions {
  /** The segment: UdpMulticastTransport in carpd, a MemoryNetwork endpoint in tests. */
  transport: PacketTransport;
  clock?: Clock;
  /** Interfaces that exist (the segments this node is attached to); any name when omitted. */
  interfaces?: string[];
  /** This node's name in advertisements (peers' reasons say "from <node>"). Default: the host name. */
  node?: string;
  /** 64-bit random values for counter seeds and the instance id; default crypto. */
  random?: () => bigint;
  logger?: Logger;
}

/** A vhid as configured through the contract; its live state is the runtime's. */
interface SimVhid {
  iface: string;
  vhid: number;
  params: VhidParams;
  addresses: string[];
}

const MAINTENANCE = 240;
/** FreeBSD's default for net.inet.carp.*_demotion_factor and net.pfsync.carp_demotion_factor. */
const DEMOTION_FACTOR = 240;
/** Distinct drop sources remembered for "log the first one loudly"; beyond it all go to debug. */
const DROP_MEMORY = 1000;

export class SimBackend implements KernelBackend {
  readonly name = 'sim' as const;
  readonly description: string;
  readonly node: string;
  private readonly clock: Clock;
  private readonly interfaces?: Set<string>;
  private readonly runtime: CarpRuntime;
  private readonly records = new Map<string, SimVhid>();
  private readonly installed = new Map<string, string[]>();
  private readonly events = new EventEmitter();
  private readonly logger?: Logger;
  private readonly dropsSeen = new Set<string>();
  private globals: CarpGlobals = { allow: true, preempt: false };
  private maintenance = false;
  private readonly pfsync: PfsyncModel;

  constructor(opts: SimBackendOptions) {
    this.clock = opts.clock ?? systemClock;
    this.interfaces = opts.interfaces ? new Set(opts.interfaces) : undefined;
    this.pfsync = new PfsyncModel(this.interfaces);
    this.node = opts.node ?? hostname().slice(0, SIM_MAX_NODE_NAME);
    this.logger = opts.logger;
    this.description = `userspace CARP engine, node ${this.node}, over ${opts.transport.description}; VIPs kept in memory`;
    this.runtime = new CarpRuntime({
      transport: opts.transport,
      node: this.node,
      clock: this.clock,
      random: opts.random,
      attached: (iface) => !this.interfaces || this.interfaces.has(iface),
      onTransition: (e) => this.onTransition(e),
      onVips: (e) => this.onVips(e),
      onDrop: (e) => this.onDrop(e),
      onSendError: (e, iface, vhid) => this.warnOnce(`send ${iface}/${vhid} ${e.message}`, { event: 'sim.send.failed', interface: iface, vhid, err: e.message }, `${iface} vhid ${vhid}: advertisement not sent: ${e.message}`),
    });
  }

  /** A backend attached to its segment. */
  static async open(opts: SimBackendOptions): Promise<SimBackend> {
    const b = new SimBackend(opts);
    await b.start();
    return b;
  }

  /** Attaches to the segment (binds the socket). */
  start(): Promise<void> {
    return this.runtime.open();
  }

  capabilities(): Capabilities {
    return { unicast: true, ipv6: true, pfsync: true, pfsyncVersions: [1301, 1400, 1500], forceState: true, vrrpv3: false };
  }

  /** MASTER vhids bow out first, so that a peer takes over at once instead of after master-down. */
  async close(): Promise<void> {
    await this.runtime.close();
    this.events.removeAllListeners();
  }

  private requireInterface(op: string, iface: string): void {
    if (this.interfaces ? !this.interfaces.has(iface) : !/^[\x21-\x7e]+$/.test(iface) || iface.length > SIM_MAX_IFNAME) {
      throw KernelError.of('ENXIO', op, iface, 'no such interface');
    }
  }

  async listVhids(): Promise<LiveVhid[]> {
    return [...this.records.values()]
      .map((r) => this.view(r))
      .sort((a, b) => (a.interface === b.interface ? a.vhid - b.vhid : a.interface < b.interface ? -1 : 1));
  }

  private view(r: SimVhid): LiveVhid {
    const live = this.runtime.get(r.iface, r.vhid)!.engine;
    return {
      interface: r.iface,
      vhid: r.vhid,
      advbaseSec: r.params.advbaseSec,
      advskew: r.params.advskew,
      key: r.params.key,
      peer: r.params.peer,
      peer6: r.params.peer6,
      state: live.state,
      since: new Date(live.sinceMs),
      reason: live.cause === 'created' ? 'vhid created; waiting for an address' : live.reason,
      addresses: [...r.addresses],
    };
  }

  async setVhid(iface: string, vhid: number, p: VhidParams): Promise<void> {
    const op = `set vhid ${vhid}`;
    this.requireInterface(op, iface);
    if (!Number.isInteger(vhid) || vhid < 1 || vhid > 255) throw KernelError.of('EINVAL', op, iface, 'vhid outside 1..255');
    if (!Number.isInteger(p.advbaseSec) || p.advbaseSec < 1 || p.advbaseSec > 255) throw KernelError.of('EINVAL', op, iface, 'advbase outside 1..255');
    if (!Number.isInteger(p.advskew) || p.advskew < 0 || p.advskew > 254) throw KernelError.of('EINVAL', op, iface, 'advskew outside 0..254');
    if (p.key !== undefined && Buffer.byteLength(p.key) > 20) throw KernelError.of('EINVAL', op, iface, 'key longer than 20 bytes');
    const params: VhidParams = { advbaseSec: p.advbaseSec, advskew: p.advskew, key: p.key, peer: p.peer, peer6: p.peer6 };
    const key = vhidKey(iface, vhid);
    const r = this.records.get(key) ?? { iface, vhid, params, addresses: [] };
    r.params = params;
    this.records.set(key, r);
    this.push(r);
  }

  /** Hands the record's configuration to the runtime (which creates the vhid the first time). */
  private push(r: SimVhid): void {
    this.runtime.configure({ iface: r.iface, vhid: r.vhid, advbaseSec: r.params.advbaseSec, advskew: r.params.advskew, key: r.params.key, addresses: r.addresses });
  }

  async removeVhid(iface: string, vhid: number): Promise<void> {
    const r = this.records.get(vhidKey(iface, vhid));
    if (!r) throw KernelError.of('ENOENT', `remove vhid ${vhid}`, iface, 'no such vhid');
    this.destroy(r, 'vhid removed');
  }

  private destroy(r: SimVhid, reason: string): void {
    // The runtime still has the old address set, so a MASTER's bow-out authenticates at the peer.
    this.runtime.remove(r.iface, r.vhid, reason);
    this.records.delete(vhidKey(r.iface, r.vhid));
    this.installed.delete(vhidKey(r.iface, r.vhid));
  }

  async addAddress(iface: string, vhid: number, cidr: string): Promise<void> {
    const op = `add address ${cidr} to vhid ${vhid}`;
    this.requireInterface(op, iface);
    const c = canonicalCidr(cidr);
    if (!c) throw KernelError.of('EINVAL', op, iface, 'not an address with a prefix');
    const onIface = [...this.records.values()].filter((r) => r.iface === iface);
    if (onIface.length === 0) throw KernelError.of('ENOPROTOOPT', op, iface, 'the interface has no vhid; set the vhid before its addresses');
    const r = this.records.get(vhidKey(iface, vhid));
    if (!r) throw KernelError.of('ENOENT', op, iface, `vhid ${vhid} does not exist on the interface`);
    // As SIOCAIFADDR does: an address already present is removed first, then added to this vhid.
    const addr = parseCidr(c)!.address;
    for (const other of onIface) {
      const i = other.addresses.findIndex((a) => parseCidr(a)!.address === addr);
      if (i >= 0 && other !== r) this.dropAddress(other, i);
      else if (i >= 0) other.addresses.splice(i, 1);
    }
    r.addresses.push(c);
    this.push(r);
    if (this.runtime.get(iface, vhid)!.engine.state === 'INIT' && this.globals.allow) this.runtime.input(iface, vhid, { kind: 'up' });
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

  private dropAddress(r: SimVhid, i: number): void {
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
    return this.maintenance ? MAINTENANCE : 0;
  }

  async setCarpGlobals(g: CarpGlobals): Promise<void> {
    const was = this.globals.allow;
    this.globals = { allow: g.allow, preempt: g.preempt };
    this.runtime.setGlobals({ preempt: g.preempt, demotion: this.demotion() });
    if (was && !g.allow) {
      for (const r of this.records.values()) this.runtime.input(r.iface, r.vhid, { kind: 'down', reason: 'net.inet.carp.allow set to 0' });
    } else if (!was && g.allow) {
      for (const r of this.records.values()) if (r.addresses.length > 0) this.runtime.input(r.iface, r.vhid, { kind: 'up' });
    }
  }

  async getMaintenance(): Promise<boolean> {
    return this.maintenance;
  }

  async setMaintenance(on: boolean): Promise<void> {
    this.maintenance = on;
    this.runtime.setGlobals({ preempt: this.globals.preempt, demotion: this.demotion() });
  }

  async getPfsync(): Promise<PfsyncLive> {
    return this.pfsync.get();
  }

  async setPfsync(s: PfsyncSettings): Promise<void> {
    this.pfsync.set(s);
  }

  /**
   * carpstats as the runtime counted them since this backend started: advertisements really
   * sent and received over the segment, and every dropped one under its reason (badauth for a
   * wrong password or VIP set, ...). pfsync is configured in memory only, so it has no counters
   * (ACT_MAX 0), as in memory.ts; the tunables are FreeBSD's defaults.
   */
  async stats(): Promise<KernelStats> {
    const s = this.runtime.stats();
    return {
      carp: Object.fromEntries(CARP_COUNTERS.map((n) => [n, s[n]])) as KernelStats['carp'],
      pfsync: { counters: {}, actMax: 0 },
      sysctls: { carpLog: 1, pfsyncCarpDemotionFactor: DEMOTION_FACTOR, senderrDemotionFactor: DEMOTION_FACTOR, ifdownDemotionFactor: DEMOTION_FACTOR },
    };
  }

  onStateChange(listener: (c: StateChange) => void): () => void {
    this.events.on('state', listener);
    return () => this.events.off('state', listener);
  }

  /** The VIPs this node currently answers for (those of its MASTER vhids), by vhid. */
  installedVips(): { interface: string; vhid: number; addresses: string[] }[] {
    return [...this.installed.entries()].map(([k, addresses]) => {
      const [iface, vhid] = k.split('/');
      return { interface: iface, vhid: Number(vhid), addresses: [...addresses] };
    });
  }

  private onTransition(e: TransitionEvent): void {
    const c: StateChange = { interface: e.iface, vhid: e.vhid, state: e.to, previous: e.from, reason: e.reason, at: new Date(e.atMs) };
    this.events.emit('state', c);
  }

  private onVips(e: VipEvent): void {
    const key = vhidKey(e.iface, e.vhid);
    if (e.installed) this.installed.set(key, e.addresses);
    else this.installed.delete(key);
    this.logger?.debug(
      { event: e.installed ? 'sim.vips.installed' : 'sim.vips.removed', interface: e.iface, vhid: e.vhid, addresses: e.addresses },
      `${e.iface} vhid ${e.vhid}: ${e.installed ? 'answering for' : 'no longer answering for'} ${e.addresses.join(', ')} (in memory)`,
    );
  }

  /** The first drop of a kind from one sender is a warning (a wrong password shows at once); repeats are debug. */
  private onDrop(e: DropEvent): void {
    const where = e.iface ? `${e.iface}${e.vhid !== undefined ? ` vhid ${e.vhid}` : ''}` : 'sim segment';
    this.warnOnce(
      `${e.counter} ${e.iface ?? ''}/${e.vhid ?? ''} ${e.from ?? ''}`,
      { event: 'sim.packet.dropped', counter: e.counter, interface: e.iface, vhid: e.vhid, from: e.from, detail: e.detail },
      `${where}: dropped an advertisement${e.from ? ` from ${e.from}` : ''} (${e.counter}): ${e.detail}`,
    );
  }

  private warnOnce(key: string, fields: Record<string, unknown>, msg: string): void {
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
