/**
 * The CARP version 2 advertisement: header codec, HMAC-SHA1 and checksum, byte-compatible with
 * FreeBSD carp(4), OpenBSD and ucarp (carp-protocol.md §2–§4).
 *
 * ```
 *  CARP header, 36 bytes (the whole payload of IP protocol 112)
 *   0               1               2               3
 *  +-------+-------+---------------+---------------+---------------+
 *  |ver=2  |type=1 | vhid 1..255   | advskew       | authlen = 7   |   0
 *  +-------+-------+---------------+---------------+---------------+
 *  | demote (0)    | advbase (s)   | checksum (RFC 1071, 36 bytes) |   4
 *  +---------------+---------------+-------------------------------+
 *  | counter, 64 bits big-endian (high word first)                 |   8
 *  |                                                               |  12
 *  +---------------------------------------------------------------+
 *  | HMAC-SHA1 digest (20 bytes)                                   |  16
 *  |   key     = passphrase bytes, NUL-padded to 20                |
 *  |   message = 02 01 vhid | sorted IPv4 VIPs | sorted IPv6 VIPs  |
 *  |             | counter (8 bytes as on the wire)                |  ..
 *  +---------------------------------------------------------------+  36
 * ```
 *
 * Sending (§2.1): fill the fields, choose the counter (§5, advert-counter.ts), compute the
 * digest (§4.2), then the checksum last with its field zeroed (§3: no pseudo-header).
 * Receiving: drop reasons in FreeBSD 14's carp_input order (length, checksum, vhid, version,
 * TTL, HMAC), each named like its carpstats counter (counters.ts).
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import {
  CARP_GROUP_V4,
  CARP_GROUP_V6,
  CARP_TTL,
  IPPROTO_CARP,
  TOS_FREEBSD,
  addressBytes,
  bufferView,
  checkInt,
  checkRoom,
  decodeIpv4,
  ipv4Packet,
  ipv6Packet,
} from './ip.js';
import type { AddressInput } from './ip.js';
import { internetChecksum } from './checksum.js';
import { readCounter, writeCounter } from './advert-counter.js';
import type { CarpDropReason } from './counters.js';

export const CARP_HEADER_LEN = 36;
export const CARP_VERSION = 2;
export const CARP_TYPE_ADVERTISEMENT = 1;
/** (8-byte counter + 20-byte digest) / 4. */
export const CARP_AUTHLEN = 7;
/** CARP_KEY_LEN: the key buffer; ifconfig's strlcpy keeps at most 19 characters (§4.1). */
export const CARP_KEY_LEN = 20;
export const CARP_MAX_PASSPHRASE = 19;
/** OpenBSD's bow-out (§7.6): every BSD/ucarp backup takes over at once on receipt. */
export const CARP_BOWOUT = Object.freeze({ advbaseSec: 255, advskew: 255 });

/** A passphrase (see carpKey) or the raw key bytes (at most 20). */
export type CarpKeyInput = string | Uint8Array;

/** What a master sends. */
export interface CarpAdvert {
  vhid: number;
  /** 0..254 as configured (already demoted, §6.4); 255 only for a bow-out. */
  advskew: number;
  advbaseSec: number;
  counter: bigint;
  /** Header byte 4: 0 for FreeBSD/ucarp; OpenBSD's demote count (§2, trap 3). Default 0. */
  demote?: number;
  key: CarpKeyInput;
  /** Every VIP of the vhid, both families, any order ("addr" or "addr/prefix"; §4.2). */
  addresses: readonly AddressInput[];
}

/** A received header, fields as on the wire. */
export interface CarpHeader {
  version: number;
  type: number;
  vhid: number;
  advskew: number;
  authlen: number;
  demote: number;
  advbaseSec: number;
  checksum: number;
  counter: bigint;
  digest: Buffer;
}

