/**
 * VRRP version 3 advertisements (RFC 5798, RFC 9568 with the same wire format;
 * carp-protocol.md §11), as keepalived sends them.
 *
 * ```
 *  VRRPv3 message, 8 + 4n bytes (IPv4) or 8 + 16n bytes (IPv6)
 *   0               1               2               3
 *  +-------+-------+---------------+---------------+---------------+
 *  |ver=3  |type=1 | VRID 1..255   | priority      | count n       |   0
 *  +-------+-------+---------------+---------------+---------------+
 *  | rsvd  | max advert interval   | checksum (with pseudo-header) |   4
 *  | 4 bit | 12 bits, centiseconds |                               |
 *  +-------+-----------------------+-------------------------------+
 *  | n addresses of the packet's family (4 or 16 bytes each)       |   8
 *  +---------------------------------------------------------------+
 * ```
 *
 * - No authentication field.
 * - The checksum covers an IP pseudo-header + the message for IPv4 as well as IPv6 (§11.1,
 *   trap 4; verified on keepalived packets). Some implementations are reported to use the
 *   message-only form over IPv4: accepting it is the explicit `acceptMessageOnlyChecksum` option.
 * - IP: protocol 112, TTL / hop limit 255 (checked), group 224.0.0.18 / ff02::12.
 * - Drop reasons share the carpstats names (FreeBSD 15 counts its VRRP mode there too); the
 *   checks run in RFC 5798 §7.1 order: TTL, version/type, length, checksum, VRID.
 */
import { internetChecksum, pseudoHeaderSum } from './checksum.js';
import {
  CARP_GROUP_V4,
  CARP_GROUP_V6,
  CARP_TTL,
  IPPROTO_VRRP,
  TOS_KEEPALIVED,
  addressBytes,
  bufferView,
  checkInt,
  checkRoom,
  formatAddress,
  ipv4Packet,
  ipv6Packet,
  requireAddress,
} from './ip.js';
import type { AddressInput } from './ip.js';
import type { CarpDropReason } from './counters.js';

export const VRRP_VERSION = 3;
export const VRRP_TYPE_ADVERTISEMENT = 1;
export const VRRP_FIXED_LEN = 8;
/** Priority 255: the address owner; 0: the master is resigning (§11.1). */
export const VRRP_PRIORITY_OWNER = 255;
export const VRRP_PRIORITY_RESIGN = 0;
export const VRRP_DEFAULT_PRIORITY = 100;
export const VRRP_DEFAULT_INTERVAL_CS = 100;
export const VRRP_MAX_INTERVAL_CS = 0xfff;

export interface VrrpAdvert {
  vrid: number;
  priority: number;
  /** 1..4095 centiseconds (12 bits). */
  maxAdvertIntervalCs: number;
  /** The virtual addresses, all of the packet's family; for IPv6 the link-local one first (RFC 9568). */
  addresses: readonly AddressInput[];
}

export interface VrrpIp {
  src: AddressInput;
  /** Default 224.0.0.18 / ff02::12 by the source's family. */
  dst?: AddressInput;
}

export interface VrrpHeader {
  version: number;
  type: number;
  vrid: number;
  priority: number;
  count: number;
  /** The 4 reserved bits as received (sent as 0, ignored). */
  reserved: number;
  maxAdvertIntervalCs: number;
  checksum: number;
  family: 4 | 6;
  addresses: string[];
  /** True when the packet passed only through `acceptMessageOnlyChecksum`. */
  messageOnlyChecksum: boolean;
}

export interface VrrpDecodeContext {
  /** IP source and destination of the packet: they are part of the checksum. */
  src: AddressInput;
  dst: AddressInput;
  /** TTL / hop limit as received; omitted = not checked. */
  ttl?: number;
  /** The VRID configured here, or a predicate; omitted = any VRID. */
  vrid?: number | ((vrid: number) => boolean);
  /** Also accept an IPv4 checksum computed without the pseudo-header. Default false. */
  acceptMessageOnlyChecksum?: boolean;
}

export type VrrpError = Extract<CarpDropReason, 'badlen' | 'badsum' | 'badvhid' | 'badver' | 'badttl' | 'badaddrs'>;
export type VrrpDecodeResult = { ok: true; advert: VrrpHeader } | { ok: false; error: VrrpError; detail: string };

function endpoints(ip: VrrpIp): { src: Buffer; dst: Buffer } {
  const src = requireAddress(ip.src, 'VRRP source');
  const dst = requireAddress(ip.dst ?? (src.length === 4 ? CARP_GROUP_V4 : CARP_GROUP_V6), 'VRRP destination');
  if (src.length !== dst.length) throw new TypeError('VRRP source and destination are of different families');
  return { src, dst };
}

/** The message length for `count` addresses of a family. */
export function vrrpLength(family: 4 | 6, count: number): number {
  return VRRP_FIXED_LEN + count * (family === 4 ? 4 : 16);
}

