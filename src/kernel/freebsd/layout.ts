/**
 * FreeBSD kernel structures carpd passes to ioctl(2), as bytes. amd64 and arm64 are both LP64
 * little-endian and give identical layouts in 13, 14 and 15 (freebsd-kernel-abi.md §0, §1, §11);
 * every size and offset below is held to freebsd-abi.json by test/freebsd-layout.test.ts.
 * struct carpreq and the CARP key are in layout-carp.ts, the address requests (in_aliasreq,
 * in6_aliasreq, in6_ifreq) in layout-addr.ts, pfsyncreq and the statistics in layout-pfsync.ts;
 * this file holds the constants, ioctl numbers, the ABI table and the shared primitives.
 *
 *  struct sockaddr_in (16 B)                  struct sockaddr_in6 (28 B)
 *  +0  u8  sin_len = 16      (T1)             +0  u8  sin6_len = 28       (T1)
 *  +1  u8  sin_family = 2                     +1  u8  sin6_family = 28    (T2)
 *  +2  u16 sin_port   (network order)         +2  u16 sin6_port   (network order)
 *  +4  u8  sin_addr[4]                        +4  u32 sin6_flowinfo (network order)
 *  +8  u8  sin_zero[8]                        +8  u8  sin6_addr[16]
 *                                             +24 u32 sin6_scope_id (host order)
 *
 *  struct ifreq (32 B): the union at +16 holds one member, chosen by the ioctl
 *  +0  char ifr_name[16]           NUL-terminated: at most 15 bytes of name
 *  +16 u64  ifr_data               pointer; SIOCSVH/SIOCGVH -> carpreq, SIOC*PFSYNC -> pfsyncreq
 *  +16 sockaddr ifr_addr (16)      SIOCDIFADDR
 *  +16 i16  ifr_flags, +18 i16 ifr_flagshigh                     SIOCGIFFLAGS/SIOCSIFFLAGS
 *  +16 u32  ifr_cap_nv.buf_length, +20 u32 .length, +24 u64 .buffer (14+: SIOC*PFSYNCNV, §5.3)
 */
import { canonicalIp, ipBytes } from '../../wire/address.js';
import { CARP_COUNTERS, type CarpState } from '../backend.js';

export type AbiVersion = 13 | 14 | 15;
export const ABI_VERSIONS: readonly AbiVersion[] = [13, 14, 15];
const ALL: readonly AbiVersion[] = ABI_VERSIONS;
const V14: readonly AbiVersion[] = [14, 15];

// §1 platform constants.
export const AF_UNSPEC = 0;
export const AF_INET = 2;
export const AF_INET6 = 28; // T2: not Linux's 10
export const AF_NETLINK = 38; // 14+ only
export const SOCK_DGRAM = 2;
export const SOCK_RAW = 3;
export const SOCK_CLOEXEC = 0x10000000;
export const SOCK_NONBLOCK = 0x20000000;
export const NETLINK_GENERIC = 16;
export const IFNAMSIZ = 16;
export const IFF_UP = 0x1;
export const IFF_BROADCAST = 0x2;
export const IFF_LOOPBACK = 0x8;
export const IFF_RUNNING = 0x40;
export const IFF_MULTICAST = 0x8000;
export const IN6_IFF_NODAD = 0x20;
export const ND6_INFINITE_LIFETIME = 0xffffffff; // netinet6/nd6.h; T7
export const IFR_CAP_NV_MAXBUFSIZE = 2097152; // §5.3: ifconfig's pfsync GET buffer
// §3.1 CARP.
export const CARP_KEY_LEN = 20;
export const CARP_MAXVHID = 255;
export const CARP_MAXSKEW = 240;
export const CARP_STATES: readonly CarpState[] = ['INIT', 'BACKUP', 'MASTER']; // kernel enum order
export const CARP_STATE = { INIT: 0, BACKUP: 1, MASTER: 2 } as const;
export const INADDR_CARP_GROUP = '224.0.0.18';
export const IN6ADDR_CARP_GROUP = 'ff02::12';
// §5.2: exported by the 14+ header, kernel-private with the same values in 13.
export const PFSYNCF_OK = 1;
export const PFSYNCF_DEFER = 2;
export const INADDR_PFSYNC_GROUP = '224.0.0.240';