/** The receiver's configuration of one vhid. */
export interface CarpVhidConfig {
  key: CarpKeyInput;
  /** The receiver's VIP set for that vhid: it must equal the sender's or the digest differs (trap 5). */
  addresses: readonly AddressInput[];
  /** Require TTL 255 (multicast mode, the default); false for a unicast-mode vhid (§8). */
  checkTtl?: boolean;
}

/**
 * Either one vhid's configuration (packets naming another vhid than `vhid`, when given, are
 * badvhid) or a lookup by the packet's vhid (undefined = badvhid). `ttl` is the TTL / hop limit
 * the packet arrived with; when omitted the TTL is not checked.
 */
export type CarpDecodeContext =
  | (CarpVhidConfig & { vhid?: number; ttl?: number })
  | { lookup: (vhid: number) => CarpVhidConfig | undefined; ttl?: number };

export type CarpError = Extract<CarpDropReason, 'badlen' | 'badsum' | 'badvhid' | 'badver' | 'badttl' | 'badauth'>;
export type CarpDecodeResult = { ok: true; advert: CarpHeader } | { ok: false; error: CarpError; detail: string };

/**
 * The key bytes for a passphrase, as `ifconfig ... pass` makes them (§4.1): the UTF-8 bytes up
 * to the first NUL, cut to 19 bytes (20 with allowFullLength, as netlink can carry). HMAC pads
 * the key with zeros, so the NUL padding to 20 bytes needs no explicit bytes.
 */
export function carpKey(passphrase: string, opts: { allowFullLength?: boolean } = {}): { key: Buffer; truncated: boolean } {
  let bytes = Buffer.from(passphrase, 'utf8');
  const nul = bytes.indexOf(0);
  if (nul >= 0) bytes = bytes.subarray(0, nul);
  const max = opts.allowFullLength ? CARP_KEY_LEN : CARP_MAX_PASSPHRASE;
  return { key: Buffer.from(bytes.subarray(0, max)), truncated: bytes.length > max };
}

/** IN6_IS_SCOPE_EMBED: link-local unicast, link- and interface-local multicast (§4.2 step 6). */
function isScopeEmbedded(a: Uint8Array): boolean {
  return (a[0] === 0xfe && (a[1] & 0xc0) === 0x80) || (a[0] === 0xff && ((a[1] & 0x0f) === 0x01 || (a[1] & 0x0f) === 0x02));
}

/**
 * The address part of the HMAC message (§4.2 steps 5–6): IPv4 ascending, then IPv6 ascending
 * by bytes with scope bytes 2–3 cleared, each distinct address once. The kernel's selection loop
 * compares strictly against all-zeros and all-ones bounds, so those two are never hashed.
 * Returns an error text for an address that is not one.
 */
function addressBlockOrError(addresses: readonly AddressInput[]): Buffer | string {
  const v4: Buffer[] = [];
  const v6: Buffer[] = [];
  for (const a of addresses) {
    const b = addressBytes(a);
    if (!b) return `not an IPv4/IPv6 address: ${String(a)}`;
    if (b.length === 16 && isScopeEmbedded(b)) b[2] = b[3] = 0;
    if (b.every((x) => x === 0) || b.every((x) => x === 0xff)) continue;
    (b.length === 4 ? v4 : v6).push(b);
  }
  const sorted = (list: Buffer[]): Buffer[] =>
    list.sort(Buffer.compare).filter((b, i, all) => i === 0 || !b.equals(all[i - 1]));
  return Buffer.concat([...sorted(v4), ...sorted(v6)]);
}

function keyOrError(key: CarpKeyInput): Buffer | string {
  if (typeof key === 'string') return carpKey(key).key;
  if (key.length > CARP_KEY_LEN) return `key is ${key.length} bytes, at most ${CARP_KEY_LEN}`;
  return Buffer.from(key);
}

/** The sorted, de-duplicated address bytes hashed for a vhid (§4.2). Throws on a non-address. */
export function carpHmacAddresses(addresses: readonly AddressInput[]): Buffer {
  const block = addressBlockOrError(addresses);
  if (typeof block === 'string') throw new TypeError(block);
  return block;
}

