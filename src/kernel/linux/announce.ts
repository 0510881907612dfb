/**
 * Take-over announcements on Linux (carp-protocol.md §7.4, trap 10): the packets are built by
 * src/wire/arp.ts; this file only puts them on the wire, as ucarp and keepalived do.
 *
 * Gratuitous ARP: an AF_PACKET SOCK_DGRAM socket sends the 28-byte ARP request (sender IP =
 * target IP = VIP, sender MAC = the given MAC) to ff:ff:ff:ff:ff:ff with EtherType 0x0806; the
 * kernel writes the Ethernet header with the interface's own MAC as source. The socket is opened
 * with protocol 0, so it receives nothing.
 *
 * Unsolicited neighbour advertisement: an ICMPv6 raw socket sends the 32-byte NA (Override set,
 * Solicited clear, target link-layer option = the MAC) to ff02::1 with hop limit 255 (RFC 4861
 * §7.1.2 makes receivers drop anything else). The kernel chooses the source (the interface's
 * link-local address) and computes the ICMPv6 checksum itself: it always does on ICMPv6 raw
 * sockets, so the checksum field is sent as 0. An ICMP6_FILTER that blocks every type keeps the
 * socket from queueing what arrives.
 *
 * The sockets are opened on first use and shared by every interface: the interface is chosen per
 * packet (sll_ifindex, sin6_scope_id).
 */
import { ALL_NODES, NA_LEN, encodeNeighborAdvert, gratuitousArp } from '../../wire/arp.js';
import { requireAddress } from '../../wire/ip.js';
import { BROADCAST_MAC, requireMac } from '../../wire/mac.js';
import {
  AF_INET6,
  AF_PACKET,
  ETH_P_ARP,
  ETH_P_IP,
  ETH_P_IPV6,
  ICMP6_FILTER,
  IPPROTO_ICMPV6,
  IPPROTO_IPV6,
  IPV6_MULTICAST_HOPS,
  IPV6_MULTICAST_LOOP,
  IPV6_UNICAST_HOPS,
  SOCK_CLOEXEC,
  SOCK_DGRAM,
  SOCK_NONBLOCK,
  SOCK_RAW,
  linuxLibc,
  sockaddrIn,
  sockaddrLl,
  type LinuxLibc,
} from './libc.js';

export interface UnsolicitedNaSendOptions {
  /** R flag: set when this node forwards IPv6 (a router or firewall), else neighbours stop routing through it. Default false. */
  router?: boolean;
}

export class Announcer {
  private readonly libc: LinuxLibc;
  private arpFd: number | undefined;
  private icmp6Fd: number | undefined;
  private closed = false;

  constructor(libc: LinuxLibc = linuxLibc()) {
    this.libc = libc;
  }

  /** A gratuitous ARP request for `ipv4` owned by `mac`, broadcast on `iface`. */
  gratuitousArp(iface: string, ipv4: string, mac: string): void {
    const op = `gratuitous ARP for ${ipv4}`;
    if (this.closed) throw new Error('Announcer is closed');
    const arp = gratuitousArp({ mac, vip: ipv4 });
    const index = this.libc.ifNameToIndex(iface);
    this.arpFd ??= this.libc.socket(AF_PACKET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, `${op}: packet socket`, iface);
    this.libc.sendto(this.arpFd, arp, 0, sockaddrLl(ETH_P_ARP, index, requireMac(BROADCAST_MAC, 'broadcast')), op, iface);
  }

  /**
   * An IP datagram (header included) in an Ethernet frame to `dstMac` on the interface of index
   * `ifindex`, through the same packet socket: the kernel writes the Ethernet header with the
   * interface's own MAC as source (a macvlan's: the virtual MAC).
   */
  ipFrame(ifindex: number, iface: string, family: 4 | 6, dstMac: Buffer, packet: Buffer, op: string): void {
    if (this.closed) throw new Error('Announcer is closed');
    this.arpFd ??= this.libc.socket(AF_PACKET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, `${op}: packet socket`, iface);
    this.libc.sendto(this.arpFd, packet, 0, sockaddrLl(family === 4 ? ETH_P_IP : ETH_P_IPV6, ifindex, dstMac), op, iface);
  }

  /** An unsolicited neighbour advertisement for `ipv6` owned by `mac`, to ff02::1 on `iface`. */
  unsolicitedNa(iface: string, ipv6: string, mac: string, opts: UnsolicitedNaSendOptions = {}): void {
    const op = `neighbour advertisement for ${ipv6}`;
    if (this.closed) throw new Error('Announcer is closed');
    const target = requireAddress(ipv6, 'NA target');
    if (target.length !== 16) throw new TypeError(`${op}: not an IPv6 address`);
    const index = this.libc.ifNameToIndex(iface);
    const na = Buffer.alloc(NA_LEN);
    // The checksum encodeNeighborAdvert computes is for an assumed source; the kernel's replaces it.
    encodeNeighborAdvert({ target, mac, router: opts.router ?? false, solicited: false, override: true }, { src: '::', dst: ALL_NODES }, na);
    na.writeUInt16BE(0, 2);
    const fd = this.icmp6Socket(iface, op);
    this.libc.sendto(fd, na, 0, sockaddrIn(requireAddress(ALL_NODES, 'ff02::1'), 0, index), op, iface);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const fd of [this.arpFd, this.icmp6Fd]) if (fd !== undefined) this.libc.close(fd);
    this.arpFd = this.icmp6Fd = undefined;
  }

  private icmp6Socket(iface: string, op: string): number {
    if (this.icmp6Fd !== undefined) return this.icmp6Fd;
    const fd = this.libc.socket(AF_INET6, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_ICMPV6, `${op}: ICMPv6 socket`, iface);
    try {
      this.libc.setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, 255, `${op}: IPV6_MULTICAST_HOPS`, iface);
      this.libc.setsockopt(fd, IPPROTO_IPV6, IPV6_UNICAST_HOPS, 255, `${op}: IPV6_UNICAST_HOPS`, iface);
      this.libc.setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_LOOP, 0, `${op}: IPV6_MULTICAST_LOOP`, iface);
      // struct icmp6_filter: 256 bits, a set bit blocks that type; block them all.
      this.libc.setsockopt(fd, IPPROTO_ICMPV6, ICMP6_FILTER, Buffer.alloc(32, 0xff), `${op}: ICMP6_FILTER`, iface);
    } catch (e) {
      this.libc.close(fd);
      throw e;
    }
    this.icmp6Fd = fd;
    return fd;
  }
}

let shared: Announcer | undefined;

function sharedAnnouncer(): Announcer {
  shared ??= new Announcer();
  return shared;
}

/** Gratuitous ARP through a process-wide Announcer. Throws KernelError (ENXIO for a missing interface). */
export function sendGratuitousArp(iface: string, ipv4: string, mac: string): void {
  sharedAnnouncer().gratuitousArp(iface, ipv4, mac);
}

/** Unsolicited NA through a process-wide Announcer. Throws KernelError (ENXIO for a missing interface). */
export function sendUnsolicitedNa(iface: string, ipv6: string, mac: string, opts?: UnsolicitedNaSendOptions): void {
  sharedAnnouncer().unsolicitedNa(iface, ipv6, mac, opts);
}
