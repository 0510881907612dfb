/**
 * NETLINK_ROUTE over a koffi socket: interface facts, the addresses the kernel holds, VIPs added
 * and removed, and link up/down notifications. The framing (nlmsghdr, nlattr, NLMSG_ERROR) is the
 * one src/wire/netlink.ts implements, shared with FreeBSD's generic netlink.
 *
 *  struct ifinfomsg (16 B)                 struct ifaddrmsg (8 B)
 *  +0  u8  ifi_family                      +0 u8  ifa_family   AF_INET / AF_INET6
 *  +1  u8  pad                             +1 u8  ifa_prefixlen
 *  +2  u16 ifi_type   ARPHRD_*             +2 u8  ifa_flags    IFA_F_* (low 8 bits; IFA_FLAGS has all 32)
 *  +4  i32 ifi_index                       +3 u8  ifa_scope
 *  +8  u32 ifi_flags  IFF_*                +4 u32 ifa_index
 *  +12 u32 ifi_change
 *
 *  RTM_NEWLINK/GETLINK attrs: IFLA_ADDRESS (MAC), IFLA_IFNAME, IFLA_MTU
 *  RTM_NEWADDR/DELADDR attrs: IFA_ADDRESS, IFA_LOCAL (IPv4: both = the address; IPv6: ADDRESS),
 *                             IFA_BROADCAST (IPv4), IFA_FLAGS (u32), IFA_PROTO (u8, recent kernels;
 *                             older ones ignore it: who installed the address, `ip addr ... proto N`)
 *
 * Requests go through the netlink request socket the FreeBSD backend uses too
 * (src/kernel/netlink-socket.ts), synchronously: the kernel queues the reply before send()
 * returns (later parts of a dump are produced as recv() drains the queue), so a request is send
 * + non-blocking recv. Should a reply not be queued yet, a poll(2) of a few milliseconds waits
 * for it, within a bounded deadline (2 s, then ETIMEDOUT): never an unbounded block of the
 * event loop. Every request ends on a message of its own sequence number: NLMSG_DONE for a dump
 * (read again when the kernel flags it NLM_F_DUMP_INTR), NLMSG_ERROR for the others, which ask
 * for an acknowledgement (NLM_F_ACK). Errors carry the Linux errno, translated by name into a
 * KernelError naming the operation ("add address 192.0.2.10/24") and the interface.
 *
 * watchLinks() uses a second socket subscribed to RTMGRP_LINK and registered with a Poller. It
 * seeds each interface's state from a dump and then reports changes of `up` (IFF_UP and
 * IFF_RUNNING) only; the kernel sends RTM_NEWLINK for many other changes. After a notification
 * overrun (ENOBUFS) it re-reads every link and reports what changed.
 */
import { parseCidr } from '../../wire/address.js';
import { KernelError } from '../errno.js';
import { type NetlinkPlatform, NetlinkSocket } from '../netlink-socket.js';
import {
  NLMSG_HDRLEN,
  NLM_F_ACK,
  NLM_F_DUMP,
  NLM_F_DUMP_INTR,
  NLM_F_REQUEST,
  NetlinkFormatError,
  cstr,
  encodeNlmsghdr,
  nlattr,
  parseAttrs,
  splitMessages,
  u32,
  u8,
  type NlAttr,
  type NlMessage,
} from '../../wire/netlink.js';
import { formatAddress, requireAddress } from '../../wire/ip.js';
import {
  AF_INET,
  AF_INET6,
  AF_NETLINK,
  AF_UNSPEC,
  NETLINK_CAP_ACK,
  NETLINK_EXT_ACK,
  NETLINK_ROUTE,
  POLLFD_LEN,
  POLLIN,
  SOCK_CLOEXEC,
  SOCK_NONBLOCK,
  SOCK_RAW,
  SOL_NETLINK,
  SOL_SOCKET,
  SO_RCVBUF,
  linuxKernelError,
  linuxLibc,
  sockaddrNl,
  type LinuxLibc,
} from './libc.js';
import type { Poller } from './poller.js';

