/**
 * Interface-address requests that bind VIPs to a vhid (freebsd-kernel-abi.md §4). Same layout in
 * 13, 14 and 15 on amd64 and arm64; sizes asserted against freebsd-abi.json by the layout test.
 *
 *  struct in_aliasreq (68 B)                 SIOCAIFADDR = 0x8044692b (T3: not 0x8040691a)
 *  +0  char ifra_name[16]
 *  +16 sockaddr_in ifra_addr        sin_len 16 (T1)
 *  +32 sockaddr_in ifra_broadaddr   all zero when unset
 *  +48 sockaddr_in ifra_mask        always sent: without it the kernel guesses a classful mask
 *  +64 i32 ifra_vhid                0 = no CARP
 *
 *  struct in6_aliasreq (136 B)               SIOCAIFADDR_IN6 = 0x8088691b
 *  +0   char ifra_name[16]
 *  +16  sockaddr_in6 ifra_addr       sin6_len 28
 *  +44  sockaddr_in6 ifra_dstaddr    zero (point-to-point only)
 *  +72  sockaddr_in6 ifra_prefixmask sin6_len 28, contiguous mask in sin6_addr
 *  +100 i32 ifra_flags (IN6_IFF_*)
 *  +104 in6_addrlifetime (8-aligned, T6): +104 i64 expire, +112 i64 preferred,
 *                                         +120 u32 vltime, +124 u32 pltime  (both 0xffffffff, T7)
 *  +128 i32 ifra_vhid
 *  +132 4 bytes tail padding
 *
 *  struct in6_ifreq (288 B)                  SIOCDIFADDR_IN6 = 0x81206919
 *  +0  char ifr_name[16]
 *  +16 union (272 B, sized by icmp6_ifstat): sockaddr_in6 ifru_addr at +16, the rest zero
 */
import {
  AF_INET,
  ND6_INFINITE_LIFETIME,
  SIZEOF,
  decodeSockaddrIn,
  decodeSockaddrIn6,
  encodeSockaddrIn,
  encodeSockaddrIn6,
  int32,
  ipText,
  maskPrefix,
  need,
  prefixMask,
  readIfName,
  writeIfName,
} from './layout.js';

export interface InAliasreq {
  name: string;
  address: string;
  /** Always encoded as ifra_mask (§4). */
  prefix: number;
  broadcast?: string;
  vhid: number;
}

export function encodeInAliasreq(v: InAliasreq, buf: Buffer, off: number): void {
  need(buf, off, SIZEOF.in_aliasreq, 'in_aliasreq');
  const mask = prefixMask(4, v.prefix);
  buf.fill(0, off, off + SIZEOF.in_aliasreq);
  writeIfName(v.name, buf, off);
  encodeSockaddrIn({ address: v.address }, buf, off + 16);
  if (v.broadcast !== undefined) encodeSockaddrIn({ address: v.broadcast }, buf, off + 32);
  // The mask's sockaddr_in written from its bytes (as encodeSockaddrIn would from their text).
  buf[off + 48] = SIZEOF.sockaddr_in;
  buf[off + 49] = AF_INET;
  mask.copy(buf, off + 52);
  buf.writeInt32LE(int32('ifra_vhid', v.vhid), off + 64);
}

export function inAliasreqBytes(v: InAliasreq): Buffer {
  const b = Buffer.alloc(SIZEOF.in_aliasreq);
  encodeInAliasreq(v, b, 0);
  return b;
}

export function decodeInAliasreq(buf: Buffer, off: number): InAliasreq {
  need(buf, off, SIZEOF.in_aliasreq, 'in_aliasreq');
  const addr = decodeSockaddrIn(buf, off + 16);
  if (!addr) throw new RangeError('in_aliasreq: ifra_addr is unset');
  // A mask slot carries only the bytes the kernel reads (sin_addr); its family is not checked.
  const maskLen = buf[off + 48];
  if (maskLen !== 0 && maskLen !== SIZEOF.sockaddr_in) throw new RangeError(`in_aliasreq: bad ifra_mask sin_len ${maskLen}`);
  const broadcast = decodeSockaddrIn(buf, off + 32)?.address;
  return {
    name: readIfName(buf, off),
    address: addr.address,
    prefix: maskPrefix(buf.subarray(off + 52, off + 56)),
    ...(broadcast !== undefined ? { broadcast } : {}),
    vhid: buf.readInt32LE(off + 64),
  };
}