/** Writes the advertisement with its pseudo-header checksum; returns its length. Throws on bad input. */
export function encodeVrrp(adv: VrrpAdvert, ip: VrrpIp, buf: Uint8Array, offset = 0): number {
  checkInt(adv.vrid, 1, 255, 'vrid');
  checkInt(adv.priority, 0, 255, 'priority');
  checkInt(adv.maxAdvertIntervalCs, 1, VRRP_MAX_INTERVAL_CS, 'maxAdvertIntervalCs');
  checkInt(adv.addresses.length, 1, 255, 'address count');
  const { src, dst } = endpoints(ip);
  const addrs = adv.addresses.map((a) => requireAddress(a, 'VRRP address'));
  if (addrs.some((a) => a.length !== src.length)) throw new TypeError('VRRP addresses must be of the packet family');
  const length = VRRP_FIXED_LEN + addrs.length * src.length;
  checkRoom(buf, offset, length, 'VRRP advertisement');
  const b = bufferView(buf);
  b[offset] = (VRRP_VERSION << 4) | VRRP_TYPE_ADVERTISEMENT;
  b[offset + 1] = adv.vrid;
  b[offset + 2] = adv.priority;
  b[offset + 3] = addrs.length;
  b.writeUInt16BE(adv.maxAdvertIntervalCs, offset + 4);
  b.writeUInt16BE(0, offset + 6);
  addrs.forEach((a, i) => a.copy(b, offset + VRRP_FIXED_LEN + i * a.length));
  const pseudo = pseudoHeaderSum(src, dst, IPPROTO_VRRP, length);
  b.writeUInt16BE(internetChecksum(b, offset, offset + length, pseudo), offset + 6);
  return length;
}

/** The advertisement as a new buffer. */
export function vrrpBytes(adv: VrrpAdvert, ip: VrrpIp): Buffer {
  const { src } = endpoints(ip);
  const out = Buffer.alloc(vrrpLength(src.length === 4 ? 4 : 6, adv.addresses.length));
  encodeVrrp(adv, ip, out, 0);
  return out;
}

/**
 * IP header (TTL 255, proto 112) + advertisement, the family chosen by `ip.src`. keepalived
 * sends TOS 0xc0 without DF (§11.4); defaults here are TOS/traffic class 0xc0 and DF set.
 */
export function vrrpPacket(adv: VrrpAdvert, ip: VrrpIp & { tos?: number; id?: number; dontFragment?: boolean }): Buffer {
  const { src, dst } = endpoints(ip);
  const msg = vrrpBytes(adv, ip);
  const tos = ip.tos ?? TOS_KEEPALIVED;
  return src.length === 4
    ? ipv4Packet({ src, dst, proto: IPPROTO_VRRP, ttl: CARP_TTL, tos, id: ip.id ?? 0, dontFragment: ip.dontFragment ?? true }, msg)
    : ipv6Packet({ src, dst, nextHeader: IPPROTO_VRRP, hopLimit: CARP_TTL, trafficClass: tos }, msg);
}

/** Checks and decodes an advertisement (the whole IP payload). Never throws. */
export function decodeVrrp(bytes: Uint8Array, ctx: VrrpDecodeContext): VrrpDecodeResult {
  const fail = (error: VrrpError, detail: string): VrrpDecodeResult => ({ ok: false, error, detail });
  const src = addressBytes(ctx.src);
  const dst = addressBytes(ctx.dst);
  if (!src || !dst || src.length !== dst.length) return fail('badaddrs', 'IP source/destination missing or of different families');
  const family: 4 | 6 = src.length === 4 ? 4 : 6;
  if (ctx.ttl !== undefined && ctx.ttl !== CARP_TTL) return fail('badttl', `TTL ${ctx.ttl}, must be ${CARP_TTL}`);
  if (bytes.length < VRRP_FIXED_LEN) return fail('badlen', `${bytes.length} bytes, VRRP needs at least ${VRRP_FIXED_LEN}`);
  const b = bufferView(bytes);
  const version = b[0] >> 4;
  const type = b[0] & 0x0f;
  if (version !== VRRP_VERSION) return fail('badver', `VRRP version ${version}`);
  if (type !== VRRP_TYPE_ADVERTISEMENT) return fail('badver', `VRRP type ${type}`);
  const count = b[3];
  const need = vrrpLength(family, count);
  if (b.length < need) return fail('badlen', `${b.length} bytes, ${count} IPv${family} addresses need ${need}`);
  let messageOnlyChecksum = false;
  if (internetChecksum(b, 0, b.length, pseudoHeaderSum(src, dst, IPPROTO_VRRP, b.length)) !== 0) {
    messageOnlyChecksum = family === 4 && ctx.acceptMessageOnlyChecksum === true && internetChecksum(b, 0, b.length) === 0;
    if (!messageOnlyChecksum) return fail('badsum', 'VRRP checksum mismatch');
  }
  const vrid = b[1];
  const wanted = ctx.vrid === undefined || (typeof ctx.vrid === 'function' ? ctx.vrid(vrid) : ctx.vrid === vrid);
  if (!wanted) return fail('badvhid', `VRID ${vrid} is not configured here`);
  const alen = family === 4 ? 4 : 16;
  const addresses: string[] = [];
  for (let i = 0; i < count; i++) addresses.push(formatAddress(b.subarray(VRRP_FIXED_LEN + i * alen, VRRP_FIXED_LEN + (i + 1) * alen)));
  return {
    ok: true,
    advert: {
      version,
      type,
      vrid,
      priority: b[2],
      count,
      reserved: b[4] >> 4,
      maxAdvertIntervalCs: b.readUInt16BE(4) & 0x0fff,
      checksum: b.readUInt16BE(6),
      family,
      addresses,
      messageOnlyChecksum,
    },
  };
}