export const RTM_NEWLINK = 16;
export const RTM_DELLINK = 17;
export const RTM_GETLINK = 18;
export const RTM_SETLINK = 19;
export const RTM_NEWADDR = 20;
export const RTM_DELADDR = 21;
export const RTM_GETADDR = 22;
export { NLM_F_DUMP_INTR };
export const NLM_F_REPLACE = 0x100;
export const NLM_F_EXCL = 0x200;
export const NLM_F_CREATE = 0x400;
export const RTMGRP_LINK = 0x1;
export const IFLA_ADDRESS = 1;
export const IFLA_IFNAME = 3;
export const IFLA_MTU = 4;
export const IFLA_LINK = 5;
export const IFLA_LINKINFO = 18;
export const IFLA_AF_SPEC = 26;
export const IFLA_INFO_KIND = 1;
export const IFLA_INFO_DATA = 2;
export const IFLA_MACVLAN_MODE = 1;
/** enum macvlan_mode (if_link.h). */
export const MACVLAN_MODE_PRIVATE = 1;
export const MACVLAN_MODE_BRIDGE = 4;
/** IFLA_AF_SPEC / AF_INET: the devconf array (read: one attribute of u32s; write: nested, type = index). */
export const IFLA_INET_CONF = 1;
/** IFLA_AF_SPEC / AF_INET6. */
export const IFLA_INET6_ADDR_GEN_MODE = 8;
export const IN6_ADDR_GEN_MODE_NONE = 1;
/** enum IPV4_DEVCONF_* (ip.h), 1-based: /proc/sys/net/ipv4/conf/<dev>/<name>. */
export const IPV4_DEVCONF = { rp_filter: 8, arp_announce: 18, arp_ignore: 19 } as const;
export type Ipv4DevconfName = keyof typeof IPV4_DEVCONF;
export const IFA_ADDRESS = 1;
export const IFA_LOCAL = 2;
export const IFA_LABEL = 3;
export const IFA_BROADCAST = 4;
export const IFA_FLAGS = 8;
export const IFA_PROTO = 11;
export const IFA_F_NODAD = 0x02;
export const IFF_UP = 0x1;
export const IFF_RUNNING = 0x40;
const IFINFOMSG_LEN = 16;
const IFADDRMSG_LEN = 8;
/** A reply not queued within this long is reported as ETIMEDOUT (it never happens in practice). */
const REPLY_DEADLINE_MS = 2000;
/** Each synchronous wait for the rest of a reply. */
const POLL_SLICE_MS = 5;
const RECV_BUFFER = 64 * 1024;

export interface LinkInfo {
  index: number;
  name: string;
  /** 'aa:bb:cc:dd:ee:ff'; '' for an interface without a link-layer address. */
  mac: string;
  /** IFF_UP and IFF_RUNNING (administratively up and operationally up: carrier present). */
  up: boolean;
  mtu: number;
}

/** A link with what a link listing adds to LinkInfo: its kind (IFLA_INFO_KIND), its parent (IFLA_LINK) and IPv4 devconf. */
export interface LinkDetails extends LinkInfo {
  /** 'macvlan', 'veth', 'bridge', ...; undefined for a physical device. */
  kind?: string;
  /** IFLA_LINK: the lower device's index (macvlan, vlan) or a veth's peer. */
  parent?: number;
  /** The IPv4 devconf values by name, when the kernel reports them. */
  ipv4?: Partial<Record<Ipv4DevconfName, number>>;
}

export interface InterfaceAddress {
  iface: string;
  family: 4 | 6;
  address: string;
  prefix: number;
  /** IFA_PROTO when the kernel reports one (set by whoever added the address; 0 or absent: unspecified). */
  proto?: number;
}

export interface LinkChange {
  iface: string;
  up: boolean;
}

export interface AddAddressOptions {
  /** IPv6: IFA_F_NODAD, the address is usable at once (no duplicate address detection). */
  noDad?: boolean;
  /** IFA_PROTO tag (1..255) marking the address as installed by its owner. */
  proto?: number;
  /** NLM_F_REPLACE instead of NLM_F_EXCL: an existing identical address is updated, not refused with EEXIST. */
  replace?: boolean;
}

