/**
 * Take-over announcements (carp-protocol.md §7.4, trap 10): a gratuitous ARP request for each
 * IPv4 VIP and an unsolicited neighbour advertisement to ff02::1 for each IPv6 VIP.
 *
 * ```
 *  ARP for IPv4 over Ethernet (RFC 826), 28 bytes
 *  +---------------+---------------+-------+-------+---------------+
 *  | htype = 1     | ptype = 0x0800| hlen=6| plen=4| op (1 request)|   0
 *  +---------------+---------------+-------+-------+---------------+
 *  | sender MAC (6)                | sender IP (4) = VIP           |   8
 *  | target MAC (6) = 0            | target IP (4) = VIP           |  18
 *  +---------------------------------------------------------------+  28
 *  frame: Ethernet (dst ff:ff:ff:ff:ff:ff, src = sender MAC, 0x0806) + ARP = 42 bytes
 *
 *  ICMPv6 neighbour advertisement (RFC 4861 §4.4) + target link-layer option, 32 bytes
 *  +---------------+---------------+-------------------------------+
 *  | type = 136    | code = 0      | checksum (IPv6 pseudo-header) |   0
 *  +-+-+-+---------+---------------+-------------------------------+
 *  |R|S|O| reserved (29 bits)                                      |   4
 *  +-+-+-+---------------------------------------------------------+
 *  | target address (16) = VIP                                     |   8
 *  +---------------+---------------+-------------------------------+
 *  | opt type = 2  | opt len = 1   | target link-layer address (6) |  24
 *  +---------------+---------------+-------------------------------+  32
 *  packet: IPv6 (hop limit 255, next header 58, dst ff02::1) + NA = 72 bytes
 *  frame:  Ethernet (dst 33:33:00:00:00:01, 0x86dd) + packet        = 86 bytes
 * ```
 *
 * FreeBSD announces with the virtual MAC and the Override flag (§7.4); ucarp uses the real MAC;
 * keepalived sends target MAC ff:ff:ff:ff:ff:ff in its ARP (§11.4), which `targetMac` allows.
 */
import { internetChecksum, ipv6PseudoHeaderSum } from './checksum.js';
import { CARP_TTL, IPPROTO_ICMPV6, addressBytes, bufferView, checkInt, checkRoom, formatAddress, ipv6Packet, requireAddress } from './ip.js';
import type { AddressInput } from './ip.js';
import { BROADCAST_MAC, ETHERTYPE_ARP, ETHERTYPE_IPV6, ethernetFrame, formatMac, multicastMac, requireMac } from './mac.js';
import type { MacInput } from './mac.js';

export const ARP_LEN = 28;
export const ARP_OP_REQUEST = 1;
export const ARP_OP_REPLY = 2;
export const ND_NEIGHBOR_ADVERT = 136;
export const NA_LEN = 32;
export const ALL_NODES = 'ff02::1';
const NA_FLAG_ROUTER = 0x80;
const NA_FLAG_SOLICITED = 0x40;
const NA_FLAG_OVERRIDE = 0x20;
const ND_OPT_TARGET_LINKADDR = 2;

export interface ArpPacket {
  op: number;
  senderMac: MacInput;
  senderIp: AddressInput;
  targetMac: MacInput;
  targetIp: AddressInput;
}

/** Writes a 28-byte Ethernet/IPv4 ARP packet; returns 28. */
export function encodeArp(p: ArpPacket, buf: Uint8Array, offset = 0): number {
  checkRoom(buf, offset, ARP_LEN, 'ARP packet');
  checkInt(p.op, 0, 0xffff, 'ARP op');
  const spa = requireAddress(p.senderIp, 'ARP sender IP');
  const tpa = requireAddress(p.targetIp, 'ARP target IP');
  if (spa.length !== 4 || tpa.length !== 4) throw new TypeError('ARP needs IPv4 addresses');
  const b = bufferView(buf);
  b.writeUInt16BE(1, offset);
  b.writeUInt16BE(0x0800, offset + 2);
  b[offset + 4] = 6;
  b[offset + 5] = 4;
  b.writeUInt16BE(p.op, offset + 6);
  requireMac(p.senderMac, 'ARP sender MAC').copy(b, offset + 8);
  spa.copy(b, offset + 14);
  requireMac(p.targetMac, 'ARP target MAC').copy(b, offset + 18);
  tpa.copy(b, offset + 24);
  return ARP_LEN;
}

