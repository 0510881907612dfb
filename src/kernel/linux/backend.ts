/**
 * The `linux` backend: the userspace CARP engine (../userspace.ts) on real interfaces. CARP
 * advertisements travel as IP protocol 112 through raw sockets (raw.ts), byte for byte what
 * carp(4) and ucarp send; the VIPs of a MASTER vhid are added to the interface through
 * rtnetlink (rtnetlink.ts) and announced with a gratuitous ARP / unsolicited neighbour
 * advertisement (announce.ts); BACKUP, INIT and an orderly stop take them off again. No process
 * is forked: every system call goes through koffi.
 *
 *   raw sockets ── poll.async (poller.ts) ── RawAdvertLink ── CarpRuntime ── engine
 *                                                               │
 *                                        install/remove VIPs ───┴── rtnetlink + announce
 *
 * Ownership of addresses: every VIP carpd adds carries the rtnetlink address protocol
 * CARPD_ADDR_PROTO (IFA_PROTO). On start, and whenever a vhid is configured, VIPs of that vhid
 * left on the interface with that tag (by a carpd killed while MASTER) are removed unless the
 * vhid is MASTER; an address the administrator put there without the tag is never touched.
 *
 * Link state: an interface going down puts its vhids in INIT and adds carp(4)'s ifdown demotion
 * (240) per vhid until it comes back, as FreeBSD does; up puts them back in BACKUP.
 *
 * Linux has no pfsync: capabilities say so, and enabling it is refused by the service.
 */
import type { Logger } from 'pino';
import { hostname } from 'node:os';
import { parseCidr } from '../../wire/address.js';
import type { VipEvent } from '../../runtime/driver.js';
import type { AdvertLink, LinkHandlers, OutgoingAdvert } from '../../runtime/link.js';
import { carpGroup } from '../../wire/ip.js';
import type { Capabilities, KernelStats, LiveVhid, MacMode } from '../backend.js';
import type { Clock } from '../../clock.js';
import { KernelError } from '../errno.js';
import { DEMOTION_FACTOR, UserspaceBackend, type UserspaceVhid } from '../userspace.js';
import { Announcer } from './announce.js';
import { Poller } from './poller.js';
import { RawIpLink } from './raw.js';
import { Rtnetlink } from './rtnetlink.js';
import { VirtualMacs, hostPrefixed, virtualMacPlan, type ActiveVmac } from './vmac.js';

/** IFA_PROTO value tagging the addresses carpd installs (112, CARP's IP protocol number). */
export const CARPD_ADDR_PROTO = 112;

export interface LinuxBackendOptions {
  logger?: Logger;
  /** This node's name in logs and status. Default: the host name. */
  node?: string;
  clock?: Clock;
  random?: () => bigint;
  /**
   * The MAC mode of a vhid whose parameters name none: `interface` (the default: the parent's
   * own MAC, as before) or `virtual` (a macvlan with the virtual MAC; vmac.ts).
   */
  macMode?: MacMode;
}

/** The runtime's link over RawIpLink: advertisements as IP protocol 112. */
class RawAdvertLink implements AdvertLink {
  readonly description = 'IP protocol 112 on raw sockets (224.0.0.18 / ff02::12, or unicast peers)';
  raw?: RawIpLink;
  /** Set by the backend: the virtual MACs multicast advertisements of a MASTER leave from. */
  vmacs?: VirtualMacs;

  constructor(
    private readonly poller: Poller,
    private readonly rtnl: Rtnetlink,
    private readonly onError: (e: Error) => void,
  ) {}

  async open(h: LinkHandlers): Promise<void> {
    this.raw = RawIpLink.open({
      poller: this.poller,
      onPacket: (p) => h.advert({ iface: p.iface, family: p.family, payload: p.payload, from: p.source, source: p.source, destination: p.destination, ttl: p.ttl }),
      onDrop: (d) => h.drop({ family: d.family, counter: 'hdrops', detail: `${d.reason}: ${d.detail}`, iface: d.iface }),
      onError: this.onError,
    });
  }

  async send(a: OutgoingAdvert): Promise<void> {
    if (!this.raw) throw new Error('link not open');
    // A vhid with a virtual MAC sends its multicast advertisements from it (RFC 5798 §7.3;
    // carp(4) too); unicast ones, addressed to one peer, leave from the parent.
    const vmac = a.destination === undefined && a.vhid !== undefined ? this.vmacs?.sender(a.iface, a.vhid, a.family) : undefined;
    if (vmac) return this.vmacs!.sendAdvert(a.iface, vmac, a.family, a.payload, a.pseudoHeaderChecksumAt);
    this.raw.send({ iface: a.iface, family: a.family, destination: a.destination ?? carpGroup(a.family), payload: a.payload, pseudoHeaderChecksumAt: a.pseudoHeaderChecksumAt });
  }

