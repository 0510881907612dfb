/**
 * IPv4 and IPv6 header framing for protocol 112 (CARP, VRRP) and ICMPv6, plus address bytes.
 *
 * ```
 *  IPv4 header, 20 bytes (no options sent; options accepted on decode)
 *   0                   1                   2                   3
 *  +-------+-------+---------------+-------------------------------+
 *  |ver=4  |IHL=5  | TOS           | total length                  |   0
 *  +-------+-------+---------------+-----+-------------------------+
 *  | identification                |flags| fragment offset         |   4  (DF = 0x4000)
 *  +---------------+---------------+-----+-------------------------+
 *  | TTL = 255     | proto = 112   | header checksum               |   8
 *  +---------------+---------------+-------------------------------+
 *  | source address                                                |  12
 *  | destination address                                           |  16
 *  +---------------------------------------------------------------+
 *
 *  IPv6 header, 40 bytes
 *  +-------+---------------+---------------------------------------+
 *  |ver=6  | traffic class | flow label (20 bits)                  |   0
 *  +-------+---------------+-------+---------------+---------------+
 *  | payload length                | next header   | hop limit=255 |   4
 *  +-------------------------------+---------------+---------------+
 *  | source address (16)                                           |   8
 *  | destination address (16)                                      |  24
 *  +---------------------------------------------------------------+
 * ```
 *
 * carp-protocol.md §1: TTL / hop limit 255, DF set, proto 112, total length 56 for CARP.
 * Trap 9: a Linux raw IPv4 socket delivers the IP header, so the TTL is read from it; a raw
 * IPv6 socket delivers only the payload (the hop limit comes as ancillary data), so the IPv6
 * codec here serves the simulator and tests.
 */
import { canonicalIp, ipBytes } from './address.js';
import { internetChecksum } from './checksum.js';

export const IPPROTO_CARP = 112;
export const IPPROTO_VRRP = 112;
export const IPPROTO_ICMPV6 = 58;
/** §1: TTL / hop limit sent, and required on receipt in multicast mode. */
export const CARP_TTL = 255;
export const CARP_GROUP_V4 = '224.0.0.18';
export const CARP_GROUP_V6 = 'ff02::12';

/** The CARP/VRRP multicast group of a family. */
export function carpGroup(family: 4 | 6): string {
  return family === 4 ? CARP_GROUP_V4 : CARP_GROUP_V6;
}
/** §1 IPv4 TOS values: FreeBSD 14 sends DSCP CS7; OpenBSD and ucarp 0x10; keepalived 0xc0. */
export const TOS_FREEBSD = 0xe0;
export const TOS_UCARP = 0x10;
export const TOS_OPENBSD = 0x10;
export const TOS_KEEPALIVED = 0xc0;

export const IPV4_HEADER_LEN = 20;
export const IPV6_HEADER_LEN = 40;

/** An address as text ("192.0.2.1", "2001:db8::1", also with a "/prefix" that is ignored) or as 4/16 bytes. */
export type AddressInput = string | Uint8Array;

/** A Buffer over the same memory (no copy). */
export function bufferView(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** 4 or 16 network-order bytes of an address, or undefined when it is not one. Never throws. */
export function addressBytes(input: AddressInput): Buffer | undefined {
  if (typeof input !== 'string') {
    return input.length === 4 || input.length === 16 ? Buffer.from(input) : undefined;
  }
  const slash = input.indexOf('/');
  const ip = canonicalIp(slash < 0 ? input : input.slice(0, slash));
  return ip ? ipBytes(ip.address) : undefined;
}

/** Like addressBytes, for encoders: throws a TypeError naming `what`. */
export function requireAddress(input: AddressInput, what: string): Buffer {
  const b = addressBytes(input);
  if (!b) throw new TypeError(`${what}: not an IPv4/IPv6 address: ${String(input)}`);
  return b;
}

/** Canonical text (RFC 5952 for IPv6) of 4 or 16 address bytes. */
export function formatAddress(bytes: Uint8Array): string {
  if (bytes.length === 4) return Array.from(bytes).join('.');
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i] << 8) | bytes[i + 1]).toString(16));
  return canonicalIp(groups.join(':'))?.address ?? groups.join(':');
}

/** Throws unless `length` bytes fit at `offset` of `buf`. */
export function checkRoom(buf: Uint8Array, offset: number, length: number, what: string): void {
  if (!Number.isInteger(offset) || offset < 0 || offset + length > buf.length) {
    throw new RangeError(`${what}: ${length} bytes do not fit at offset ${offset} of a ${buf.length}-byte buffer`);
  }
}