/** carpr_state / CARP_NL_STATE number to its name; undefined outside 0..2. */
export function carpStateName(n: number): CarpState | undefined {
  return Number.isInteger(n) ? CARP_STATES[n] : undefined;
}

// §1 ioctl encoding: dir | (size & IOCPARM_MASK) << 16 | group << 8 | num.
export const IOC_VOID = 0x20000000;
export const IOC_OUT = 0x40000000;
export const IOC_IN = 0x80000000;
export const IOC_INOUT = 0xc0000000;
export const IOCPARM_MASK = 0x1fff;

/** _IO/_IOR/_IOW/_IOWR as an unsigned 32-bit number (never a sign-extended int32, T4). */
export function ioc(dir: number, group: string | number, num: number, size: number): number {
  const g = typeof group === 'string' ? group.charCodeAt(0) : group;
  return (dir | ((size & IOCPARM_MASK) << 16) | ((g & 0xff) << 8) | (num & 0xff)) >>> 0;
}

export const SIZEOF = {
  sockaddr_in: 16,
  sockaddr_in6: 28,
  ifreq: 32,
  carpreq: 40,
  in_aliasreq: 68,
  in6_aliasreq: 136,
  in6_ifreq: 288,
  pfsyncreq: 28,
  carpstats: 128,
} as const;

// §3.2, §4, §5.2, §5.3. The CARP and pfsync requests encode sizeof(struct ifreq), not the size
// of the struct ifr_data points at (T5); SIOCAIFADDR is the 68-byte form with ifra_vhid (T3).
export const SIOCSIFFLAGS = ioc(IOC_IN, 'i', 16, SIZEOF.ifreq);
export const SIOCGIFFLAGS = ioc(IOC_INOUT, 'i', 17, SIZEOF.ifreq);
export const SIOCDIFADDR = ioc(IOC_IN, 'i', 25, SIZEOF.ifreq);
export const SIOCAIFADDR = ioc(IOC_IN, 'i', 43, SIZEOF.in_aliasreq);
export const SIOCDIFADDR_IN6 = ioc(IOC_IN, 'i', 25, SIZEOF.in6_ifreq);
export const SIOCAIFADDR_IN6 = ioc(IOC_IN, 'i', 27, SIZEOF.in6_aliasreq);
export const SIOCSVH = ioc(IOC_INOUT, 'i', 245, SIZEOF.ifreq);
export const SIOCGVH = ioc(IOC_INOUT, 'i', 246, SIZEOF.ifreq);
export const SIOCSETPFSYNC = ioc(IOC_IN, 'i', 247, SIZEOF.ifreq);
export const SIOCGETPFSYNC = ioc(IOC_INOUT, 'i', 248, SIZEOF.ifreq);
export const SIOCSETPFSYNCNV = ioc(IOC_IN, 'i', 249, SIZEOF.ifreq); // 14+
export const SIOCGETPFSYNCNV = ioc(IOC_INOUT, 'i', 250, SIZEOF.ifreq); // 14+

/** Every ioctl carpd issues and the versions whose headers define it. */
export const IOCTLS: Readonly<Record<string, { request: number; versions: readonly AbiVersion[] }>> = {
  SIOCSIFFLAGS: { request: SIOCSIFFLAGS, versions: ALL },
  SIOCGIFFLAGS: { request: SIOCGIFFLAGS, versions: ALL },
  SIOCDIFADDR: { request: SIOCDIFADDR, versions: ALL },
  SIOCAIFADDR: { request: SIOCAIFADDR, versions: ALL },
  SIOCDIFADDR_IN6: { request: SIOCDIFADDR_IN6, versions: ALL },
  SIOCAIFADDR_IN6: { request: SIOCAIFADDR_IN6, versions: ALL },
  SIOCSVH: { request: SIOCSVH, versions: ALL },
  SIOCGVH: { request: SIOCGVH, versions: ALL },
  SIOCSETPFSYNC: { request: SIOCSETPFSYNC, versions: ALL },
  SIOCGETPFSYNC: { request: SIOCGETPFSYNC, versions: ALL },
  SIOCSETPFSYNCNV: { request: SIOCSETPFSYNCNV, versions: V14 },
  SIOCGETPFSYNCNV: { request: SIOCGETPFSYNCNV, versions: V14 },
};