function ifinfomsg(index: number): Buffer {
  const b = Buffer.alloc(IFINFOMSG_LEN);
  b[0] = AF_UNSPEC;
  b.writeInt32LE(index, 4);
  return b;
}

function message(type: number, flags: number, seq: number, body: Buffer[]): Buffer {
  const payload = Buffer.concat(body);
  const out = Buffer.alloc(NLMSG_HDRLEN + payload.length);
  encodeNlmsghdr({ len: out.length, type, flags, seq, pid: 0 }, out, 0);
  payload.copy(out, NLMSG_HDRLEN);
  return out;
}

function macText(b: Buffer): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(':');
}

function attr(attrs: NlAttr[], type: number): Buffer | undefined {
  return attrs.find((a) => a.type === type)?.payload;
}

function cstring(b: Buffer | undefined): string | undefined {
  if (!b) return undefined;
  const end = b.indexOf(0);
  return b.toString('utf8', 0, end < 0 ? b.length : end);
}

/** RTM_NEWLINK / RTM_DELLINK payload. */
export function decodeLink(m: NlMessage): LinkInfo {
  if (m.payload.length < IFINFOMSG_LEN) throw new NetlinkFormatError(`${m.payload.length}-byte ifinfomsg, needs ${IFINFOMSG_LEN}`);
  const index = m.payload.readInt32LE(4);
  const flags = m.payload.readUInt32LE(8);
  const attrs = parseAttrs(m.payload, IFINFOMSG_LEN);
  const mtu = attr(attrs, IFLA_MTU);
  const mac = attr(attrs, IFLA_ADDRESS);
  return {
    index,
    name: cstring(attr(attrs, IFLA_IFNAME)) ?? '',
    mac: mac ? macText(mac) : '',
    up: (flags & IFF_UP) !== 0 && (flags & IFF_RUNNING) !== 0,
    mtu: mtu && mtu.length >= 4 ? mtu.readUInt32LE(0) : 0,
  };
}

/** RTM_NEWLINK payload with its kind, parent and IPv4 devconf (LinkDetails). */
export function decodeLinkDetails(m: NlMessage): LinkDetails {
  const base = decodeLink(m);
  const attrs = parseAttrs(m.payload, IFINFOMSG_LEN);
  const out: LinkDetails = { ...base };
  const link = attr(attrs, IFLA_LINK);
  if (link && link.length >= 4) out.parent = link.readUInt32LE(0);
  // Nested attributes a kernel may lay out otherwise are read if they parse, and left out if not.
  const nested = (b: Buffer | undefined, type: number): Buffer | undefined => {
    if (!b) return undefined;
    try {
      return attr(parseAttrs(b, 0), type);
    } catch {
      return undefined;
    }
  };
  const kind = cstring(nested(attr(attrs, IFLA_LINKINFO), IFLA_INFO_KIND));
  if (kind) out.kind = kind;
  const conf = nested(nested(attr(attrs, IFLA_AF_SPEC), AF_INET), IFLA_INET_CONF);
  if (conf) {
    out.ipv4 = {};
    for (const [name, i] of Object.entries(IPV4_DEVCONF) as [Ipv4DevconfName, number][]) if (conf.length >= i * 4) out.ipv4[name] = conf.readUInt32LE((i - 1) * 4);
  }
  return out;
}

/** Options of Rtnetlink.createMacvlan. */
export interface MacvlanOptions {
  name: string;
  /** The parent (lower) interface. */
  parent: string;
  mac: string;
  mode: 'bridge' | 'private';
}

/** What Rtnetlink.configureLink sets, in this order: IPv6 address generation, IPv4 devconf, then up. */
export interface LinkSettings {
  /** IFLA_INET6_ADDR_GEN_MODE (IN6_ADDR_GEN_MODE_NONE: no link-local address of its own). */
  addrGenMode?: number;
  ipv4?: Partial<Record<Ipv4DevconfName, number>>;
  up?: boolean;
}

interface DecodedAddress {
  index: number;
  family: 4 | 6;
  address: string;
  prefix: number;
  label?: string;
  proto?: number;
}

