/**
 * pfsync's legacy request and the CARP/pfsync statistics read through sysctl
 * (freebsd-kernel-abi.md §3.1, §5.2, §5.5). Sizes asserted against freebsd-abi.json.
 *
 *  struct pfsyncreq (28 B)     ifr_data of SIOCSETPFSYNC 0x802069f7 / SIOCGETPFSYNC 0xc02069f8
 *  +0  char pfsyncr_syncdev[16]   "" detaches
 *  +16 u8   pfsyncr_syncpeer[4]   in_addr; 0 = multicast 224.0.0.240
 *  +20 i32  pfsyncr_maxupdates    0..255
 *  +24 i32  pfsyncr_defer         13: boolean; 14+: PFSYNCF_OK (1) | PFSYNCF_DEFER (2)  (T12)
 *
 *  struct carpstats (128 B, sysctl net.inet.carp.stats)
 *  +0 .. +120  16 x u64: ipackets ipackets6 badif badttl hdrops badsum badver badlen badauth
 *                        badvhid badaddrs opackets opackets6 onomem ostates preempt
 *
 *  struct pfsyncstats (128 + 16 x ACT_MAX B, sysctl net.pfsync.stats; 336 / 368 / 400 in 13 / 14 / 15)
 *  +0 .. +120  16 x u64: ipackets ipackets6 badif badttl hdrops badver badact badlen badauth
 *                        stale badval badstate opackets opackets6 onomem oerrors
 *  +128                  u64 iacts[ACT_MAX]
 *  +128 + 8 x ACT_MAX    u64 oacts[ACT_MAX]        ACT_MAX = (len - 128) / 16 (T15)
 */
import {
  type AbiVersion,
  CARPSTATS_FIELDS,
  INADDR_PFSYNC_GROUP,
  PFSYNCF_DEFER,
  PFSYNCF_OK,
  PFSYNCSTATS_FIELDS,
  SIZEOF,
  in4Bytes,
  int32,
  ipText,
  need,
  readIfName,
  writeIfName,
} from './layout.js';

export interface PfsyncReq {
  /** "" detaches pfsync from any interface. */
  syncdev: string;
  /** IPv4 unicast peer; undefined = the multicast group 224.0.0.240. */
  syncpeer?: string;
  maxupdates: number;
  defer: boolean;
}

export interface PfsyncReqDecoded extends PfsyncReq {
  /** pfsyncr_defer as the kernel returned it. */
  rawDefer: number;
  /** PFSYNCF_OK: known on 14+ only (13 returns defer as 0/1 and nothing else). */
  bulkUpdateDone?: boolean;
}

/**
 * defer is written as PFSYNCF_DEFER (2) or 0: 13 takes any non-zero value as "on", 14+ honours
 * only bit 2, so 2 means the same on every version (§5.2).
 */
export function encodePfsyncreq(v: PfsyncReq, buf: Buffer, off: number): void {
  need(buf, off, SIZEOF.pfsyncreq, 'pfsyncreq');
  const peer = v.syncpeer === undefined ? Buffer.alloc(4) : in4Bytes(v.syncpeer);
  buf.fill(0, off, off + SIZEOF.pfsyncreq);
  writeIfName(v.syncdev, buf, off, true);
  peer.copy(buf, off + 16);
  buf.writeInt32LE(int32('pfsyncr_maxupdates', v.maxupdates), off + 20);
  buf.writeInt32LE(v.defer ? PFSYNCF_DEFER : 0, off + 24);
}

export function pfsyncreqBytes(v: PfsyncReq): Buffer {
  const b = Buffer.alloc(SIZEOF.pfsyncreq);
  encodePfsyncreq(v, b, 0);
  return b;
}

