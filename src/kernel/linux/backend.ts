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
import type { Capabilities, KernelStats } from '../backend.js';
import type { Clock } from '../../clock.js';
import { KernelError } from '../errno.js';
import { DEMOTION_FACTOR, UserspaceBackend, type UserspaceVhid } from '../userspace.js';
import { Announcer } from './announce.js';
import { Poller } from './poller.js';
import { RawIpLink } from './raw.js';
import { Rtnetlink } from './rtnetlink.js';

/** IFA_PROTO value tagging the addresses carpd installs (112, CARP's IP protocol number). */
export const CARPD_ADDR_PROTO = 112;

export interface LinuxBackendOptions {
  logger?: Logger;
  /** This node's name in logs and status. Default: the host name. */
  node?: string;
  clock?: Clock;
  random?: () => bigint;
}

/** The runtime's link over RawIpLink: advertisements as IP protocol 112. */
class RawAdvertLink implements AdvertLink {
  readonly description = 'IP protocol 112 on raw sockets (224.0.0.18 / ff02::12, or unicast peers)';
  raw?: RawIpLink;

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
    return { unicast: true, ipv6: true, pfsync: false, pfsyncVersions: [], forceState: true, vrrpv3: true };
  }

  override async close(): Promise<void> {
    // The runtime's close makes every MASTER bow out and give its VIPs up (carryVips below).
    await super.close();
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
    }
    this.excludeVips(r.iface);
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

  protected carryVips(e: VipEvent): void {
    const failures: string[] = [];
    let mac: string | undefined;
    for (const cidr of e.addresses) {
      const c = parseCidr(cidr)!;
      const prefixed = cidr.includes('/') ? cidr : `${c.address}/${c.address.includes(':') ? 128 : 32}`;
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