/** RTM_NEWADDR payload; undefined for families other than IPv4/IPv6. */
export function decodeAddress(m: NlMessage): DecodedAddress | undefined {
  const p = m.payload;
  if (p.length < IFADDRMSG_LEN) return undefined;
  const fam = p[0];
  if (fam !== AF_INET && fam !== AF_INET6) return undefined;
  const attrs = parseAttrs(p, IFADDRMSG_LEN);
  // IFA_LOCAL is the local address (IFA_ADDRESS is the peer on point-to-point links).
  const bytes = attr(attrs, IFA_LOCAL) ?? attr(attrs, IFA_ADDRESS);
  if (!bytes || bytes.length !== (fam === AF_INET ? 4 : 16)) return undefined;
  const label = cstring(attr(attrs, IFA_LABEL));
  const proto = attr(attrs, IFA_PROTO);
  return {
    index: p.readUInt32LE(4),
    family: fam === AF_INET ? 4 : 6,
    address: formatAddress(bytes),
    prefix: p[1],
    ...(label ? { label } : {}),
    ...(proto && proto.length >= 1 ? { proto: proto[0] } : {}),
  };
}

export class Rtnetlink {
  private readonly sock: NetlinkSocket;
  private closed = false;
  private readonly watches = new Set<() => void>();

  private constructor(private readonly libc: LinuxLibc) {
    this.sock = new NetlinkSocket(linuxNetlinkPlatform(libc), openSocket(libc, 0, 'rtnetlink socket'), { deadlineMs: REPLY_DEADLINE_MS, pollSliceMs: POLL_SLICE_MS });
  }

  static open(libc: LinuxLibc = linuxLibc()): Rtnetlink {
    return new Rtnetlink(libc);
  }

  linkInfo(name: string): LinkInfo {
    const op = `read interface ${name}`;
    if (name.length === 0 || Buffer.byteLength(name) >= 16 || name.includes('\0')) throw KernelError.of('ENXIO', op, name, 'not a valid interface name');
    const msg = message(RTM_GETLINK, NLM_F_REQUEST | NLM_F_ACK, this.nextSeq(), [ifinfomsg(0), nlattr(IFLA_IFNAME, cstr(name, 16, 'interface name'))]);
    let found: LinkInfo | undefined;
    try {
      this.request(msg, op, name, (m) => {
        if (m.type === RTM_NEWLINK) found = decodeLink(m);
      });
    } catch (e) {
      if (e instanceof KernelError && e.errnoName === 'ENODEV') throw KernelError.of('ENXIO', op, name);
      throw e;
    }
    if (!found) throw KernelError.of('ENXIO', op, name, 'no RTM_NEWLINK in the reply');
    return found;
  }

  /** LinkDetails of one interface (ENXIO when absent). */
  linkDetails(name: string): LinkDetails {
    const op = `read interface ${name}`;
    if (name.length === 0 || Buffer.byteLength(name) >= 16 || name.includes('\0')) throw KernelError.of('ENXIO', op, name, 'not a valid interface name');
    const msg = message(RTM_GETLINK, NLM_F_REQUEST | NLM_F_ACK, this.nextSeq(), [ifinfomsg(0), nlattr(IFLA_IFNAME, cstr(name, 16, 'interface name'))]);
    let found: LinkDetails | undefined;
    try {
      this.request(msg, op, name, (m) => {
        if (m.type === RTM_NEWLINK) found = decodeLinkDetails(m);
      });
    } catch (e) {
      if (e instanceof KernelError && e.errnoName === 'ENODEV') throw KernelError.of('ENXIO', op, name);
      throw e;
    }
    if (!found) throw KernelError.of('ENXIO', op, name, 'no RTM_NEWLINK in the reply');
    return found;
  }

  /** Every link with its kind, parent and IPv4 devconf. */
  listLinkDetails(): LinkDetails[] {
    return this.dump(RTM_GETLINK, ifinfomsg(0), 'list interfaces', undefined, (m) => (m.type === RTM_NEWLINK ? decodeLinkDetails(m) : undefined));
  }