export interface DecodedArp {
  op: number;
  senderMac: string;
  senderIp: string;
  targetMac: string;
  targetIp: string;
}

export type ArpResult = { ok: true; arp: DecodedArp } | { ok: false; error: 'truncated' | 'unsupported'; detail: string };

/** Decodes an ARP packet (the Ethernet payload); only Ethernet/IPv4 ARP is understood. Never throws. */
export function decodeArp(bytes: Uint8Array): ArpResult {
  if (bytes.length < ARP_LEN) return { ok: false, error: 'truncated', detail: `${bytes.length} bytes, ARP needs ${ARP_LEN}` };
  const b = bufferView(bytes);
  if (b.readUInt16BE(0) !== 1 || b.readUInt16BE(2) !== 0x0800 || b[4] !== 6 || b[5] !== 4) {
    return { ok: false, error: 'unsupported', detail: 'not Ethernet/IPv4 ARP' };
  }
  return {
    ok: true,
    arp: {
      op: b.readUInt16BE(6),
      senderMac: formatMac(b.subarray(8, 14)),
      senderIp: formatAddress(b.subarray(14, 18)),
      targetMac: formatMac(b.subarray(18, 24)),
      targetIp: formatAddress(b.subarray(24, 28)),
    },
  };
}

export interface GratuitousArpOptions {
  /** The MAC that should own the VIP: the virtual MAC (FreeBSD) or the interface's (ucarp). */
  mac: MacInput;
  vip: AddressInput;
  /** Default 00:00:00:00:00:00 (FreeBSD's arprequest); keepalived sends ff:ff:ff:ff:ff:ff. */
  targetMac?: MacInput;
  /** Default 'request' (§7.4). */
  op?: 'request' | 'reply';
}

/** The 28-byte ARP packet announcing a VIP: sender = target = VIP. */
export function gratuitousArp(o: GratuitousArpOptions): Buffer {
  const out = Buffer.alloc(ARP_LEN);
  encodeArp(
    { op: o.op === 'reply' ? ARP_OP_REPLY : ARP_OP_REQUEST, senderMac: o.mac, senderIp: o.vip, targetMac: o.targetMac ?? Buffer.alloc(6), targetIp: o.vip },
    out,
  );
  return out;
}

/** Ethernet broadcast frame (42 bytes) carrying gratuitousArp(o), sent from `o.mac`. */
export function gratuitousArpFrame(o: GratuitousArpOptions): Buffer {
  return ethernetFrame({ dst: BROADCAST_MAC, src: o.mac, etherType: ETHERTYPE_ARP }, gratuitousArp(o));
}

export interface NeighborAdvert {
  target: AddressInput;
  /** Target link-layer address option. */
  mac: MacInput;
  /** R flag: set on a node that forwards IPv6 (a firewall), or neighbours drop it as a router (RFC 4861 §7.2.5). Default false. */
  router?: boolean;
  /** S flag: false for unsolicited advertisements (mandatory towards a multicast destination). Default false. */
  solicited?: boolean;
  /** O flag: default true, so neighbours replace their cached MAC (§7.4). */
  override?: boolean;
}

/** Writes the 32-byte ICMPv6 NA with its checksum for the given IPv6 source/destination; returns 32. */
export function encodeNeighborAdvert(na: NeighborAdvert, ip: { src: AddressInput; dst: AddressInput }, buf: Uint8Array, offset = 0): number {
  checkRoom(buf, offset, NA_LEN, 'neighbour advertisement');
  const target = requireAddress(na.target, 'NA target');
  const src = requireAddress(ip.src, 'NA source');
  const dst = requireAddress(ip.dst, 'NA destination');
  if (target.length !== 16 || src.length !== 16 || dst.length !== 16) throw new TypeError('neighbour advertisement needs IPv6 addresses');
  const mac = requireMac(na.mac, 'NA link-layer address');
  const b = bufferView(buf);
  b.fill(0, offset, offset + NA_LEN);
  b[offset] = ND_NEIGHBOR_ADVERT;
  b[offset + 4] = (na.router ? NA_FLAG_ROUTER : 0) | (na.solicited ? NA_FLAG_SOLICITED : 0) | (na.override === false ? 0 : NA_FLAG_OVERRIDE);
  target.copy(b, offset + 8);
  b[offset + 24] = ND_OPT_TARGET_LINKADDR;
  b[offset + 25] = 1;
  mac.copy(b, offset + 26);
  const pseudo = ipv6PseudoHeaderSum(src, dst, IPPROTO_ICMPV6, NA_LEN);
  b.writeUInt16BE(internetChecksum(b, offset, offset + NA_LEN, pseudo), offset + 2);
  return NA_LEN;
}

