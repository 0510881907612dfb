/**
 * The virtual MAC on Linux (macMode `virtual`): a vhid that is MASTER gets a macvlan on its
 * parent interface whose MAC is carp(4)'s 00:00:5e:00:01:<vhid> (VRRPv3: 00:00:5e:00:01:<vrid>
 * for IPv4 and 00:00:5e:00:02:<vrid> for IPv6, RFC 5798 §7.3, so such a vhid with both families
 * has two). Its VIPs are put on the macvlan, so the kernel answers ARP and neighbour
 * solicitations for them with the virtual MAC; the gratuitous ARP / unsolicited NA and the
 * multicast advertisements leave from it, with the virtual MAC as Ethernet source. BACKUP,
 * INIT, removal and an orderly stop delete the macvlan (its addresses go with it).
 *
 *   parent lan0 ──┬── cv<ifindex>.<vhid>    00:00:5e:00:01:<vhid>   (CARP; VRRPv3 IPv4)
 *                 └── cv<ifindex>.<vrid>.6  00:00:5e:00:02:<vrid>   (VRRPv3 IPv6)
 *
 * Names: `cv`, the parent's ifindex, `.`, the vhid, and `.6` for the VRRPv3 IPv6 one: at most
 * 15 bytes up to ifindex 9 999 999 (beyond it the ifindex is written in base 36, so the name
 * still fits IFNAMSIZ). The ifindex, not the parent's name (up to 15 bytes itself), keeps the
 * name short and unique per parent.
 *
 * Mode bridge, not private: a multicast frame that arrives on the parent with the source MAC of
 * a private macvlan of that parent is handed to that macvlan only, never to the parent. Two
 * nodes that are both MASTER (a partition that heals, a preemption) send their advertisements
 * from the same virtual MAC, so in private mode neither would ever hear the other on its parent,
 * where carpd listens, and both would stay MASTER. In bridge mode the frame reaches the parent.
 * The other difference, that macvlans of one parent reach each other directly, does not matter
 * here: they only hold addresses of this host, which the host reaches through `lo` anyway.
 *
 * Each macvlan is set up before it goes up: no IPv6 link-local address of its own
 * (addr_gen_mode none: the same virtual MAC on two nodes would give both the same link-local
 * address, and its duplicate address detection would delay the first packets), rp_filter 0
 * (the route back to a client goes through the parent, whose connected route comes first) and
 * arp_announce 2. The parent gets arp_ignore 1 and arp_announce 2 when it has less: with Linux's
 * defaults the parent would also answer ARP for the VIPs (the weak host model) with its own MAC,
 * and claim a VIP in its own ARP requests. keepalived's use_vmac does the same.
 *
 * Leftovers: a carpd killed while MASTER leaves its macvlans; sweep() removes every macvlan whose
 * name and MAC are of this pattern when carpd starts (before any vhid can be MASTER).
 */
import { parseCidr } from '../../wire/address.js';
import { writePseudoHeaderChecksum } from '../../wire/checksum.js';
import { CARP_GROUP_V4, CARP_GROUP_V6, CARP_TTL, IPPROTO_CARP, TOS_FREEBSD, ipv4Packet, ipv6Packet, requireAddress } from '../../wire/ip.js';
import { carpVirtualMac, formatMac, multicastMac, vrrpVirtualMac } from '../../wire/mac.js';
import { KernelError } from '../errno.js';
import type { Announcer } from './announce.js';
import { IN6_ADDR_GEN_MODE_NONE, type LinkDetails, type Rtnetlink } from './rtnetlink.js';

/** The first bytes of every macvlan name carpd gives. */
export const VMAC_PREFIX = 'cv';
const IFNAMSIZ = 16;
const NAME_RE = /^cv[0-9a-z]+\.(\d{1,3})(\.6)?$/;
const MAC_RE = /^00:00:5e:00:0[12]:[0-9a-f]{2}$/;

/** One virtual MAC of a vhid: its MAC, the macvlan's name, and the addresses it carries. */
export interface VirtualMacPlan {
  mac: string;
  name: string;
  families: (4 | 6)[];
  /** CIDRs of those families. */
  addresses: string[];
}

const familyOf = (cidr: string): 4 | 6 => (cidr.includes(':') ? 6 : 4);

/** The macvlan name for a parent's ifindex and a vhid (`.6`: a VRRPv3 vhid's IPv6 MAC). */
export function vmacName(parentIndex: number, vhid: number, ipv6Vrrp = false): string {
  if (!Number.isInteger(parentIndex) || parentIndex < 1) throw new RangeError(`ifindex ${parentIndex} is not a positive integer`);
  if (!Number.isInteger(vhid) || vhid < 1 || vhid > 255) throw new RangeError(`vhid ${vhid} is not 1..255`);
  const tail = `.${vhid}${ipv6Vrrp ? '.6' : ''}`;
  const decimal = `${VMAC_PREFIX}${parentIndex}${tail}`;
  return decimal.length < IFNAMSIZ ? decimal : `${VMAC_PREFIX}${parentIndex.toString(36)}${tail}`;
}