  /** IPv4: the source the link sends from (not a VIP); IPv6: the interface's link-local address, as RFC 5798 wants. */
  primaryAddress(iface: string, family: 4 | 6): string | undefined {
    try {
      if (family === 4) return this.raw?.ipv4Source(iface);
      return this.rtnl.listAddresses(iface).find((a) => a.family === 6 && a.address.startsWith('fe80:'))?.address;
    } catch {
      return undefined;
    }
  }

  async close(): Promise<void> {
    await this.raw?.close();
  }

  /** Reads what the raw sockets already hold (non-blocking recv until EAGAIN). */
  drainNow(): void {
    this.raw?.drainAll();
  }
}

export class LinuxBackend extends UserspaceBackend {
  private readonly poller: Poller;
  private readonly link: RawAdvertLink;
  private readonly rtnl: Rtnetlink;
  private readonly announcer: Announcer;
  private unwatch?: () => void;
  /** Interfaces whose link is down (IFF_UP and carrier), as last reported. */
  private readonly down = new Set<string>();
  private readonly attachedIfaces = new Set<string>();
  private readonly defaultMacMode: MacMode;
  private readonly vmacs: VirtualMacs;
  /** The parent interfaces' own MACs, as last read. */
  private readonly ifaceMacs = new Map<string, string>();
  /** The MAC mode and addresses each vhid's VIPs were installed with, while installed. */
  private readonly installedAs = new Map<string, { mode: MacMode; addresses: string[] }>();

  private constructor(opts: LinuxBackendOptions, poller: Poller, link: RawAdvertLink, rtnl: Rtnetlink) {
    const node = opts.node ?? hostname();
    super({
      name: 'linux',
      node,
      description: `userspace CARP engine, node ${node}, on Linux raw sockets (IP protocol 112); VIPs installed through rtnetlink`,
      runtime: { link },
      clock: opts.clock,
      random: opts.random,
      logger: opts.logger,
    });
    this.poller = poller;
    this.link = link;
    this.rtnl = rtnl;
    this.announcer = new Announcer();
    this.defaultMacMode = opts.macMode ?? 'interface';
    this.vmacs = new VirtualMacs(rtnl, this.announcer, {
      ipv4Source: (parent) => {
        if (!link.raw) throw new Error('link not open');
        return link.raw.ipv4Source(parent);
      },
      linkLocal: (parent) => link.primaryAddress(parent, 6),
      info: (event, fields, msg) => this.logger?.info({ event, ...fields }, msg),
    });
    link.vmacs = this.vmacs;
  }

  /** Opens the sockets (needs CAP_NET_RAW and CAP_NET_ADMIN: EPERM otherwise). */
  static async open(opts: LinuxBackendOptions = {}): Promise<LinuxBackend> {
    const onError = (e: Error) => opts.logger?.error({ event: 'linux.io.error', err: e.message }, `packet I/O: ${e.message}`);
    const poller = new Poller({ onError });
    let rtnl: Rtnetlink | undefined;
    try {
      rtnl = Rtnetlink.open();
      const link = new RawAdvertLink(poller, rtnl, onError);
      const b = new LinuxBackend(opts, poller, link, rtnl);
      // Before any vhid can be MASTER: the macvlans a killed carpd left.
      try {
        b.vmacs.sweep();
      } catch (e) {
        opts.logger?.warn({ event: 'linux.vmac.sweep.failed', err: (e as Error).message }, `could not look for macvlans left by an earlier carpd: ${(e as Error).message}`);
      }
      await b.start();
      b.unwatch = rtnl.watchLinks(poller, (c) => b.onLink(c.iface, c.up), onError);
      return b;
    } catch (e) {
      rtnl?.close();
      await poller.close();
      throw e;
    }
  }

  capabilities(): Capabilities {
    return { unicast: true, ipv6: true, pfsync: false, pfsyncVersions: [], forceState: true, vrrpv3: true, macModes: ['virtual', 'interface'] };
  }

  override async close(): Promise<void> {
    // The runtime's close makes every MASTER bow out and give its VIPs up (carryVips below).
    await super.close();
    this.vmacs.close();
    this.unwatch?.();
    this.announcer.close();
    this.rtnl.close();
    await this.poller.close();
  }