  /**
   * RTM_NEWLINK with NLM_F_CREATE|NLM_F_EXCL: a macvlan on `parent` with this name and MAC, left
   * down (configureLink sets it up). EEXIST when the name is taken; ENXIO when the parent is
   * missing; EOPNOTSUPP (or ENOENT, no module) when the kernel has no macvlan. Returns its index.
   */
  createMacvlan(o: MacvlanOptions): number {
    const op = `create macvlan ${o.name}`;
    const parent = this.libc.ifNameToIndex(o.parent);
    const mac = Buffer.from(o.mac.split(':').map((h) => parseInt(h, 16)));
    if (mac.length !== 6 || mac.some((x) => Number.isNaN(x))) throw KernelError.of('EINVAL', op, o.parent, `"${o.mac}" is not a MAC address`);
    const data = nlattr(IFLA_INFO_DATA, nlattr(IFLA_MACVLAN_MODE, u32(o.mode === 'bridge' ? MACVLAN_MODE_BRIDGE : MACVLAN_MODE_PRIVATE)));
    const linkinfo = nlattr(IFLA_LINKINFO, Buffer.concat([nlattr(IFLA_INFO_KIND, cstr('macvlan', 16, 'kind')), data]));
    const msg = message(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, this.nextSeq(), [
      ifinfomsg(0),
      nlattr(IFLA_IFNAME, cstr(o.name, 16, 'interface name')),
      nlattr(IFLA_ADDRESS, mac),
      nlattr(IFLA_LINK, u32(parent)),
      linkinfo,
    ]);
    try {
      this.request(msg, op, o.parent);
    } catch (e) {
      if (e instanceof KernelError && e.errnoName === 'ENODEV') throw KernelError.of('ENXIO', op, o.parent);
      throw e;
    }
    return this.libc.ifNameToIndex(o.name);
  }

  /**
   * RTM_SETLINK: IPv6 address generation, then IPv4 devconf values, then IFF_UP, each its own
   * request (the kernel brings a link up before it reads IFLA_AF_SPEC of the same message, and a
   * link-local address would be made by then).
   */
  configureLink(name: string, s: LinkSettings): void {
    const op = `configure ${name}`;
    const index = this.libc.ifNameToIndex(name);
    if (s.addrGenMode !== undefined) {
      const spec = nlattr(IFLA_AF_SPEC, nlattr(AF_INET6, nlattr(IFLA_INET6_ADDR_GEN_MODE, u8(s.addrGenMode))));
      this.request(message(RTM_SETLINK, NLM_F_REQUEST | NLM_F_ACK, this.nextSeq(), [ifinfomsg(index), spec]), `${op}: address generation`, name);
    }
    const conf = Object.entries(s.ipv4 ?? {}) as [Ipv4DevconfName, number][];
    if (conf.length > 0) {
      const values = Buffer.concat(conf.map(([k, v]) => nlattr(IPV4_DEVCONF[k], u32(v))));
      const spec = nlattr(IFLA_AF_SPEC, nlattr(AF_INET, nlattr(IFLA_INET_CONF, values)));
      this.request(message(RTM_SETLINK, NLM_F_REQUEST | NLM_F_ACK, this.nextSeq(), [ifinfomsg(index), spec]), `${op}: ${conf.map(([k, v]) => `${k}=${v}`).join(', ')}`, name);
    }
    if (s.up !== undefined) {
      const b = ifinfomsg(index);
      b.writeUInt32LE(s.up ? IFF_UP : 0, 8);
      b.writeUInt32LE(IFF_UP, 12);
      this.request(message(RTM_SETLINK, NLM_F_REQUEST | NLM_F_ACK, this.nextSeq(), [b]), `${op}: ${s.up ? 'up' : 'down'}`, name);
    }
  }