/** The HMAC message: 02 01 vhid ‖ address bytes ‖ counter (§4.2, the "message" column of §13). */
export function carpHmacMessage(vhid: number, addresses: readonly AddressInput[], counter: bigint): Buffer {
  checkInt(vhid, 0, 255, 'vhid');
  const block = carpHmacAddresses(addresses);
  const counterBytes = Buffer.alloc(8);
  writeCounter(counterBytes, 0, counter);
  return Buffer.concat([Buffer.from([CARP_VERSION, CARP_TYPE_ADVERTISEMENT, vhid]), block, counterBytes]);
}

function hmac(key: Buffer, vhid: number, block: Buffer, counterBytes: Uint8Array): Buffer {
  return createHmac('sha1', key).update(Buffer.from([CARP_VERSION, CARP_TYPE_ADVERTISEMENT, vhid])).update(block).update(counterBytes).digest();
}

/** The 20-byte digest for a vhid, its VIP set and a counter (§4.2). Throws on bad input. */
export function carpDigest(key: CarpKeyInput, vhid: number, addresses: readonly AddressInput[], counter: bigint): Buffer {
  const k = keyOrError(key);
  if (typeof k === 'string') throw new RangeError(k);
  checkInt(vhid, 0, 255, 'vhid');
  const counterBytes = Buffer.alloc(8);
  writeCounter(counterBytes, 0, counter);
  return hmac(k, vhid, carpHmacAddresses(addresses), counterBytes);
}

/** Writes the 36-byte advertisement at `offset` and returns 36. Throws on out-of-range input. */
export function encodeCarp(adv: CarpAdvert, buf: Uint8Array, offset = 0): number {
  checkRoom(buf, offset, CARP_HEADER_LEN, 'CARP header');
  checkInt(adv.vhid, 1, 255, 'vhid');
  checkInt(adv.advskew, 0, 255, 'advskew');
  checkInt(adv.advbaseSec, 1, 255, 'advbaseSec');
  checkInt(adv.demote ?? 0, 0, 255, 'demote');
  const digest = carpDigest(adv.key, adv.vhid, adv.addresses, adv.counter);
  const b = bufferView(buf);
  b[offset] = (CARP_VERSION << 4) | CARP_TYPE_ADVERTISEMENT;
  b[offset + 1] = adv.vhid;
  b[offset + 2] = adv.advskew;
  b[offset + 3] = CARP_AUTHLEN;
  b[offset + 4] = adv.demote ?? 0;
  b[offset + 5] = adv.advbaseSec;
  b.writeUInt16BE(0, offset + 6);
  writeCounter(b, offset + 8, adv.counter);
  digest.copy(b, offset + 16);
  b.writeUInt16BE(internetChecksum(b, offset, offset + CARP_HEADER_LEN), offset + 6);
  return CARP_HEADER_LEN;
}

/** The 36-byte advertisement as a new buffer. */
export function carpBytes(adv: CarpAdvert): Buffer {
  const out = Buffer.alloc(CARP_HEADER_LEN);
  encodeCarp(adv, out, 0);
  return out;
}

/**
 * Checks and decodes a CARP payload (bytes beyond 36 are ignored, §2). Never throws: every
 * refusal is an error kind named like its carpstats counter, with a detail text for logs.
 */