export interface In6Aliasreq {
  name: string;
  address: string;
  /** Link-local addresses need the interface index here. */
  scopeId?: number;
  prefix: number;
  /** IN6_IFF_* (0 by default). */
  flags?: number;
  vhid: number;
}

export function encodeIn6Aliasreq(v: In6Aliasreq, buf: Buffer, off: number): void {
  need(buf, off, SIZEOF.in6_aliasreq, 'in6_aliasreq');
  const mask = prefixMask(6, v.prefix);
  buf.fill(0, off, off + SIZEOF.in6_aliasreq);
  writeIfName(v.name, buf, off);
  encodeSockaddrIn6({ address: v.address, scopeId: v.scopeId }, buf, off + 16);
  encodeSockaddrIn6({ address: ipText(mask) }, buf, off + 72);
  buf.writeInt32LE(int32('ifra_flags', v.flags ?? 0), off + 100);
  // T7: vltime 0 makes the kernel report success and add nothing. expire/preferred are ignored.
  buf.writeUInt32LE(ND6_INFINITE_LIFETIME, off + 120);
  buf.writeUInt32LE(ND6_INFINITE_LIFETIME, off + 124);
  buf.writeInt32LE(int32('ifra_vhid', v.vhid), off + 128);
}

export function in6AliasreqBytes(v: In6Aliasreq): Buffer {
  const b = Buffer.alloc(SIZEOF.in6_aliasreq);
  encodeIn6Aliasreq(v, b, 0);
  return b;
}

export interface In6AliasreqDecoded extends In6Aliasreq {
  vltime: number;
  pltime: number;
}

export function decodeIn6Aliasreq(buf: Buffer, off: number): In6AliasreqDecoded {
  need(buf, off, SIZEOF.in6_aliasreq, 'in6_aliasreq');
  const addr = decodeSockaddrIn6(buf, off + 16);
  if (!addr) throw new RangeError('in6_aliasreq: ifra_addr is unset');
  const maskLen = buf[off + 72];
  if (maskLen !== SIZEOF.sockaddr_in6) throw new RangeError(`in6_aliasreq: bad ifra_prefixmask sin6_len ${maskLen}`);
  return {
    name: readIfName(buf, off),
    address: addr.address,
    scopeId: addr.scopeId,
    prefix: maskPrefix(buf.subarray(off + 80, off + 96)),
    flags: buf.readInt32LE(off + 100),
    vltime: buf.readUInt32LE(off + 120),
    pltime: buf.readUInt32LE(off + 124),
    vhid: buf.readInt32LE(off + 128),
  };
}

export interface In6Ifreq {
  name: string;
  address: string;
  scopeId?: number;
}

export function encodeIn6Ifreq(v: In6Ifreq, buf: Buffer, off: number): void {
  need(buf, off, SIZEOF.in6_ifreq, 'in6_ifreq');
  buf.fill(0, off, off + SIZEOF.in6_ifreq);
  writeIfName(v.name, buf, off);
  encodeSockaddrIn6({ address: v.address, scopeId: v.scopeId }, buf, off + 16);
}

export function in6IfreqBytes(v: In6Ifreq): Buffer {
  const b = Buffer.alloc(SIZEOF.in6_ifreq);
  encodeIn6Ifreq(v, b, 0);
  return b;
}

export function decodeIn6Ifreq(buf: Buffer, off: number): In6Ifreq {
  need(buf, off, SIZEOF.in6_ifreq, 'in6_ifreq');
  const addr = decodeSockaddrIn6(buf, off + 16);
  if (!addr) throw new RangeError('in6_ifreq: ifru_addr is unset');
  return { name: readIfName(buf, off), address: addr.address, scopeId: addr.scopeId };
}