  /** RTM_DELLINK by name; ENXIO when there is no such interface. */
  deleteLink(name: string): void {
    const op = `delete interface ${name}`;
    const msg = message(RTM_DELLINK, NLM_F_REQUEST | NLM_F_ACK, this.nextSeq(), [ifinfomsg(0), nlattr(IFLA_IFNAME, cstr(name, 16, 'interface name'))]);
    try {
      this.request(msg, op, name);
    } catch (e) {
      if (e instanceof KernelError && (e.errnoName === 'ENODEV' || e.errnoName === 'ENXIO')) throw KernelError.of('ENXIO', op, name);
      throw e;
    }
  }

  listLinks(): LinkInfo[] {
    return this.dump(RTM_GETLINK, ifinfomsg(0), 'list interfaces', undefined, (m) => (m.type === RTM_NEWLINK ? decodeLink(m) : undefined));
  }

  /** Every IPv4/IPv6 address, in the kernel's order (primary IPv4 addresses first), optionally of one interface. */
  listAddresses(iface?: string): InterfaceAddress[] {
    const only = iface === undefined ? undefined : this.libc.ifNameToIndex(iface);
    const hdr = Buffer.alloc(IFADDRMSG_LEN);
    hdr[0] = AF_UNSPEC;
    const names = new Map<number, string>();
    return this.dump(RTM_GETADDR, hdr, 'list addresses', iface, (m): InterfaceAddress | undefined => {
      if (m.type !== RTM_NEWADDR) return undefined;
      const a = decodeAddress(m);
      if (!a || (only !== undefined && a.index !== only)) return undefined;
      let name = iface ?? names.get(a.index);
      if (name === undefined) {
        name = this.libc.ifIndexToName(a.index) ?? `if${a.index}`;
        names.set(a.index, name);
      }
      return { iface: name, family: a.family, address: a.address, prefix: a.prefix, ...(a.proto === undefined ? {} : { proto: a.proto }) };
    });
  }

  /**
   * RTM_NEWADDR with NLM_F_CREATE|NLM_F_EXCL: EEXIST when the interface already has it (with
   * `replace`, NLM_F_REPLACE: the existing address takes the new flags and tag instead).
   */
  addAddress(iface: string, cidr: string, opts: AddAddressOptions = {}): void {
    const op = `add address ${cidr}`;
    const { family, bytes, prefix } = parseAddress(cidr, op, iface);
    const index = this.libc.ifNameToIndex(iface);
    const flags = family === 6 && opts.noDad ? IFA_F_NODAD : 0;
    const attrs: Buffer[] = [];
    if (family === 4) {
      attrs.push(nlattr(IFA_LOCAL, bytes), nlattr(IFA_ADDRESS, bytes));
      if (prefix <= 30) attrs.push(nlattr(IFA_BROADCAST, broadcast(bytes, prefix)));
    } else {
      attrs.push(nlattr(IFA_ADDRESS, bytes));
    }
    if (flags) attrs.push(nlattr(IFA_FLAGS, u32(flags)));
    if (opts.proto !== undefined) {
      if (!Number.isInteger(opts.proto) || opts.proto < 0 || opts.proto > 255) throw KernelError.of('EINVAL', op, iface, `address protocol ${opts.proto} is not 0..255`);
      attrs.push(nlattr(IFA_PROTO, u8(opts.proto)));
    }
    const mode = opts.replace ? NLM_F_REPLACE : NLM_F_EXCL;
    const msg = message(RTM_NEWADDR, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | mode, this.nextSeq(), [ifaddrmsg(family, prefix, flags, index), ...attrs]);
    this.request(msg, op, iface);
  }

  /** RTM_DELADDR: EADDRNOTAVAIL (the kernel's answer) when the interface does not have it with this prefix. */
  removeAddress(iface: string, cidr: string): void {
    const op = `remove address ${cidr}`;
    const { family, bytes, prefix } = parseAddress(cidr, op, iface);
    const index = this.libc.ifNameToIndex(iface);
    const attrs = family === 4 ? [nlattr(IFA_LOCAL, bytes), nlattr(IFA_ADDRESS, bytes)] : [nlattr(IFA_ADDRESS, bytes)];
    const msg = message(RTM_DELADDR, NLM_F_REQUEST | NLM_F_ACK, this.nextSeq(), [ifaddrmsg(family, prefix, 0, index), ...attrs]);
    this.request(msg, op, iface);
  }

