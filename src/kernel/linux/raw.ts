/**
 * IP protocol 112 (CARP, and VRRP which shares the number) on Linux raw sockets, per interface
 * (carp-protocol.md §1, §8, trap 9).
 *
 * IPv4: socket(AF_INET, SOCK_RAW, 112) with IP_HDRINCL. carpd writes the IPv4 header itself —
 * TOS 0xe0 (FreeBSD's DSCP CS7), TTL 255, DF, id 0 (the kernel fills one in), protocol 112 — so
 * the source is chosen here: the interface's first IPv4 address, in the kernel's order, that is
 * not one of the VIPs carpd installs (setExcludedSources); none → EADDRNOTAVAIL. Reads include
 * the IP header: it is checked and parsed (src/wire/ip.ts) for TTL, source and destination.
 *
 * IPv6: socket(AF_INET6, SOCK_RAW, 112) without a header of our own: hop limit 255 by
 * IPV6_MULTICAST_HOPS / IPV6_UNICAST_HOPS, traffic class 0xe0, source chosen by the kernel
 * (link-local towards ff02::12). IPV6_RECVHOPLIMIT and IPV6_RECVPKTINFO make recvmsg return the
 * hop limit and the destination as ancillary data.
 *
 * Both: SO_BINDTODEVICE (a raw socket otherwise sees protocol 112 from every interface), the
 * group joined on the interface (224.0.0.18 / ff02::12: without the membership nothing arrives),
 * multicast loop off (a node never hears itself), non-blocking, a 1 MiB receive buffer, and
 * registered with the Poller whose handler drains it with recv until EAGAIN.
 *
 * Checksums: the CARP checksum covers the payload only and is the caller's. pseudoHeaderChecksumAt
 * (VRRPv3) asks for the checksum over an IP pseudo-header + payload: for IPv4 it is computed here
 * (the source is ours); for IPv6 the kernel computes it (IPV6_CHECKSUM at that offset), because the
 * kernel chooses the source. IPV6_CHECKSUM also makes the kernel verify what that socket receives,
 * which CARP's pseudo-header-less checksum would fail, so the checksumming send goes through a
 * second, send-only socket per (interface, offset) whose receive side is shut by a BPF program
 * that accepts nothing.
 *
 * A malformed or truncated datagram never throws out of the poll loop: it is reported through
 * onDrop (or onError when no onDrop is given) and the drain goes on.
 */
import { canonicalIp } from '../../wire/address.js';
import { writePseudoHeaderChecksum } from '../../wire/checksum.js';
import { CARP_GROUP_V4, CARP_GROUP_V6, CARP_TTL, IPPROTO_CARP, TOS_FREEBSD, decodeIpv4, formatAddress, ipv4Packet, requireAddress } from '../../wire/ip.js';
import { KernelError } from '../errno.js';
import {
  AF_INET,
  AF_INET6,
  IPPROTO_IP,
  IPPROTO_IPV6,
  IPV6_CHECKSUM,
  IPV6_HOPLIMIT,
  IPV6_JOIN_GROUP,
  IPV6_MULTICAST_HOPS,
  IPV6_MULTICAST_IF,
  IPV6_MULTICAST_LOOP,
  IPV6_PKTINFO,
  IPV6_RECVHOPLIMIT,
  IPV6_RECVPKTINFO,
  IPV6_TCLASS,
  IPV6_UNICAST_HOPS,
  IP_ADD_MEMBERSHIP,
  IP_HDRINCL,
  IP_MULTICAST_IF,
  IP_MULTICAST_LOOP,
  IP_MULTICAST_TTL,
  IP_TOS,
  IP_TTL,
  MSG_CTRUNC,
  MSG_TRUNC,
  RecvMsgBuffers,
  SOCKADDR_IN6_LEN,
  SOCK_CLOEXEC,
  SOCK_NONBLOCK,
  SOCK_RAW,
  SOL_SOCKET,
  SO_ATTACH_FILTER,
  SO_BINDTODEVICE,
  SO_RCVBUF,
  dropAllFilter,
  ifnameBytes,
  ipMreqn,
  ipv6Mreq,
  linuxLibc,
  sockaddrIn,
  type LinuxLibc,
} from './libc.js';
import type { Poller } from './poller.js';
import { Rtnetlink } from './rtnetlink.js';