  protected requireInterface(op: string, iface: string): void {
    try {
      this.rtnl.linkInfo(iface);
    } catch (e) {
      if (e instanceof KernelError && e.errnoName === 'ENXIO') throw KernelError.of('ENXIO', op, iface, 'no such interface');
      throw e;
    }
  }

  protected pfsyncStats(): KernelStats['pfsync'] {
    return undefined;
  }

  /** The link as rtnetlink reports it now (IFF_UP and IFF_RUNNING), attached or not. */
  override async linkUp(iface: string): Promise<boolean> {
    return this.rtnl.linkInfo(iface).up;
  }

  protected override canRun(iface: string): boolean {
    return !this.down.has(iface);
  }

  protected override automaticDemotion(): number {
    let n = 0;
    for (const r of this.records.values()) if (this.down.has(r.iface)) n += DEMOTION_FACTOR;
    return n;
  }

  protected override vhidChanged(r: UserspaceVhid): void {
    if (!this.attachedIfaces.has(r.iface)) {
      this.link.raw!.attach(r.iface, { v4: true, v6: true });
      this.attachedIfaces.add(r.iface);
      const info = this.rtnl.linkInfo(r.iface);
      if (!info.up) this.down.add(r.iface);
      this.ifaceMacs.set(r.iface, info.mac);
    }
    this.excludeVips(r.iface);
    // Installed with another MAC mode, or (virtual) other addresses: installed again as they are now.
    const key = `${r.iface}/${r.vhid}`;
    const was = this.installedAs.get(key);
    const mode = this.macModeOf(r);
    if (was && (was.mode !== mode || (mode === 'virtual' && was.addresses.join() !== r.addresses.join()))) {
      this.carryVips({ iface: r.iface, vhid: r.vhid, installed: false, addresses: was.addresses });
      this.carryVips({ iface: r.iface, vhid: r.vhid, installed: true, addresses: r.addresses });
    }
    // Addresses of this vhid that a previous carpd left installed: a vhid that is not MASTER must not hold them.
    const live = this.runtime.get(r.iface, r.vhid);
    if (live?.engine.state !== 'MASTER') this.removeStale(r.iface, r.addresses);
  }

  protected override vhidRemoved(r: UserspaceVhid): void {
    this.excludeVips(r.iface);
    if (![...this.records.values()].some((o) => o.iface === r.iface)) {
      this.link.raw?.detach(r.iface);
      this.attachedIfaces.delete(r.iface);
      this.down.delete(r.iface);
    }
  }

  /** Every VIP configured on the interface is kept out of the IPv4 source address choice. */
  private excludeVips(iface: string): void {
    const vips = [...this.records.values()].filter((r) => r.iface === iface).flatMap((r) => r.addresses.map((a) => parseCidr(a)!.address));
    this.link.raw?.setExcludedSources(iface, vips);
  }

  private removeStale(iface: string, cidrs: readonly string[]): void {
    const wanted = new Set(cidrs.map((c) => parseCidr(c)!.address));
    for (const a of this.rtnl.listAddresses(iface)) {
      if (a.proto === CARPD_ADDR_PROTO && wanted.has(a.address)) {
        this.rtnl.removeAddress(iface, `${a.address}/${a.prefix}`);
        this.logger?.info({ event: 'linux.vips.stale', interface: iface, address: a.address }, `${iface}: removed ${a.address}, left installed by an earlier carpd; the vhid is not MASTER here`);
      }
    }
  }

  private macModeOf(r: UserspaceVhid | undefined): MacMode {
    return r?.params.macMode ?? this.defaultMacMode;
  }

  /** The MACs the vhid's VIPs answer with (the virtual ones, or the parent's own). */
  protected override macsOf(r: UserspaceVhid): Pick<LiveVhid, 'mac' | 'mac6' | 'virtualMac'> | undefined {
    if (this.macModeOf(r) === 'interface') {
      const mac = this.ifaceMacs.get(r.iface);
      return mac ? { mac, virtualMac: false } : undefined;
    }
    const plan = virtualMacPlan(1, r.vhid, r.params.protocol ?? 'carp', r.addresses.length > 0 ? r.addresses : ['0.0.0.0/32']);
    const v4 = plan.find((p) => p.families.includes(4));
    const v6 = plan.find((p) => p.families.includes(6));
    return { mac: (v4 ?? v6)!.mac, ...(v4 && v6 && v6 !== v4 ? { mac6: v6.mac } : {}), virtualMac: true };
  }