  /**
   * Reports changes of each interface's `up` through onChange (on the main thread, from the
   * Poller). Returns the unsubscribe function, which closes the subscription's socket.
   */
  watchLinks(poller: Poller, onChange: (c: LinkChange) => void, onError?: (e: Error) => void): () => void {
    if (this.closed) throw new Error('Rtnetlink is closed');
    const report = onError ?? ((e: Error) => process.emitWarning(e));
    const fd = openSocket(this.libc, RTMGRP_LINK, 'rtnetlink link subscription');
    const state = new Map<number, { name: string; up: boolean }>();
    const buf = Buffer.alloc(RECV_BUFFER);
    let active = true;

    const apply = (l: LinkInfo, deleted: boolean, notify: boolean) => {
      const prev = state.get(l.index);
      if (deleted) {
        state.delete(l.index);
        if (notify && prev?.up !== false) onChange({ iface: l.name || prev?.name || `if${l.index}`, up: false });
        return;
      }
      state.set(l.index, { name: l.name, up: l.up });
      if (notify && (prev === undefined || prev.up !== l.up)) onChange({ iface: l.name, up: l.up });
    };
    const resync = () => {
      const links = this.listLinks();
      const seen = new Set(links.map((l) => l.index));
      for (const [index, s] of state) if (!seen.has(index)) apply({ index, name: s.name, mac: '', up: false, mtu: 0 }, true, true);
      for (const l of links) apply(l, false, true);
    };
    try {
      for (const l of this.listLinks()) apply(l, false, false);
    } catch (e) {
      this.libc.close(fd);
      throw e;
    }

    const onReadable = () => {
      for (let i = 0; active && i < 64; i++) {
        let n: number | null;
        try {
          n = this.libc.recvfrom(fd, buf, 0, null, 'receive link notifications');
        } catch (e) {
          if (e instanceof KernelError && e.errnoName === 'ENOBUFS') {
            // Notifications were lost: read the current state instead.
            try {
              resync();
            } catch (e2) {
              report(e2 as Error);
            }
            continue;
          }
          report(e as Error);
          return;
        }
        if (n === null) return;
        try {
          for (const m of splitMessages(buf.subarray(0, n))) {
            if (m.type === RTM_NEWLINK || m.type === RTM_DELLINK) apply(decodeLink(m), m.type === RTM_DELLINK, true);
          }
        } catch (e) {
          report(e as Error);
        }
      }
    };
    poller.add(fd, onReadable);
    const unsubscribe = () => {
      if (!active) return;
      active = false;
      this.watches.delete(unsubscribe);
      poller.remove(fd);
      this.libc.close(fd);
    };
    this.watches.add(unsubscribe);
    return unsubscribe;
  }

  /** Closes the request socket and every subscription made through this instance. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const u of [...this.watches]) u();
    this.sock.close();
  }

  private nextSeq(): number {
    return this.sock.nextSeq();
  }

  /**
   * A dump request, decoded message by message. A dump the kernel flags as interrupted
   * (NLM_F_DUMP_INTR: the table changed while it was being read) is read again, up to 3 times.
   */
  private dump<T>(type: number, body: Buffer, operation: string, iface: string | undefined, decode: (m: NlMessage) => T | undefined): T[] {
    for (let attempt = 1; ; attempt++) {
      const out: T[] = [];
      const interrupted = this.request(message(type, NLM_F_REQUEST | NLM_F_DUMP, this.nextSeq(), [body]), operation, iface, (m) => {
        const v = decode(m);
        if (v !== undefined) out.push(v);
      });
      if (!interrupted || attempt === 3) return out;
    }
  }

  /**
   * Sends one request and reads until its NLMSG_ERROR (acknowledgement or error) or NLMSG_DONE
   * (netlink-socket.ts). Returns whether a message of the reply carried NLM_F_DUMP_INTR.
   */
  private request(msg: Buffer, operation: string, iface: string | undefined, onMessage?: (m: NlMessage) => void): boolean {
    if (this.closed) throw new Error('Rtnetlink is closed');
    return this.sock.requestSync(msg, { operation, iface, ...(onMessage ? { onMessage: (m: NlMessage) => void onMessage(m) } : {}) }).interrupted;
  }
}