export interface ReceivedPacket {
  iface: string;
  family: 4 | 6;
  source: string;
  destination: string;
  ttl: number;
  /** The bytes after the IP header (a copy: it stays valid after the handler returns). */
  payload: Buffer;
}

export interface SendRequest {
  iface: string;
  family: 4 | 6;
  /** 224.0.0.18, ff02::12 or a unicast peer. */
  destination: string;
  payload: Buffer;
  /**
   * When set, the 16-bit checksum at this payload offset is computed over an IP pseudo-header +
   * payload (VRRPv3); otherwise the payload is sent as is.
   */
  pseudoHeaderChecksumAt?: number;
}

/** A datagram that reached a socket but is not handed up. */
export interface DroppedPacket {
  iface: string;
  family: 4 | 6;
  /** 'truncated' | 'badversion' | 'badhdrlen' | 'badhdrsum' | 'fragment' (IPv4 decode) | 'noancillary' (IPv6 without hop limit/pktinfo) | 'wrongproto'. */
  reason: string;
  detail: string;
}

export interface RawIpLinkOptions {
  poller: Poller;
  onPacket(p: ReceivedPacket): void;
  /** Receive failures and exceptions thrown by onPacket. Default: process.emitWarning. */
  onError?(e: Error): void;
  /** Malformed datagrams; default: reported to onError. */
  onDrop?(d: DroppedPacket): void;
  /** Default 112. */
  protocol?: number;
  libc?: LinuxLibc;
}

const RCVBUF = 1 << 20;
/** How long a chosen IPv4 source is reused before the interface's addresses are read again. */
const SOURCE_TTL_MS = 1000;
/** Datagrams read per readiness before giving the event loop back (poll reports the rest at once). */
const DRAIN_BATCH = 256;
const MAX_DATAGRAM = 65535;

interface Sock {
  fd: number;
  family: 4 | 6;
  recv: Buffer | RecvMsgBuffers;
}

interface Attachment {
  iface: string;
  index: number;
  v4?: Sock;
  v6?: Sock;
  /** Send-only IPv6 sockets with IPV6_CHECKSUM, by checksum offset. */
  v6csum: Map<number, number>;
}

export class RawIpLink {
  private readonly libc: LinuxLibc;
  private readonly poller: Poller;
  private readonly protocol: number;
  private readonly onPacket: (p: ReceivedPacket) => void;
  private readonly onError: (e: Error) => void;
  private readonly onDrop: (d: DroppedPacket) => void;
  private readonly attached = new Map<string, Attachment>();
  private readonly excluded = new Map<string, Set<string>>();
  private readonly sources = new Map<string, { address: string; atMs: number }>();
  private rtnl: Rtnetlink | undefined;
  private closed = false;

  private constructor(opts: RawIpLinkOptions) {
    this.libc = opts.libc ?? linuxLibc();
    this.poller = opts.poller;
    this.protocol = opts.protocol ?? IPPROTO_CARP;
    this.onPacket = opts.onPacket;
    this.onError = opts.onError ?? ((e) => process.emitWarning(e));
    this.onDrop = opts.onDrop ?? ((d) => this.onError(new Error(`${d.iface}: dropped an IPv${d.family} datagram (${d.reason}: ${d.detail})`)));
  }

  static open(opts: RawIpLinkOptions): RawIpLink {
    if (opts.protocol !== undefined && (!Number.isInteger(opts.protocol) || opts.protocol < 1 || opts.protocol > 254)) {
      throw new RangeError(`IP protocol ${opts.protocol} is not 1..254`);
    }
    return new RawIpLink(opts);
  }