/** Throws unless `value` is an integer in [min, max]. */
export function checkInt(value: number, min: number, max: number, what: string): void {
  if (!Number.isInteger(value) || value < min || value > max) throw new RangeError(`${what} must be an integer ${min}..${max}, got ${value}`);
}

// ---- IPv4 ----

export interface Ipv4Header {
  src: AddressInput;
  dst: AddressInput;
  proto: number;
  /** Default 255 (§1). */
  ttl?: number;
  /** Default 0; CARP senders pick TOS_FREEBSD or TOS_UCARP (§1). */
  tos?: number;
  /** Default 0 (a Linux raw socket with IP_HDRINCL fills in an id when 0 is given). */
  id?: number;
  /** Default true (§1: DF set). */
  dontFragment?: boolean;
}

/** Writes the 20-byte header for a payload of `payloadLength` bytes; returns 20. */
export function encodeIpv4Header(h: Ipv4Header, payloadLength: number, buf: Uint8Array, offset = 0): number {
  checkRoom(buf, offset, IPV4_HEADER_LEN, 'IPv4 header');
  checkInt(payloadLength, 0, 0xffff - IPV4_HEADER_LEN, 'IPv4 payload length');
  const ttl = h.ttl ?? CARP_TTL;
  const tos = h.tos ?? 0;
  const id = h.id ?? 0;
  checkInt(h.proto, 0, 255, 'IPv4 protocol');
  checkInt(ttl, 0, 255, 'IPv4 TTL');
  checkInt(tos, 0, 255, 'IPv4 TOS');
  checkInt(id, 0, 0xffff, 'IPv4 id');
  const src = requireAddress(h.src, 'IPv4 source');
  const dst = requireAddress(h.dst, 'IPv4 destination');
  if (src.length !== 4 || dst.length !== 4) throw new TypeError('IPv4 header needs IPv4 addresses');
  const b = bufferView(buf);
  b[offset] = 0x45;
  b[offset + 1] = tos;
  b.writeUInt16BE(IPV4_HEADER_LEN + payloadLength, offset + 2);
  b.writeUInt16BE(id, offset + 4);
  b.writeUInt16BE(h.dontFragment === false ? 0 : 0x4000, offset + 6);
  b[offset + 8] = ttl;
  b[offset + 9] = h.proto;
  b.writeUInt16BE(0, offset + 10);
  src.copy(b, offset + 12);
  dst.copy(b, offset + 16);
  b.writeUInt16BE(internetChecksum(b, offset, offset + IPV4_HEADER_LEN), offset + 10);
  return IPV4_HEADER_LEN;
}

/** Header + payload as one new buffer. */
export function ipv4Packet(h: Ipv4Header, payload: Uint8Array): Buffer {
  const out = Buffer.alloc(IPV4_HEADER_LEN + payload.length);
  encodeIpv4Header(h, payload.length, out, 0);
  out.set(payload, IPV4_HEADER_LEN);
  return out;
}

export interface Ipv4Packet {
  src: string;
  dst: string;
  ttl: number;
  proto: number;
  tos: number;
  id: number;
  dontFragment: boolean;
  headerLength: number;
  /** The bytes after the header up to the total length (a view, not a copy). */
  payload: Buffer;
}

/** Why an IPv4 datagram was refused; the CARP counters file these under `hdrops`. */
export type Ipv4Error = 'truncated' | 'badversion' | 'badhdrlen' | 'badhdrsum' | 'fragment';
export type Ipv4Result = { ok: true; packet: Ipv4Packet } | { ok: false; error: Ipv4Error; detail: string };

/** Decodes a datagram as a Linux raw IPv4 socket delivers it. Never throws. */
export function decodeIpv4(bytes: Uint8Array): Ipv4Result {
  const fail = (error: Ipv4Error, detail: string): Ipv4Result => ({ ok: false, error, detail });
  if (bytes.length < IPV4_HEADER_LEN) return fail('truncated', `${bytes.length} bytes, an IPv4 header needs 20`);
  const b = bufferView(bytes);
  if (b[0] >> 4 !== 4) return fail('badversion', `IP version ${b[0] >> 4}`);
  const headerLength = (b[0] & 0x0f) * 4;
  if (headerLength < IPV4_HEADER_LEN) return fail('badhdrlen', `header length ${headerLength}`);
  if (headerLength > b.length) return fail('truncated', `header length ${headerLength} > ${b.length} bytes`);
  const totalLength = b.readUInt16BE(2);
  if (totalLength < headerLength) return fail('badhdrlen', `total length ${totalLength} < header length ${headerLength}`);
  if (totalLength > b.length) return fail('truncated', `total length ${totalLength} > ${b.length} bytes`);
  if (internetChecksum(b, 0, headerLength) !== 0) return fail('badhdrsum', 'IPv4 header checksum mismatch');
  const frag = b.readUInt16BE(6);
  if ((frag & 0x3fff) !== 0) return fail('fragment', 'fragmented datagram');
  return {
    ok: true,
    packet: {
      src: formatAddress(b.subarray(12, 16)),
      dst: formatAddress(b.subarray(16, 20)),
      ttl: b[8],
      proto: b[9],
      tos: b[1],
      id: b.readUInt16BE(4),
      dontFragment: (frag & 0x4000) !== 0,
      headerLength,
      payload: b.subarray(headerLength, totalLength),
    },
  };
}