/**
 * The request socket's calls on Linux: sendto/recvfrom on a SOCK_NONBLOCK socket, poll(2) for a
 * late reply, and Linux errno numbers translated by name (libc.ts linuxKernelError).
 */
function linuxNetlinkPlatform(libc: LinuxLibc): NetlinkPlatform {
  const pfd = Buffer.alloc(POLLFD_LEN);
  return {
    send: (fd, msg, operation, iface) => {
      libc.sendto(fd, msg, 0, null, operation, iface);
    },
    recv: (fd, buf, operation, iface) => libc.recvfrom(fd, buf, 0, null, operation, iface) ?? undefined,
    close: (fd) => libc.close(fd),
    // A dump that failed midway carries a negative errno in NLMSG_DONE; a positive value is not one.
    doneErrno: (raw) => (raw < 0 ? -raw : 0),
    replyError: (errno, operation, iface, why) => linuxKernelError(errno, operation, iface, why),
    waitReadable: (fd, timeoutMs) => {
      pfd.writeInt32LE(fd, 0);
      pfd.writeInt16LE(POLLIN, 4);
      pfd.writeInt16LE(0, 6);
      libc.poll(pfd, timeoutMs);
    },
  };
}

function openSocket(libc: LinuxLibc, groups: number, operation: string): number {
  const fd = libc.socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_ROUTE, operation);
  try {
    libc.setsockopt(fd, SOL_SOCKET, SO_RCVBUF, 1 << 20, operation);
    // Error messages in acknowledgements (NLMSGERR_ATTR_MSG), and acks without the request echo.
    libc.setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, 1, operation);
    libc.setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, 1, operation);
    libc.bind(fd, sockaddrNl(groups), operation);
  } catch (e) {
    libc.close(fd);
    throw e;
  }
  return fd;
}

function ifaddrmsg(family: 4 | 6, prefix: number, flags: number, index: number): Buffer {
  const b = Buffer.alloc(IFADDRMSG_LEN);
  b[0] = family === 4 ? AF_INET : AF_INET6;
  b[1] = prefix;
  b[2] = flags & 0xff;
  b[3] = 0; // RT_SCOPE_UNIVERSE; the kernel derives IPv6 scopes from the address
  b.writeUInt32LE(index, 4);
  return b;
}

function parseAddress(cidr: string, operation: string, iface: string): { family: 4 | 6; bytes: Buffer; prefix: number } {
  const c = parseCidr(cidr);
  if (!c) throw KernelError.of('EINVAL', operation, iface, `"${cidr}" is not an address/prefix`);
  return { family: c.family, bytes: requireAddress(c.address, 'address'), prefix: c.prefix };
}

function broadcast(addr: Buffer, prefix: number): Buffer {
  const host = 2 ** (32 - prefix) - 1;
  const out = Buffer.alloc(4);
  out.writeUInt32BE((addr.readUInt32BE(0) | host) >>> 0);
  return out;
}

// ---- process-wide instance -----------------------------------------------------------------------

let shared: Rtnetlink | undefined;

/** The process-wide request socket, opened on first use (a socket fd keeps nothing alive). */
export function sharedRtnetlink(): Rtnetlink {
  shared ??= Rtnetlink.open();
  return shared;
}

export const linkInfo = (name: string): LinkInfo => sharedRtnetlink().linkInfo(name);
export const listAddresses = (iface?: string): InterfaceAddress[] => sharedRtnetlink().listAddresses(iface);
export const addAddress = (iface: string, cidr: string, opts?: AddAddressOptions): void => sharedRtnetlink().addAddress(iface, cidr, opts);
export const removeAddress = (iface: string, cidr: string): void => sharedRtnetlink().removeAddress(iface, cidr);
export const watchLinks = (poller: Poller, onChange: (c: LinkChange) => void, onError?: (e: Error) => void): (() => void) =>
  sharedRtnetlink().watchLinks(poller, onChange, onError);