/** GET result, read per version (§5.2): 13 gives a boolean, 14+ the raw flag word. */
export function decodePfsyncreq(buf: Buffer, off: number, version: AbiVersion): PfsyncReqDecoded {
  need(buf, off, SIZEOF.pfsyncreq, 'pfsyncreq');
  const peer = ipText(buf.subarray(off + 16, off + 20));
  const raw = buf.readInt32LE(off + 24);
  const multicast = peer === '0.0.0.0' || peer === INADDR_PFSYNC_GROUP;
  return {
    syncdev: readIfName(buf, off),
    ...(multicast ? {} : { syncpeer: peer }),
    maxupdates: buf.readInt32LE(off + 20),
    defer: version === 13 ? raw !== 0 : (raw & PFSYNCF_DEFER) !== 0,
    rawDefer: raw,
    ...(version === 13 ? {} : { bulkUpdateDone: (raw & PFSYNCF_OK) !== 0 }),
  };
}

export type CarpStats = Record<(typeof CARPSTATS_FIELDS)[number], bigint>;
export type PfsyncCounters = Record<(typeof PFSYNCSTATS_FIELDS)[number], bigint>;
export interface PfsyncStats {
  counters: PfsyncCounters;
  /** PFSYNC_ACT_MAX of the running kernel, derived from the length. */
  actMax: number;
  /** Per message-action counters, by action number (their names are not part of the reference). */
  iacts: bigint[];
  oacts: bigint[];
}

function readCounters<K extends string>(names: readonly K[], buf: Buffer, off: number): Record<K, bigint> {
  const out = {} as Record<K, bigint>;
  names.forEach((n, i) => (out[n] = buf.readBigUInt64LE(off + i * 8)));
  return out;
}

function writeCounters<K extends string>(names: readonly K[], v: Record<K, bigint>, buf: Buffer, off: number): void {
  names.forEach((n, i) => buf.writeBigUInt64LE(BigInt.asUintN(64, v[n]), off + i * 8));
}

export function decodeCarpstats(buf: Buffer, off = 0): CarpStats {
  need(buf, off, SIZEOF.carpstats, 'carpstats');
  return readCounters(CARPSTATS_FIELDS, buf, off);
}

export function encodeCarpstats(v: CarpStats, buf: Buffer, off: number): void {
  need(buf, off, SIZEOF.carpstats, 'carpstats');
  writeCounters(CARPSTATS_FIELDS, v, buf, off);
}

/** The size of struct pfsyncstats for a given ACT_MAX. */
export function pfsyncstatsSize(actMax: number): number {
  return 128 + 16 * actMax;
}

/**
 * Parses exactly the bytes the sysctl returned (query the size first, T15). The length must be
 * 128 + 16 x ACT_MAX with ACT_MAX >= 1.
 */
export function decodePfsyncstats(bytes: Buffer): PfsyncStats {
  const len = bytes.length;
  if (len <= 128 || (len - 128) % 16 !== 0) {
    throw new RangeError(`pfsyncstats: ${len} bytes is not 128 + 16 x PFSYNC_ACT_MAX (336 / 368 / 400 expected)`);
  }
  const actMax = (len - 128) / 16;
  const arr = (start: number) => Array.from({ length: actMax }, (_, i) => bytes.readBigUInt64LE(start + i * 8));
  return { counters: readCounters(PFSYNCSTATS_FIELDS, bytes, 0), actMax, iacts: arr(128), oacts: arr(128 + 8 * actMax) };
}

export function encodePfsyncstats(v: PfsyncStats, buf: Buffer, off: number): void {
  const size = pfsyncstatsSize(v.actMax);
  need(buf, off, size, 'pfsyncstats');
  if (v.iacts.length !== v.actMax || v.oacts.length !== v.actMax) throw new RangeError(`pfsyncstats: iacts/oacts must have ${v.actMax} entries`);
  writeCounters(PFSYNCSTATS_FIELDS, v.counters, buf, off);
  v.iacts.forEach((x, i) => buf.writeBigUInt64LE(BigInt.asUintN(64, x), off + 128 + i * 8));
  v.oacts.forEach((x, i) => buf.writeBigUInt64LE(BigInt.asUintN(64, x), off + 128 + 8 * v.actMax + i * 8));
}