/** The virtual MAC of a vhid for an address family: carp(4)'s, or RFC 5798's per family. */
export function virtualMac(protocol: 'carp' | 'vrrpv3', vhid: number, family: 4 | 6): string {
  return formatMac(protocol === 'vrrpv3' ? vrrpVirtualMac(vhid, family) : carpVirtualMac(vhid));
}

/**
 * The macvlans a vhid needs: one for CARP (both families share carp(4)'s MAC); for VRRPv3 one
 * per family present. A vhid without addresses needs none.
 */
export function virtualMacPlan(parentIndex: number, vhid: number, protocol: 'carp' | 'vrrpv3', addresses: readonly string[]): VirtualMacPlan[] {
  const out: VirtualMacPlan[] = [];
  for (const family of [4, 6] as const) {
    const mine = addresses.filter((a) => familyOf(a) === family);
    if (mine.length === 0) continue;
    const mac = virtualMac(protocol, vhid, family);
    const same = out.find((p) => p.mac === mac);
    if (same) {
      same.families.push(family);
      same.addresses.push(...mine);
      continue;
    }
    out.push({ mac, name: vmacName(parentIndex, vhid, protocol === 'vrrpv3' && family === 6), families: [family], addresses: [...mine] });
  }
  return out;
}

/** Whether a link is a macvlan a carpd made (its name and MAC follow the pattern above). */
export function isVmacLink(l: Pick<LinkDetails, 'name' | 'mac' | 'kind'>): boolean {
  const m = NAME_RE.exec(l.name);
  if (!m || l.kind !== 'macvlan' || !MAC_RE.test(l.mac)) return false;
  // The vhid in the name is the MAC's last byte.
  return Number(m[1]) === parseInt(l.mac.slice(15), 16);
}

/** A macvlan up and carrying a vhid's addresses. */
export interface ActiveVmac {
  name: string;
  index: number;
  mac: string;
  families: (4 | 6)[];
}

export interface VmacHooks {
  /** The IPv4 source of advertisements on the parent (its own address, never a VIP). */
  ipv4Source(parent: string): string;
  /** The parent's IPv6 link-local address, the source of IPv6 advertisements. */
  linkLocal(parent: string): string | undefined;
  /** A fact worth a log line (a parent's ARP settings changed, a leftover removed). */
  info(event: string, fields: Record<string, unknown>, msg: string): void;
}

/** The macvlans of the vhids that are MASTER in virtual mode, and the frames sent from them. */
export class VirtualMacs {
  private readonly active = new Map<string, ActiveVmac[]>();
  private readonly parentsDone = new Set<string>();
  /** The parents' link-local addresses, read at most once a second (an IPv6 advertisement needs it each time). */
  private readonly linkLocals = new Map<string, { address: string | undefined; atMs: number }>();

  constructor(
    private readonly rtnl: Rtnetlink,
    private readonly announcer: Announcer,
    private readonly hooks: VmacHooks,
  ) {}

  /** Removes every macvlan of carpd's pattern (a previous run's); returns their names. */
  sweep(): string[] {
    const gone: string[] = [];
    for (const l of this.rtnl.listLinkDetails()) {
      if (!isVmacLink(l)) continue;
      try {
        this.rtnl.deleteLink(l.name);
        gone.push(l.name);
        this.hooks.info('linux.vmac.stale', { interface: l.name, mac: l.mac }, `${l.name}: removed the macvlan ${l.mac} left by an earlier carpd`);
      } catch (e) {
        if (!(e instanceof KernelError && e.errnoName === 'ENXIO')) throw e;
      }
    }
    return gone;
  }

  /**
   * Creates the vhid's macvlans (replacing any of the same name), puts its addresses there
   * (tagged `proto`) and announces each from its macvlan. Throws on the first failure, after
   * deleting what it created.
   */
  install(parent: string, vhid: number, protocol: 'carp' | 'vrrpv3', addresses: readonly string[], proto: number): ActiveVmac[] {
    const key = `${parent}/${vhid}`;
    this.remove(parent, vhid);
    const parentIndex = this.rtnl.linkInfo(parent).index;
    this.parentArp(parent);
    const made: ActiveVmac[] = [];
    try {
      for (const p of virtualMacPlan(parentIndex, vhid, protocol, addresses)) {
        try {
          this.rtnl.deleteLink(p.name);
        } catch (e) {
          if (!(e instanceof KernelError && e.errnoName === 'ENXIO')) throw e;
        }
        const index = this.rtnl.createMacvlan({ name: p.name, parent, mac: p.mac, mode: 'bridge' });
        made.push({ name: p.name, index, mac: p.mac, families: p.families });
        this.rtnl.configureLink(p.name, { addrGenMode: IN6_ADDR_GEN_MODE_NONE, ipv4: { rp_filter: 0, arp_announce: 2 }, up: true });
        for (const cidr of p.addresses) this.rtnl.addAddress(p.name, hostPrefixed(cidr), { noDad: true, proto, replace: true });
      }
    } catch (e) {
      for (const m of made) this.deleteQuietly(m.name);
      throw e;
    }
    this.active.set(key, made);
    // The addresses are in place: an announcement that cannot be sent is reported, not undone.
    const failures: string[] = [];
    for (const p of virtualMacPlan(parentIndex, vhid, protocol, addresses)) {
      for (const cidr of p.addresses) {
        const a = parseCidr(cidr)!.address;
        try {
          if (familyOf(cidr) === 6) this.announcer.unsolicitedNa(p.name, a, p.mac);
          else this.announcer.gratuitousArp(p.name, a, p.mac);
        } catch (e) {
          failures.push((e as Error).message);
        }
      }
    }
    if (failures.length > 0) throw new Error(`announced on ${made.map((m) => m.name).join(', ')} only in part: ${failures.join('; ')}`);
    return made;
  }