/** The name of a request in IOCTLS, for error messages ("ioctl SIOCSVH"). */
export function ioctlName(request: number | bigint): string | undefined {
  return IOCTL_NAMES.get(Number(request));
}
/** pf's status requests on /dev/pf (layout-pf.ts), named in errors; held to reference/pf-status-abi.json, not to freebsd-abi.json. */
const PF_IOCTL_NAMES: Readonly<Record<string, number>> = {
  DIOCGETSTATUS: ioc(IOC_INOUT, 'D', 21, 416),
  DIOCGETSTATUSNV: ioc(IOC_INOUT, 'D', 21, 24),
};
const IOCTL_NAMES = new Map([...Object.entries(IOCTLS), ...Object.entries(PF_IOCTL_NAMES).map(([n, r]) => [n, { request: r }] as const)].map(([name, v]) => [v.request, name]));

export function ioctlsFor(version: AbiVersion): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, v] of Object.entries(IOCTLS)) if (v.versions.includes(version)) out[name] = v.request;
  return out;
}

/** Constants as named in freebsd-abi.json (PFSYNCF_* come from `constants_from_source` in 13). */
export const ABI_CONSTANTS: Readonly<Record<string, number>> = {
  AF_UNSPEC, AF_INET, AF_INET6, SOCK_DGRAM, SOCK_RAW, SOCK_CLOEXEC, SOCK_NONBLOCK, IFNAMSIZ,
  IFF_UP, IFF_BROADCAST, IFF_LOOPBACK, IFF_RUNNING, IFF_MULTICAST, IN6_IFF_NODAD, CARP_KEY_LEN,
  CARP_MAXVHID, CARP_MAXSKEW, PFSYNCF_OK, PFSYNCF_DEFER, IOC_VOID, IOC_OUT, IOC_IN, IOC_INOUT, IOCPARM_MASK,
  CARP_MAXSTATE: CARP_STATES.length - 1,
  INADDR_CARP_GROUP: ipBytes(INADDR_CARP_GROUP).readUInt32BE(0),
  INADDR_PFSYNC_GROUP: ipBytes(INADDR_PFSYNC_GROUP).readUInt32BE(0),
};
export const ABI_CONSTANTS_14: Readonly<Record<string, number>> = { AF_NETLINK, NETLINK_GENERIC, IFR_CAP_NV_MAXBUFSIZE };

export interface FieldLayout { offset: number; size: number }
export interface StructLayout { size: number; fields: Record<string, FieldLayout> }

const f = (offset: number, size: number): FieldLayout => ({ offset, size });
const U64_COUNTERS = (names: string[]): Record<string, FieldLayout> =>
  Object.fromEntries(names.map((n, i) => [n, f(i * 8, 8)]));

/** The backend contract names the carpstats counters as the kernel does, in its order. */
export const CARPSTATS_FIELDS = CARP_COUNTERS;
export const PFSYNCSTATS_FIELDS = [
  'ipackets', 'ipackets6', 'badif', 'badttl', 'hdrops', 'badver', 'badact', 'badlen', 'badauth',
  'stale', 'badval', 'badstate', 'opackets', 'opackets6', 'onomem', 'oerrors',
] as const;
/** PFSYNC_ACT_MAX per version (§5.5); the parser derives it from the length instead. */
export const PFSYNC_ACT_MAX: Readonly<Record<AbiVersion, number>> = { 13: 13, 14: 15, 15: 17 };