  /** Interfaces with at least one open socket. */
  get interfaces(): string[] {
    return [...this.attached.keys()];
  }

  /**
   * Opens the sockets for the interface (SO_BINDTODEVICE), joins 224.0.0.18 (v4) / ff02::12 (v6)
   * on it, TTL/hop limit 255 for multicast and unicast, multicast loop off. Idempotent: afterwards
   * exactly the requested families are open (an interface that was recreated under the same name
   * gets new sockets). Throws KernelError (ENXIO for a missing interface).
   */
  attach(iface: string, families: { v4: boolean; v6: boolean }): void {
    if (this.closed) throw new Error('RawIpLink is closed');
    const index = this.libc.ifNameToIndex(iface);
    let a = this.attached.get(iface);
    if (a && a.index !== index) {
      this.detach(iface);
      a = undefined;
    }
    const created = !a;
    a ??= { iface, index, v6csum: new Map() };
    const opened: Sock[] = [];
    try {
      if (families.v4 && !a.v4) opened.push((a.v4 = this.openV4(iface, index)));
      if (families.v6 && !a.v6) opened.push((a.v6 = this.openV6(iface, index)));
    } catch (e) {
      for (const s of opened) {
        if (a.v4 === s) a.v4 = undefined;
        if (a.v6 === s) a.v6 = undefined;
        this.closeSock(s);
      }
      if (!created && !a.v4 && !a.v6) this.detach(iface);
      throw e;
    }
    if (!families.v4 && a.v4) {
      this.closeSock(a.v4);
      a.v4 = undefined;
    }
    if (!families.v6 && a.v6) {
      this.closeSock(a.v6);
      a.v6 = undefined;
      this.closeChecksumSockets(a);
    }
    for (const s of opened) this.poller.add(s.fd, () => this.drain(iface, s));
    if (a.v4 || a.v6) this.attached.set(iface, a);
    else this.attached.delete(iface);
  }

  /** Closes the interface's sockets (leaving the groups). No-op when not attached. */
  detach(iface: string): void {
    const a = this.attached.get(iface);
    if (!a) return;
    this.attached.delete(iface);
    this.sources.delete(iface);
    if (a.v4) this.closeSock(a.v4);
    if (a.v6) this.closeSock(a.v6);
    this.closeChecksumSockets(a);
  }

  /** Addresses that must never be used as the IPv4 source (the VIPs carpd installs). */
  setExcludedSources(iface: string, addresses: string[]): void {
    const set = new Set<string>();
    for (const a of addresses) {
      const slash = a.indexOf('/');
      const c = canonicalIp(slash < 0 ? a : a.slice(0, slash));
      if (c) set.add(c.address);
    }
    if (set.size > 0) this.excluded.set(iface, set);
    else this.excluded.delete(iface);
    this.sources.delete(iface);
  }

  /**
   * The IPv4 source send() uses on this interface. Throws KernelError EADDRNOTAVAIL when there is
   * none. The choice is kept for SOURCE_TTL_MS: reading the interface's addresses is a netlink
   * dump whose size grows with the VIPs on it, and a node MASTER of 255 vhids sends 255
   * advertisements a second. A renumbered interface is thus noticed within a second; a change of
   * the excluded set (a VIP added) takes effect at once.
   */
  ipv4Source(iface: string, operation = `choose an IPv4 source`): string {
    const now = performance.now();
    const cached = this.sources.get(iface);
    if (cached && now - cached.atMs < SOURCE_TTL_MS) return cached.address;
    const excluded = this.excluded.get(iface);
    this.rtnl ??= Rtnetlink.open(this.libc);
    const src = this.rtnl.listAddresses(iface).find((x) => x.family === 4 && !excluded?.has(x.address));
    if (!src) {
      this.sources.delete(iface);
      throw KernelError.of('EADDRNOTAVAIL', operation, iface, 'the interface has no IPv4 address other than VIPs to send from');
    }
    this.sources.set(iface, { address: src.address, atMs: now });
    return src.address;
  }