export interface UnsolicitedNaOptions extends NeighborAdvert {
  /** IPv6 source; default the target itself (what FreeBSD and Linux use when the target is assigned). */
  src?: AddressInput;
  /** Default ff02::1 (all nodes). */
  dst?: AddressInput;
}

/** IPv6 header (hop limit 255, next header 58) + NA: 72 bytes. */
export function neighborAdvertPacket(o: UnsolicitedNaOptions): Buffer {
  const src = o.src ?? o.target;
  const dst = o.dst ?? ALL_NODES;
  const na = Buffer.alloc(NA_LEN);
  encodeNeighborAdvert(o, { src, dst }, na);
  return ipv6Packet({ src, dst, nextHeader: IPPROTO_ICMPV6, hopLimit: CARP_TTL }, na);
}

/** Ethernet frame (86 bytes) to the destination's multicast MAC, sent from `o.mac`. */
export function unsolicitedNaFrame(o: UnsolicitedNaOptions): Buffer {
  return ethernetFrame({ dst: multicastMac(o.dst ?? ALL_NODES), src: o.mac, etherType: ETHERTYPE_IPV6 }, neighborAdvertPacket(o));
}

export interface DecodedNeighborAdvert {
  router: boolean;
  solicited: boolean;
  override: boolean;
  target: string;
  /** From the target link-layer address option, when present. */
  mac?: string;
  checksum: number;
}

export type NeighborAdvertError = 'truncated' | 'badtype' | 'badsum' | 'badoption' | 'badaddrs';
export type NeighborAdvertResult = { ok: true; na: DecodedNeighborAdvert } | { ok: false; error: NeighborAdvertError; detail: string };

/** Checks (RFC 4861 §7.1.2, minus the IP hop limit) and decodes an ICMPv6 NA. Never throws. */
export function decodeNeighborAdvert(bytes: Uint8Array, ip: { src: AddressInput; dst: AddressInput }): NeighborAdvertResult {
  const fail = (error: NeighborAdvertError, detail: string): NeighborAdvertResult => ({ ok: false, error, detail });
  const src = addressBytes(ip.src);
  const dst = addressBytes(ip.dst);
  if (src?.length !== 16 || dst?.length !== 16) return fail('badaddrs', 'IPv6 source and destination required');
  if (bytes.length < 24) return fail('truncated', `${bytes.length} bytes, a neighbour advertisement needs 24`);
  const b = bufferView(bytes);
  if (b[0] !== ND_NEIGHBOR_ADVERT || b[1] !== 0) return fail('badtype', `ICMPv6 type ${b[0]} code ${b[1]}`);
  if (internetChecksum(b, 0, b.length, ipv6PseudoHeaderSum(src, dst, IPPROTO_ICMPV6, b.length)) !== 0) return fail('badsum', 'ICMPv6 checksum mismatch');
  const flags = b[4];
  if (dst[0] === 0xff && flags & NA_FLAG_SOLICITED) return fail('badtype', 'solicited flag on a multicast advertisement');
  if (b[8] === 0xff) return fail('badaddrs', 'multicast target');
  let mac: string | undefined;
  for (let i = 24; i < b.length; ) {
    if (i + 2 > b.length || b[i + 1] === 0 || i + b[i + 1] * 8 > b.length) return fail('badoption', `malformed option at byte ${i}`);
    if (b[i] === ND_OPT_TARGET_LINKADDR && b[i + 1] === 1) mac = formatMac(b.subarray(i + 2, i + 8));
    i += b[i + 1] * 8;
  }
  return {
    ok: true,
    na: {
      router: (flags & NA_FLAG_ROUTER) !== 0,
      solicited: (flags & NA_FLAG_SOLICITED) !== 0,
      override: (flags & NA_FLAG_OVERRIDE) !== 0,
      target: formatAddress(b.subarray(8, 24)),
      ...(mac === undefined ? {} : { mac }),
      checksum: b.readUInt16BE(2),
    },
  };
}