/** The structs and fields carpd's encoders use, per version, with the C names of the JSON. */
export function structLayouts(version: AbiVersion): Record<string, StructLayout> {
  const am = PFSYNC_ACT_MAX[version];
  const nv: Record<string, FieldLayout> = version >= 14
    ? { 'ifr_ifru.ifru_nv.buf_length': f(16, 4), 'ifr_ifru.ifru_nv.length': f(20, 4), 'ifr_ifru.ifru_nv.buffer': f(24, 8) }
    : {};
  return {
    sockaddr_in: { size: 16, fields: { sin_len: f(0, 1), sin_family: f(1, 1), sin_port: f(2, 2), sin_addr: f(4, 4), sin_zero: f(8, 8) } },
    sockaddr_in6: {
      size: 28,
      fields: { sin6_len: f(0, 1), sin6_family: f(1, 1), sin6_port: f(2, 2), sin6_flowinfo: f(4, 4), sin6_addr: f(8, 16), sin6_scope_id: f(24, 4) },
    },
    ifreq: {
      size: 32,
      fields: { ifr_name: f(0, 16), 'ifr_ifru.ifru_data': f(16, 8), 'ifr_ifru.ifru_addr': f(16, 16), 'ifr_ifru.ifru_flags': f(16, 4), ...nv },
    },
    carpreq: {
      size: 40,
      fields: { carpr_count: f(0, 4), carpr_vhid: f(4, 4), carpr_state: f(8, 4), carpr_advskew: f(12, 4), carpr_advbase: f(16, 4), carpr_key: f(20, 20) },
    },
    in_aliasreq: { size: 68, fields: { ifra_name: f(0, 16), ifra_addr: f(16, 16), ifra_broadaddr: f(32, 16), ifra_mask: f(48, 16), ifra_vhid: f(64, 4) } },
    in6_aliasreq: {
      size: 136,
      fields: {
        ifra_name: f(0, 16), ifra_addr: f(16, 28), ifra_dstaddr: f(44, 28), ifra_prefixmask: f(72, 28), ifra_flags: f(100, 4),
        'ifra_lifetime.ia6t_expire': f(104, 8), 'ifra_lifetime.ia6t_preferred': f(112, 8),
        'ifra_lifetime.ia6t_vltime': f(120, 4), 'ifra_lifetime.ia6t_pltime': f(124, 4), ifra_vhid: f(128, 4),
      },
    },
    in6_ifreq: { size: 288, fields: { ifr_name: f(0, 16), 'ifr_ifru.ifru_addr': f(16, 28) } },
    pfsyncreq: { size: 28, fields: { pfsyncr_syncdev: f(0, 16), pfsyncr_syncpeer: f(16, 4), pfsyncr_maxupdates: f(20, 4), pfsyncr_defer: f(24, 4) } },
    carpstats: { size: 128, fields: U64_COUNTERS(CARPSTATS_FIELDS.map((n) => `carps_${n}`)) },
    pfsyncstats: {
      size: 128 + 16 * am,
      fields: { ...U64_COUNTERS(PFSYNCSTATS_FIELDS.map((n) => `pfsyncs_${n}`)), pfsyncs_iacts: f(128, 8 * am), pfsyncs_oacts: f(128 + 8 * am, 8 * am) },
    },
  };
}

// ---- primitives -------------------------------------------------------------------------------

/** Bounds check shared by every encoder and decoder: no access outside [off, off + size). */
export function need(buf: Buffer, off: number, size: number, what: string): void {
  if (!Number.isInteger(off) || off < 0 || off + size > buf.length) {
    throw new RangeError(`${what}: needs ${size} bytes at offset ${off}, buffer has ${buf.length}`);
  }
}

export function int32(what: string, v: number): number {
  if (!Number.isInteger(v) || v < -0x80000000 || v > 0x7fffffff) throw new RangeError(`${what} must be a 32-bit integer, got ${v}`);
  return v;
}

export function uint32(what: string, v: number): number {
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new RangeError(`${what} must be an unsigned 32-bit integer, got ${v}`);
  return v;
}

/**
 * An interface name into char[IFNAMSIZ]. The kernel needs the NUL, so 15 bytes at most; a longer
 * name is refused rather than cut (a cut name could address another interface).
 */
export function writeIfName(name: string, buf: Buffer, off: number, allowEmpty = false): void {
  // Written in place, without a Buffer of its own (a batch writes hundreds of names).
  const length = Buffer.byteLength(name, 'utf8');
  if (length > IFNAMSIZ - 1) throw new RangeError(`interface name "${name}" is ${length} bytes; FreeBSD allows at most ${IFNAMSIZ - 1}`);
  if (name.includes('\0')) throw new RangeError('interface name contains a NUL byte');
  if (!allowEmpty && length === 0) throw new RangeError('interface name is empty');
  buf.fill(0, off, off + IFNAMSIZ);
  buf.write(name, off, length, 'utf8');
}

export function readIfName(buf: Buffer, off: number): string {
  need(buf, off, IFNAMSIZ, 'interface name');
  const end = buf.subarray(off, off + IFNAMSIZ).indexOf(0);
  if (end < 0) throw new RangeError('interface name is not NUL-terminated within 16 bytes');
  return buf.toString('utf8', off, off + end);
}