// ---- IPv6 ----

export interface Ipv6Header {
  src: AddressInput;
  dst: AddressInput;
  nextHeader: number;
  /** Default 255 (§1). */
  hopLimit?: number;
  /** Default 0; FreeBSD uses the same DSCP byte as for IPv4 (§1). */
  trafficClass?: number;
  /** Default 0. */
  flowLabel?: number;
}

/** Writes the 40-byte header for a payload of `payloadLength` bytes; returns 40. */
export function encodeIpv6Header(h: Ipv6Header, payloadLength: number, buf: Uint8Array, offset = 0): number {
  checkRoom(buf, offset, IPV6_HEADER_LEN, 'IPv6 header');
  checkInt(payloadLength, 0, 0xffff, 'IPv6 payload length');
  const hopLimit = h.hopLimit ?? CARP_TTL;
  const tc = h.trafficClass ?? 0;
  const flow = h.flowLabel ?? 0;
  checkInt(h.nextHeader, 0, 255, 'IPv6 next header');
  checkInt(hopLimit, 0, 255, 'IPv6 hop limit');
  checkInt(tc, 0, 255, 'IPv6 traffic class');
  checkInt(flow, 0, 0xfffff, 'IPv6 flow label');
  const src = requireAddress(h.src, 'IPv6 source');
  const dst = requireAddress(h.dst, 'IPv6 destination');
  if (src.length !== 16 || dst.length !== 16) throw new TypeError('IPv6 header needs IPv6 addresses');
  const b = bufferView(buf);
  b.writeUInt32BE(((6 << 28) | (tc << 20) | flow) >>> 0, offset);
  b.writeUInt16BE(payloadLength, offset + 4);
  b[offset + 6] = h.nextHeader;
  b[offset + 7] = hopLimit;
  src.copy(b, offset + 8);
  dst.copy(b, offset + 24);
  return IPV6_HEADER_LEN;
}

/** Header + payload as one new buffer. */
export function ipv6Packet(h: Ipv6Header, payload: Uint8Array): Buffer {
  const out = Buffer.alloc(IPV6_HEADER_LEN + payload.length);
  encodeIpv6Header(h, payload.length, out, 0);
  out.set(payload, IPV6_HEADER_LEN);
  return out;
}

export interface Ipv6Packet {
  src: string;
  dst: string;
  hopLimit: number;
  nextHeader: number;
  trafficClass: number;
  flowLabel: number;
  /** The payload-length bytes after the header (a view); extension headers are not walked. */
  payload: Buffer;
}

export type Ipv6Error = 'truncated' | 'badversion';
export type Ipv6Result = { ok: true; packet: Ipv6Packet } | { ok: false; error: Ipv6Error; detail: string };

/** Decodes a fixed IPv6 header and its payload. Never throws. */
export function decodeIpv6(bytes: Uint8Array): Ipv6Result {
  if (bytes.length < IPV6_HEADER_LEN) return { ok: false, error: 'truncated', detail: `${bytes.length} bytes, an IPv6 header needs 40` };
  const b = bufferView(bytes);
  const first = b.readUInt32BE(0);
  if (first >>> 28 !== 6) return { ok: false, error: 'badversion', detail: `IP version ${first >>> 28}` };
  const payloadLength = b.readUInt16BE(4);
  if (IPV6_HEADER_LEN + payloadLength > b.length) {
    return { ok: false, error: 'truncated', detail: `payload length ${payloadLength} > ${b.length - IPV6_HEADER_LEN} bytes` };
  }
  return {
    ok: true,
    packet: {
      src: formatAddress(b.subarray(8, 24)),
      dst: formatAddress(b.subarray(24, 40)),
      hopLimit: b[7],
      nextHeader: b[6],
      trafficClass: (first >>> 20) & 0xff,
      flowLabel: first & 0xfffff,
      payload: b.subarray(IPV6_HEADER_LEN, IPV6_HEADER_LEN + payloadLength),
    },
  };
}