  /** Synchronous send; throws KernelError naming the operation ("send to 224.0.0.18"). */
  send(r: SendRequest): void {
    const op = `send to ${r.destination}`;
    if (this.closed) throw new Error('RawIpLink is closed');
    const a = this.attached.get(r.iface);
    const sock = r.family === 4 ? a?.v4 : a?.v6;
    if (!a || !sock) throw KernelError.of('ENOTCONN', op, r.iface, `IPv${r.family} is not attached on this interface`);
    const dst = requireAddress(r.destination, 'destination');
    if (dst.length !== (r.family === 4 ? 4 : 16)) throw new TypeError(`${op}: not an IPv${r.family} address`);
    const at = r.pseudoHeaderChecksumAt;
    if (at !== undefined && (!Number.isInteger(at) || at < 0 || at + 2 > r.payload.length || at % 2 !== 0)) {
      throw new RangeError(`${op}: checksum offset ${at} is not an even offset inside the ${r.payload.length}-byte payload`);
    }

    if (r.family === 4) {
      const src = requireAddress(this.ipv4Source(r.iface, op), 'source');
      let payload = r.payload;
      if (at !== undefined) {
        payload = Buffer.from(r.payload);
        writePseudoHeaderChecksum(payload, at, src, dst, this.protocol);
      }
      const packet = ipv4Packet({ src, dst, proto: this.protocol, ttl: CARP_TTL, tos: TOS_FREEBSD, id: 0, dontFragment: true }, payload);
      this.libc.sendto(sock.fd, packet, 0, sockaddrIn(dst), op, r.iface);
      return;
    }

    const scope = dst[0] === 0xff || (dst[0] === 0xfe && (dst[1] & 0xc0) === 0x80) ? a.index : 0;
    if (at === undefined) {
      this.libc.sendto(sock.fd, r.payload, 0, sockaddrIn(dst, 0, scope), op, r.iface);
      return;
    }
    const payload = Buffer.from(r.payload);
    payload.writeUInt16BE(0, at);
    this.libc.sendto(this.checksumSocket(a, at), payload, 0, sockaddrIn(dst, 0, scope), op, r.iface);
  }

  /** Closes every socket. The Poller is the caller's and stays open. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const iface of [...this.attached.keys()]) this.detach(iface);
    this.rtnl?.close();
    this.rtnl = undefined;
  }

  // ---- sockets -----------------------------------------------------------------------------------

  private socket(family: 4 | 6, iface: string, what: string): number {
    return this.libc.socket(family === 4 ? AF_INET : AF_INET6, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, this.protocol, `open ${what}`, iface);
  }

  /** Runs setup on a fresh fd; closes it when setup throws. */
  private prepared(fd: number, setup: () => void): number {
    try {
      setup();
      return fd;
    } catch (e) {
      this.libc.close(fd);
      throw e;
    }
  }