function ipv4(text: string, what: string): Buffer {
  const ip = canonicalIp(text);
  if (ip?.family !== 4) throw new TypeError(`${what}: not an IPv4 address: ${text}`);
  return ipBytes(ip.address);
}

function ipv6(text: string, what: string): Buffer {
  const ip = canonicalIp(text);
  if (ip?.family !== 6) throw new TypeError(`${what}: not an IPv6 address: ${text}`);
  return ipBytes(ip.address);
}

/** Text of 4 or 16 network-order bytes (canonical form, RFC 5952 for IPv6). */
export function ipText(bytes: Buffer): string {
  if (bytes.length === 4) return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
  if (bytes.length !== 16) throw new RangeError(`an address has 4 or 16 bytes, not ${bytes.length}`);
  const groups = Array.from({ length: 8 }, (_, i) => bytes.readUInt16BE(i * 2).toString(16));
  return canonicalIp(groups.join(':'))!.address;
}

export function in4Bytes(text: string): Buffer {
  return ipv4(text, 'in_addr');
}

export function in6Bytes(text: string): Buffer {
  return ipv6(text, 'in6_addr');
}

/** Netmask bytes of a prefix length (contiguous, as the kernel requires for IPv6). */
export function prefixMask(family: 4 | 6, prefix: number): Buffer {
  const bits = family === 4 ? 32 : 128;
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > bits) throw new RangeError(`prefix length ${prefix} outside 0..${bits}`);
  const out = Buffer.alloc(bits / 8);
  for (let i = 0; i < prefix; i++) out[i >> 3] |= 0x80 >> (i & 7);
  return out;
}

/** Prefix length of a mask; throws on a non-contiguous mask. */
export function maskPrefix(mask: Buffer): number {
  let n = 0;
  while (n < mask.length * 8 && mask[n >> 3] & (0x80 >> (n & 7))) n++;
  for (let i = n; i < mask.length * 8; i++) if (mask[i >> 3] & (0x80 >> (i & 7))) throw new RangeError(`non-contiguous netmask ${mask.toString('hex')}`);
  return n;
}

// ---- sockaddr_in / sockaddr_in6 -------------------------------------------------------------

export interface SockaddrIn { address: string; port?: number }
export interface SockaddrIn6 { address: string; port?: number; flowinfo?: number; scopeId?: number }

export function encodeSockaddrIn(v: SockaddrIn, buf: Buffer, off: number): void {
  need(buf, off, SIZEOF.sockaddr_in, 'sockaddr_in');
  const addr = ipv4(v.address, 'sockaddr_in');
  buf.fill(0, off, off + SIZEOF.sockaddr_in);
  buf[off] = SIZEOF.sockaddr_in;
  buf[off + 1] = AF_INET;
  buf.writeUInt16BE(v.port ?? 0, off + 2);
  addr.copy(buf, off + 4);
}

/** undefined for an unset (all-zero length and family) slot; throws on any other bad header. */
export function decodeSockaddrIn(buf: Buffer, off: number): SockaddrIn | undefined {
  need(buf, off, SIZEOF.sockaddr_in, 'sockaddr_in');
  const len = buf[off];
  const family = buf[off + 1];
  if (len === 0 && family === AF_UNSPEC) return undefined;
  if (len !== SIZEOF.sockaddr_in || family !== AF_INET) throw new RangeError(`sockaddr_in: bad header (sin_len ${len}, family ${family}; want 16, ${AF_INET})`);
  return { address: ipText(buf.subarray(off + 4, off + 8)), port: buf.readUInt16BE(off + 2) };
}

export function encodeSockaddrIn6(v: SockaddrIn6, buf: Buffer, off: number): void {
  need(buf, off, SIZEOF.sockaddr_in6, 'sockaddr_in6');
  const addr = ipv6(v.address, 'sockaddr_in6');
  buf.fill(0, off, off + SIZEOF.sockaddr_in6);
  buf[off] = SIZEOF.sockaddr_in6;
  buf[off + 1] = AF_INET6;
  buf.writeUInt16BE(v.port ?? 0, off + 2);
  buf.writeUInt32BE(uint32('sin6_flowinfo', v.flowinfo ?? 0), off + 4);
  addr.copy(buf, off + 8);
  buf.writeUInt32LE(uint32('sin6_scope_id', v.scopeId ?? 0), off + 24);
}