  /** Deletes the vhid's macvlans (none: nothing happens). */
  remove(parent: string, vhid: number): void {
    const key = `${parent}/${vhid}`;
    const had = this.active.get(key);
    this.active.delete(key);
    for (const m of had ?? []) this.deleteQuietly(m.name);
  }

  /** The macvlan a vhid's advertisements of a family leave from, while it is installed. */
  sender(parent: string, vhid: number, family: 4 | 6): ActiveVmac | undefined {
    return this.active.get(`${parent}/${vhid}`)?.find((m) => m.families.includes(family));
  }

  /** Whether any vhid has a macvlan now. */
  get size(): number {
    return this.active.size;
  }

  /**
   * A multicast advertisement (the payload after the IP header) from the vhid's macvlan: the IP
   * header is carpd's own, with the parent's address as source (IPv4: its own address; IPv6: its
   * link-local), so only the Ethernet source differs from a send on the parent.
   */
  sendAdvert(parent: string, m: ActiveVmac, family: 4 | 6, payload: Buffer, pseudoHeaderChecksumAt?: number): void {
    const group = family === 4 ? CARP_GROUP_V4 : CARP_GROUP_V6;
    const op = `send to ${group} from ${m.name}`;
    const srcText = family === 4 ? this.hooks.ipv4Source(parent) : this.linkLocal(parent);
    if (!srcText) throw KernelError.of('EADDRNOTAVAIL', op, parent, 'the parent has no IPv6 link-local address to send from');
    const src = requireAddress(srcText, 'source');
    const dst = requireAddress(group, 'group');
    let body = payload;
    if (pseudoHeaderChecksumAt !== undefined) {
      body = Buffer.from(payload);
      body.writeUInt16BE(0, pseudoHeaderChecksumAt);
      writePseudoHeaderChecksum(body, pseudoHeaderChecksumAt, src, dst, IPPROTO_CARP);
    }
    const packet =
      family === 4
        ? ipv4Packet({ src, dst, proto: IPPROTO_CARP, ttl: CARP_TTL, tos: TOS_FREEBSD, id: 0, dontFragment: true }, body)
        : ipv6Packet({ src, dst, nextHeader: IPPROTO_CARP, hopLimit: CARP_TTL, trafficClass: TOS_FREEBSD }, body);
    this.announcer.ipFrame(m.index, m.name, family, multicastMac(dst), packet, op);
  }

  private linkLocal(parent: string): string | undefined {
    const now = performance.now();
    const cached = this.linkLocals.get(parent);
    if (cached?.address !== undefined && now - cached.atMs < 1000) return cached.address;
    const address = this.hooks.linkLocal(parent);
    this.linkLocals.set(parent, { address, atMs: now });
    return address;
  }

  /** Deletes every macvlan still installed (an orderly stop after the runtime has closed). */
  close(): void {
    for (const [key, ms] of this.active) {
      this.active.delete(key);
      for (const m of ms) this.deleteQuietly(m.name);
    }
  }

  /** The parent answers no ARP for the VIPs and never claims one: arp_ignore ≥ 1, arp_announce ≥ 2. */
  private parentArp(parent: string): void {
    if (this.parentsDone.has(parent)) return;
    const now = this.rtnl.linkDetails(parent).ipv4 ?? {};
    const want: { arp_ignore?: number; arp_announce?: number } = {};
    if ((now.arp_ignore ?? 0) < 1) want.arp_ignore = 1;
    if ((now.arp_announce ?? 0) < 2) want.arp_announce = 2;
    if (Object.keys(want).length > 0) {
      this.rtnl.configureLink(parent, { ipv4: want });
      this.hooks.info(
        'linux.vmac.parent',
        { interface: parent, ...want },
        `${parent}: set ${Object.entries(want).map(([k, v]) => `arp_${k.slice(4)} ${v}`).join(' and ')}, so that only the virtual MACs answer ARP for the VIPs`,
      );
    }
    this.parentsDone.add(parent);
  }

  private deleteQuietly(name: string): void {
    try {
      this.rtnl.deleteLink(name);
    } catch (e) {
      if (!(e instanceof KernelError && e.errnoName === 'ENXIO')) throw e;
    }
  }
}

/** A CIDR as carpd installs it: an address without a prefix gets /32 or /128. */
export function hostPrefixed(cidr: string): string {
  if (cidr.includes('/')) return cidr;
  return `${cidr}/${cidr.includes(':') ? 128 : 32}`;
}