  private bindToDevice(fd: number, iface: string, op: string): void {
    try {
      this.libc.setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, ifnameBytes(iface), op, iface);
    } catch (e) {
      // The interface vanished between if_nametoindex and here: ENODEV, which carpd calls ENXIO.
      if (e instanceof KernelError && e.errnoName === 'ENODEV') throw KernelError.of('ENXIO', op, iface);
      throw e;
    }
  }

  private openV4(iface: string, index: number): Sock {
    const op = `attach IPv4 protocol ${this.protocol}`;
    const fd = this.socket(4, iface, 'IPv4 raw socket');
    const s = this.libc;
    this.prepared(fd, () => {
      this.bindToDevice(fd, iface, op);
      s.setsockopt(fd, IPPROTO_IP, IP_HDRINCL, 1, `${op}: IP_HDRINCL`, iface);
      // The header is ours, so TTL and TOS come from it; set anyway for any kernel-built packet.
      s.setsockopt(fd, IPPROTO_IP, IP_TTL, CARP_TTL, `${op}: IP_TTL`, iface);
      s.setsockopt(fd, IPPROTO_IP, IP_TOS, TOS_FREEBSD, `${op}: IP_TOS`, iface);
      s.setsockopt(fd, IPPROTO_IP, IP_MULTICAST_TTL, CARP_TTL, `${op}: IP_MULTICAST_TTL`, iface);
      s.setsockopt(fd, IPPROTO_IP, IP_MULTICAST_LOOP, 0, `${op}: IP_MULTICAST_LOOP`, iface);
      s.setsockopt(fd, IPPROTO_IP, IP_MULTICAST_IF, ipMreqn(Buffer.alloc(4), index), `${op}: IP_MULTICAST_IF`, iface);
      s.setsockopt(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, ipMreqn(requireAddress(CARP_GROUP_V4, 'group'), index), `join ${CARP_GROUP_V4}`, iface);
      s.setsockopt(fd, SOL_SOCKET, SO_RCVBUF, RCVBUF, `${op}: SO_RCVBUF`, iface);
    });
    return { fd, family: 4, recv: Buffer.alloc(MAX_DATAGRAM) };
  }

  private v6Options(fd: number, iface: string, index: number, op: string): void {
    const s = this.libc;
    this.bindToDevice(fd, iface, op);
    s.setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_IF, index, `${op}: IPV6_MULTICAST_IF`, iface);
    s.setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, CARP_TTL, `${op}: IPV6_MULTICAST_HOPS`, iface);
    s.setsockopt(fd, IPPROTO_IPV6, IPV6_UNICAST_HOPS, CARP_TTL, `${op}: IPV6_UNICAST_HOPS`, iface);
    s.setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_LOOP, 0, `${op}: IPV6_MULTICAST_LOOP`, iface);
    s.setsockopt(fd, IPPROTO_IPV6, IPV6_TCLASS, TOS_FREEBSD, `${op}: IPV6_TCLASS`, iface);
  }

  private openV6(iface: string, index: number): Sock {
    const op = `attach IPv6 protocol ${this.protocol}`;
    const fd = this.socket(6, iface, 'IPv6 raw socket');
    const s = this.libc;
    this.prepared(fd, () => {
      this.v6Options(fd, iface, index, op);
      s.setsockopt(fd, IPPROTO_IPV6, IPV6_RECVHOPLIMIT, 1, `${op}: IPV6_RECVHOPLIMIT`, iface);
      s.setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, 1, `${op}: IPV6_RECVPKTINFO`, iface);
      s.setsockopt(fd, IPPROTO_IPV6, IPV6_JOIN_GROUP, ipv6Mreq(requireAddress(CARP_GROUP_V6, 'group'), index), `join ${CARP_GROUP_V6}`, iface);
      s.setsockopt(fd, SOL_SOCKET, SO_RCVBUF, RCVBUF, `${op}: SO_RCVBUF`, iface);
    });
    return { fd, family: 6, recv: new RecvMsgBuffers(this.libc, MAX_DATAGRAM, SOCKADDR_IN6_LEN, 128) };
  }

  private checksumSocket(a: Attachment, offset: number): number {
    const existing = a.v6csum.get(offset);
    if (existing !== undefined) return existing;
    const op = `open IPv6 send socket (checksum at ${offset})`;
    const fd = this.socket(6, a.iface, op);
    this.prepared(fd, () => {
      this.v6Options(fd, a.iface, a.index, op);
      const { fprog, insns } = dropAllFilter(this.libc);
      this.libc.setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, fprog, `${op}: SO_ATTACH_FILTER`, a.iface);
      void insns; // referenced until here: fprog points into it
      this.libc.setsockopt(fd, IPPROTO_IPV6, IPV6_CHECKSUM, offset, `${op}: IPV6_CHECKSUM`, a.iface);
    });
    a.v6csum.set(offset, fd);
    return fd;
  }

  private closeChecksumSockets(a: Attachment): void {
    for (const fd of a.v6csum.values()) this.closeFd(fd);
    a.v6csum.clear();
  }

  private closeSock(s: Sock): void {
    this.poller.remove(s.fd);
    this.closeFd(s.fd);
  }

  private closeFd(fd: number): void {
    try {
      this.libc.close(fd);
    } catch (e) {
      this.onError(e as Error);
    }
  }

  // ---- receiving ---------------------------------------------------------------------------------

  /**
   * Reads every socket now, non-blocking until EAGAIN (or a batch per socket), delivering what
   * was queued: the runtime asks before it trusts a silence (a master-down timer).
   */
  drainAll(): void {
    if (this.closed) return;
    for (const [iface, a] of [...this.attached]) {
      if (a.v4) this.drain(iface, a.v4);
      if (a.v6) this.drain(iface, a.v6);
    }
  }

  private drain(iface: string, s: Sock): void {
    for (let i = 0; i < DRAIN_BATCH; i++) {
      if (this.attached.get(iface)?.[s.family === 4 ? 'v4' : 'v6'] !== s) return; // detached by a handler
      let done: boolean;
      try {
        done = s.family === 4 ? this.receiveV4(iface, s.fd, s.recv as Buffer) : this.receiveV6(iface, s.fd, s.recv as RecvMsgBuffers);
      } catch (e) {
        this.onError(e as Error);
        return;
      }
      if (done) return;
    }
  }

  private deliver(p: ReceivedPacket): void {
    try {
      this.onPacket(p);
    } catch (e) {
      this.onError(e as Error);
    }
  }

  /** One datagram; true when the socket is empty. */
  private receiveV4(iface: string, fd: number, buf: Buffer): boolean {
    const n = this.libc.recvfrom(fd, buf, 0, null, `receive IPv4 protocol ${this.protocol}`, iface);
    if (n === null) return true;
    const r = decodeIpv4(buf.subarray(0, n));
    if (!r.ok) {
      this.onDrop({ iface, family: 4, reason: r.error, detail: r.detail });
      return false;
    }
    if (r.packet.proto !== this.protocol) {
      this.onDrop({ iface, family: 4, reason: 'wrongproto', detail: `IP protocol ${r.packet.proto}` });
      return false;
    }
    this.deliver({ iface, family: 4, source: r.packet.src, destination: r.packet.dst, ttl: r.packet.ttl, payload: Buffer.from(r.packet.payload) });
    return false;
  }

  private receiveV6(iface: string, fd: number, m: RecvMsgBuffers): boolean {
    const n = this.libc.recvmsg(fd, m, 0, `receive IPv6 protocol ${this.protocol}`, iface);
    if (n === null) return true;
    if (m.flags & MSG_TRUNC) {
      this.onDrop({ iface, family: 6, reason: 'truncated', detail: `datagram larger than ${m.data.length} bytes` });
      return false;
    }
    let hopLimit: number | undefined;
    let destination: string | undefined;
    for (const c of m.cmsgs()) {
      if (c.level !== IPPROTO_IPV6) continue;
      if (c.type === IPV6_HOPLIMIT && c.data.length >= 4) hopLimit = c.data.readInt32LE(0);
      else if (c.type === IPV6_PKTINFO && c.data.length >= 20) destination = formatAddress(c.data.subarray(0, 16));
    }
    if (hopLimit === undefined || destination === undefined || m.nameLength < SOCKADDR_IN6_LEN) {
      const ctrunc = m.flags & MSG_CTRUNC ? ' (control data truncated)' : '';
      this.onDrop({ iface, family: 6, reason: 'noancillary', detail: `no hop limit, destination or source with the datagram${ctrunc}` });
      return false;
    }
    const source = formatAddress(m.name.subarray(8, 24));
    this.deliver({ iface, family: 6, source, destination, ttl: hopLimit, payload: Buffer.from(m.data.subarray(0, n)) });
    return false;
  }
}