export function decodeCarp(bytes: Uint8Array, ctx: CarpDecodeContext): CarpDecodeResult {
  const fail = (error: CarpError, detail: string): CarpDecodeResult => ({ ok: false, error, detail });
  if (bytes.length < CARP_HEADER_LEN) return fail('badlen', `${bytes.length} bytes, a CARP header needs ${CARP_HEADER_LEN}`);
  const b = bufferView(bytes);
  if (internetChecksum(b, 0, CARP_HEADER_LEN) !== 0) return fail('badsum', 'CARP checksum mismatch');
  const vhid = b[1];
  const cfg = 'lookup' in ctx ? ctx.lookup(vhid) : ctx.vhid === undefined || ctx.vhid === vhid ? ctx : undefined;
  if (!cfg) return fail('badvhid', `vhid ${vhid} is not configured here`);
  const version = b[0] >> 4;
  if (version !== CARP_VERSION) return fail('badver', `CARP version ${version}`);
  if (ctx.ttl !== undefined && cfg.checkTtl !== false && ctx.ttl !== CARP_TTL) return fail('badttl', `TTL ${ctx.ttl}, must be ${CARP_TTL}`);
  const key = keyOrError(cfg.key);
  if (typeof key === 'string') return fail('badauth', `vhid ${vhid} configuration: ${key}`);
  const block = addressBlockOrError(cfg.addresses);
  if (typeof block === 'string') return fail('badauth', `vhid ${vhid} configuration: ${block}`);
  const digest = b.subarray(16, 36);
  if (!timingSafeEqual(hmac(key, vhid, block, b.subarray(8, 16)), digest)) {
    return fail('badauth', `vhid ${vhid}: digest mismatch (different password or VIP set)`);
  }
  return {
    ok: true,
    advert: {
      version,
      type: b[0] & 0x0f,
      vhid,
      advskew: b[2],
      authlen: b[3],
      demote: b[4],
      advbaseSec: b[5],
      checksum: b.readUInt16BE(6),
      counter: readCounter(b, 8),
      digest: Buffer.from(digest),
    },
  };
}

/** IP framing for an advertisement (§1). */
export interface CarpIpOptions {
  src: AddressInput;
  /** Default the group (224.0.0.18 / ff02::12); the peer in unicast mode (§8). */
  dst?: AddressInput;
  /** IPv4 TOS / IPv6 traffic class; default TOS_FREEBSD (0xe0); ucarp sends TOS_UCARP. */
  tos?: number;
  /** IPv4 identification; default 0. */
  id?: number;
}

/** IPv4 header (TTL 255, DF, proto 112) + advertisement: 56 bytes. */
export function carpIpv4Packet(adv: CarpAdvert, ip: CarpIpOptions): Buffer {
  const header = { src: ip.src, dst: ip.dst ?? CARP_GROUP_V4, proto: IPPROTO_CARP, ttl: CARP_TTL, tos: ip.tos ?? TOS_FREEBSD, id: ip.id ?? 0 };
  return ipv4Packet(header, carpBytes(adv));
}

/** IPv6 header (hop limit 255, next header 112) + advertisement: 76 bytes. */
export function carpIpv6Packet(adv: CarpAdvert, ip: CarpIpOptions): Buffer {
  const header = { src: ip.src, dst: ip.dst ?? CARP_GROUP_V6, nextHeader: IPPROTO_CARP, hopLimit: CARP_TTL, trafficClass: ip.tos ?? TOS_FREEBSD };
  return ipv6Packet(header, carpBytes(adv));
}

export type CarpIpv4DecodeResult =
  | { ok: true; advert: CarpHeader; ip: { src: string; dst: string; ttl: number } }
  | { ok: false; error: CarpError | 'hdrops'; detail: string };

/**
 * Decodes what a Linux raw IPv4 socket for protocol 112 reads: IP header + CARP. The TTL is
 * taken from the header (any `ttl` in ctx is ignored); IP framing faults are `hdrops`. Never throws.
 */
export function decodeCarpIpv4(bytes: Uint8Array, ctx: CarpDecodeContext): CarpIpv4DecodeResult {
  const ip = decodeIpv4(bytes);
  if (!ip.ok) return { ok: false, error: 'hdrops', detail: ip.detail };
  const p = ip.packet;
  if (p.proto !== IPPROTO_CARP) return { ok: false, error: 'hdrops', detail: `IP protocol ${p.proto}, not ${IPPROTO_CARP}` };
  const r = decodeCarp(p.payload, { ...ctx, ttl: p.ttl });
  return r.ok ? { ok: true, advert: r.advert, ip: { src: p.src, dst: p.dst, ttl: p.ttl } } : r;
}