export function decodeSockaddrIn6(buf: Buffer, off: number): SockaddrIn6 | undefined {
  need(buf, off, SIZEOF.sockaddr_in6, 'sockaddr_in6');
  const len = buf[off];
  const family = buf[off + 1];
  if (len === 0 && family === AF_UNSPEC) return undefined;
  if (len !== SIZEOF.sockaddr_in6 || family !== AF_INET6) throw new RangeError(`sockaddr_in6: bad header (sin6_len ${len}, family ${family}; want 28, ${AF_INET6})`);
  return {
    address: ipText(buf.subarray(off + 8, off + 24)),
    port: buf.readUInt16BE(off + 2),
    flowinfo: buf.readUInt32BE(off + 4),
    scopeId: buf.readUInt32LE(off + 24),
  };
}

// ---- struct ifreq ---------------------------------------------------------------------------

/** The union member carried (at most one), named after the C accessor. */
export interface IfreqUnion {
  /** ifr_data: address of a carpreq / pfsyncreq buffer (Libc.addressOf). */
  data?: bigint;
  /** ifr_addr as a sockaddr_in (SIOCDIFADDR). */
  addr?: string;
  /** ifr_flags | ifr_flagshigh << 16 (SIOCSIFFLAGS). */
  flags?: number;
  /** ifr_cap_nv (14+: SIOC*PFSYNCNV). */
  capNv?: { bufLength: number; length: number; buffer: bigint };
}
export interface Ifreq extends IfreqUnion {
  name: string;
}

export function encodeIfreq(v: Ifreq, buf: Buffer, off: number): void {
  need(buf, off, SIZEOF.ifreq, 'ifreq');
  const members = [v.data, v.addr, v.flags, v.capNv].filter((x) => x !== undefined).length;
  if (members > 1) throw new TypeError('ifreq: data, addr, flags and capNv share one union; set at most one');
  buf.fill(0, off, off + SIZEOF.ifreq);
  writeIfName(v.name, buf, off);
  const u = off + 16;
  if (v.data !== undefined) buf.writeBigUInt64LE(BigInt.asUintN(64, v.data), u);
  else if (v.addr !== undefined) encodeSockaddrIn({ address: v.addr }, buf, u);
  else if (v.flags !== undefined) {
    // SIOCSIFFLAGS takes (ifr_flags & 0xffff) | (ifr_flagshigh << 16).
    const fl = uint32('ifr_flags', v.flags);
    buf.writeUInt16LE(fl & 0xffff, u);
    buf.writeUInt16LE(fl >>> 16, u + 2);
  } else if (v.capNv !== undefined) {
    buf.writeUInt32LE(uint32('ifr_cap_nv.buf_length', v.capNv.bufLength), u);
    buf.writeUInt32LE(uint32('ifr_cap_nv.length', v.capNv.length), u + 4);
    buf.writeBigUInt64LE(BigInt.asUintN(64, v.capNv.buffer), u + 8);
  }
}

export function ifreqBytes(v: Ifreq): Buffer {
  const b = Buffer.alloc(SIZEOF.ifreq);
  encodeIfreq(v, b, 0);
  return b;
}

export function decodeIfreqName(buf: Buffer, off: number): string {
  need(buf, off, SIZEOF.ifreq, 'ifreq');
  return readIfName(buf, off);
}

export function decodeIfreqFlags(buf: Buffer, off: number): number {
  need(buf, off, SIZEOF.ifreq, 'ifreq');
  return (buf.readUInt16LE(off + 16) | (buf.readUInt16LE(off + 18) << 16)) >>> 0;
}

export function decodeIfreqData(buf: Buffer, off: number): bigint {
  need(buf, off, SIZEOF.ifreq, 'ifreq');
  return buf.readBigUInt64LE(off + 16);
}

export function decodeIfreqCapNv(buf: Buffer, off: number): { bufLength: number; length: number; buffer: bigint } {
  need(buf, off, SIZEOF.ifreq, 'ifreq');
  return { bufLength: buf.readUInt32LE(off + 16), length: buf.readUInt32LE(off + 20), buffer: buf.readBigUInt64LE(off + 24) };
}

export function decodeIfreqAddr(buf: Buffer, off: number): string | undefined {
  need(buf, off, SIZEOF.ifreq, 'ifreq');
  return decodeSockaddrIn(buf, off + 16)?.address;
}