  protected carryVips(e: VipEvent): void {
    const key = `${e.iface}/${e.vhid}`;
    const r = this.records.get(key);
    const mode = e.installed ? this.macModeOf(r) : (this.installedAs.get(key)?.mode ?? this.macModeOf(r));
    if (e.installed) this.installedAs.set(key, { mode, addresses: [...e.addresses] });
    else this.installedAs.delete(key);
    if (mode === 'virtual') return this.carryVirtual(e, r?.params.protocol ?? 'carp');
    const failures: string[] = [];
    let mac: string | undefined;
    for (const cidr of e.addresses) {
      const c = parseCidr(cidr)!;
      const prefixed = hostPrefixed(cidr);
      try {
        if (e.installed) {
          this.rtnl.addAddress(e.iface, prefixed, { noDad: true, proto: CARPD_ADDR_PROTO, replace: true });
          mac ??= this.rtnl.linkInfo(e.iface).mac;
          if (c.address.includes(':')) this.announcer.unsolicitedNa(e.iface, c.address, mac);
          else this.announcer.gratuitousArp(e.iface, c.address, mac);
        } else {
          this.rtnl.removeAddress(e.iface, prefixed);
        }
      } catch (err) {
        if (!e.installed && err instanceof KernelError && err.errnoName === 'EADDRNOTAVAIL') continue;
        failures.push((err as Error).message);
      }
    }
    this.logger?.info(
      { event: e.installed ? 'linux.vips.installed' : 'linux.vips.removed', interface: e.iface, vhid: e.vhid, addresses: e.addresses },
      `${e.iface} vhid ${e.vhid}: ${e.installed ? 'installed and announced' : 'removed'} ${e.addresses.join(', ')}`,
    );
    if (failures.length > 0) throw new Error(failures.join('; '));
  }

  /** Virtual MAC: the VIPs on the vhid's macvlans, created for MASTER and deleted otherwise. */
  private carryVirtual(e: VipEvent, protocol: 'carp' | 'vrrpv3'): void {
    if (e.installed) {
      // A copy on the parent (an earlier run in interface mode) would answer with the parent's MAC.
      this.removeStale(e.iface, e.addresses);
      let made: ActiveVmac[];
      try {
        made = this.vmacs.install(e.iface, e.vhid, protocol, e.addresses, CARPD_ADDR_PROTO);
      } catch (err) {
        // An announcement failed after the macvlans were made: they stay, the error is logged.
        if (this.vmacs.sender(e.iface, e.vhid, 4) === undefined && this.vmacs.sender(e.iface, e.vhid, 6) === undefined) throw err;
        this.logger?.error({ event: 'linux.vips.failed', interface: e.iface, vhid: e.vhid, err: (err as Error).message }, `${e.iface} vhid ${e.vhid}: ${(err as Error).message}`);
        return;
      }
      this.logger?.info(
        { event: 'linux.vips.installed', interface: e.iface, vhid: e.vhid, addresses: e.addresses, macvlans: made.map((m) => m.name), mac: made.map((m) => m.mac) },
        `${e.iface} vhid ${e.vhid}: installed and announced ${e.addresses.join(', ')} on ${made.map((m) => `${m.name} (${m.mac})`).join(', ')}`,
      );
      return;
    }
    this.vmacs.remove(e.iface, e.vhid);
    this.logger?.info({ event: 'linux.vips.removed', interface: e.iface, vhid: e.vhid, addresses: e.addresses }, `${e.iface} vhid ${e.vhid}: removed ${e.addresses.join(', ')} with its virtual MAC`);
  }

  private onLink(iface: string, up: boolean): void {
    if (!this.attachedIfaces.has(iface) || this.down.has(iface) === !up) return;
    if (up) this.down.delete(iface);
    else this.down.add(iface);
    this.logger?.warn({ event: up ? 'linux.link.up' : 'linux.link.down', interface: iface }, `${iface}: link ${up ? 'up' : 'down'}`);
    for (const r of this.records.values()) {
      if (r.iface !== iface) continue;
      if (!up) this.runtime.input(iface, r.vhid, { kind: 'down', reason: `${iface}: link down` });
      else if (this.globals.allow && r.addresses.length > 0) this.runtime.input(iface, r.vhid, { kind: 'up' });
    }
    this.refreshDemotion();
  }
}
